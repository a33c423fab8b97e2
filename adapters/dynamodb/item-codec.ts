/**
 * How records become DynamoDB items: keys, attribute encoding and item size. Pure (no SDK, no
 * I/O) so the in-memory store can keep exactly the same items and refuse exactly the same
 * payloads as the DynamoDB store.
 *
 * Values the user controls (inputs, memory, results, agents, ...) are stored as JSON strings:
 * DynamoDB maps nest at most 32 levels and reject some values. Everything a condition or a
 * counter touches (status, version, counters, ids, depth, timestamps) stays a native attribute.
 */
import { BranchSpawnerError, PayloadTooLargeError, ValidationError } from '../../core/errors';
import type { BranchPatch, RunPatch } from '../../core/ports';
import type { BranchRecord, RunRecord, Scope, SyncPointRecord } from '../../core/model';

export type Scalar = string | number | boolean | null;
/** A string set (SS) is the only non-scalar attribute type the items use. */
export type ItemValue = Scalar | Set<string>;
export type Item = Record<string, ItemValue>;

/** DynamoDB's item limit: 400 KB, attribute names included. */
export const MAX_ITEM_BYTES = 400 * 1024;
const MAX_PK_BYTES = 2048;
const MAX_SK_BYTES = 1024;

export const GSI1 = 'GSI1';
export const TTL_ATTRIBUTE = 'expiresAt';
export const RUN_SK = 'RUN';
export const BRANCH_PREFIX = 'B#';
export const SYNC_PREFIX = 'S#';

/** Attributes that exist only for the table (keys, index keys, TTL, idempotency sets). */
const INTERNAL = new Set(['PK', 'SK', 'GSI1PK', 'GSI1SK', 'entity', TTL_ATTRIBUTE, 'spawnKeys']);

const RUN_JSON = new Set(['request', 'agents', 'limits', 'failurePolicy', 'result']);
const BRANCH_JSON = new Set(['input', 'memory', 'peers', 'spawn', 'result', 'fanIn', 'usage']);
const SYNC_JSON = new Set(['waitFor']);
/** Branch fields no patch may change (the port's BranchPatch type excludes them too). */
const BRANCH_IMMUTABLE = new Set(['team', 'runId', 'id', 'version', 'parentId', 'depth', 'createdAt']);
const RUN_IMMUTABLE = new Set(['team', 'runId', 'createdAt', 'branchCount']);

// --- keys ---------------------------------------------------------------------------------

/**
 * Escapes `%` and `#` so that no team, run or branch id can forge another one's key
 * (team "a#R#b" + run "c" must not meet team "a" + run "b#R#c").
 */
export function keyPart(value: string): string {
  return value.replace(/%/g, '%25').replace(/#/g, '%23');
}

export function runPk(scope: Scope): string {
  const pk = `T#${keyPart(scope.team)}#R#${keyPart(scope.runId)}`;
  if (Buffer.byteLength(pk) > MAX_PK_BYTES - 200) {
    throw new ValidationError(`team and run id are too long for a key (${Buffer.byteLength(pk)} bytes)`, 'runId');
  }
  return pk;
}

/** The branch id of a `B#<id>` sort key (the inverse of branchSk). */
export function branchIdOfSk(sk: string): string {
  return sk.slice(BRANCH_PREFIX.length).replace(/%23/g, '#').replace(/%25/g, '%');
}

export function branchSk(branchId: string): string {
  return checkSk(`${BRANCH_PREFIX}${keyPart(branchId)}`);
}

export function syncSk(parentId: string, seq: number): string {
  return checkSk(`${SYNC_PREFIX}${keyPart(parentId)}#${String(seq).padStart(6, '0')}`);
}

/** GSI1 partition: the children of one parent. */
export function childrenPk(scope: Scope, parentId: string): string {
  return `${runPk(scope)}#P#${keyPart(parentId)}`;
}

function checkSk(sk: string): string {
  if (Buffer.byteLength(sk) > MAX_SK_BYTES) {
    throw new ValidationError(`id is too long for a key (${Buffer.byteLength(sk)} bytes)`, 'id');
  }
  return sk;
}

export interface Key {
  PK: string;
  SK: string;
}

export const runKey = (scope: Scope): Key => ({ PK: runPk(scope), SK: RUN_SK });
export const branchKey = (scope: Scope, branchId: string): Key => ({ PK: runPk(scope), SK: branchSk(branchId) });
export const syncKey = (scope: Scope, parentId: string, seq: number): Key => ({
  PK: runPk(scope),
  SK: syncSk(parentId, seq),
});

// --- records → items ----------------------------------------------------------------------

export function runItem(run: RunRecord): Item {
  return { ...runKey(run), entity: 'RUN', ...encodeFields('run', run, RUN_JSON) };
}

export function branchItem(branch: BranchRecord): Item {
  const item: Item = { ...branchKey(branch, branch.id), entity: 'BRANCH' };
  // Sparse index: only children are in GSI1.
  if (branch.parentId !== null) {
    item.GSI1PK = childrenPk(branch, branch.parentId);
    item.GSI1SK = branchSk(branch.id);
  }
  return Object.assign(item, encodeFields('branch', branch, BRANCH_JSON));
}

export function syncPointItem(sp: SyncPointRecord): Item {
  const { counters, done, ...rest } = sp;
  const item: Item = {
    ...syncKey(sp, sp.parentId, sp.seq),
    entity: 'SYNC',
    ...encodeFields('sync point', rest, SYNC_JSON),
    total: counters.total,
    succeeded: counters.succeeded,
    failed: counters.failed,
    cancelled: counters.cancelled,
  };
  // DynamoDB sets cannot be empty: no `done` attribute means no child counted yet.
  if (done.length > 0) item.done = new Set(done);
  return item;
}

/** The attributes a branch patch writes (undefined keys are left unchanged). */
export function encodeBranchPatch(patch: BranchPatch): Item {
  return encodeFields('branch patch', omit(patch, BRANCH_IMMUTABLE), BRANCH_JSON);
}

export function encodeRunPatch(patch: RunPatch): Item {
  return encodeFields('run patch', omit(patch, RUN_IMMUTABLE), RUN_JSON);
}

function omit(record: object, keys: Set<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => !keys.has(k)));
}

function encodeFields(what: string, record: object, json: Set<string>): Item {
  const item: Item = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined) continue;
    if (json.has(name)) {
      const text = JSON.stringify(value);
      if (text !== undefined) item[name] = text;
    } else if (value === null || typeof value === 'string' || typeof value === 'boolean') {
      item[name] = value;
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new BranchSpawnerError(`${what} field ${name} is not a finite number`);
      item[name] = value;
    } else {
      // A new structured field must be added to the JSON list, or it would be stored as a map.
      throw new BranchSpawnerError(`${what} field ${name} is not a scalar and is not declared as a JSON field`);
    }
  }
  return item;
}

// --- items → records ----------------------------------------------------------------------

export function decodeRun(item: Record<string, unknown>): RunRecord {
  return decodeFields(item, RUN_JSON) as unknown as RunRecord;
}

export function decodeBranch(item: Record<string, unknown>): BranchRecord {
  return decodeFields(item, BRANCH_JSON) as unknown as BranchRecord;
}

export function decodeSyncPoint(item: Record<string, unknown>): SyncPointRecord {
  const { total, succeeded, failed, cancelled, done, ...rest } = item;
  return {
    ...(decodeFields(rest, SYNC_JSON) as unknown as Omit<SyncPointRecord, 'counters' | 'done'>),
    counters: {
      total: Number(total ?? 0),
      succeeded: Number(succeeded ?? 0),
      failed: Number(failed ?? 0),
      cancelled: Number(cancelled ?? 0),
    },
    done: done instanceof Set ? [...(done as Set<string>)].sort(compareIds) : [],
  };
}

export function decodeCounters(item: Record<string, unknown>) {
  return decodeSyncPoint(item).counters;
}

function decodeFields(item: Record<string, unknown>, json: Set<string>): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item)) {
    if (INTERNAL.has(name)) continue;
    record[name] = json.has(name) && typeof value === 'string' ? JSON.parse(value) : value;
  }
  return record;
}

// --- order and size -----------------------------------------------------------------------

/** Natural order of branch ids: root, root.0, root.0.1, root.1, root.2, root.10. */
export function compareIds(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] === pb[i]) continue;
    const na = /^\d+$/.test(pa[i]) ? Number(pa[i]) : NaN;
    const nb = /^\d+$/.test(pb[i]) ? Number(pb[i]) : NaN;
    if (!Number.isNaN(na) && !Number.isNaN(nb) && na !== nb) return na - nb;
    return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** DynamoDB's size of one value (numbers counted at their 21-byte maximum, to stay safe). */
export function valueSize(value: ItemValue): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number') return 21;
  if (value instanceof Set) {
    let n = 0;
    for (const s of value) n += Buffer.byteLength(s);
    return n;
  }
  return 1;
}

export function itemSize(item: Item): number {
  let total = 0;
  for (const [name, value] of Object.entries(item)) total += Buffer.byteLength(name) + valueSize(value);
  return total;
}

/**
 * Refuses an item (or the attributes an update writes) that would exceed 400 KB, naming the
 * largest field, before anything is written.
 */
export function assertFits(label: string, item: Item): void {
  let total = 0;
  let largest = '';
  let largestSize = -1;
  for (const [name, value] of Object.entries(item)) {
    const size = valueSize(value);
    total += Buffer.byteLength(name) + size;
    if (size > largestSize) [largest, largestSize] = [name, size];
  }
  if (total <= MAX_ITEM_BYTES) return;
  const message =
    largestSize > MAX_ITEM_BYTES - 1024
      ? `${label} ${largest} is ${largestSize} bytes; items are limited to 400 KB`
      : `${label} would be ${total} bytes (largest field ${largest}: ${largestSize} bytes); items are limited to 400 KB`;
  throw new PayloadTooLargeError(message, total, MAX_ITEM_BYTES);
}

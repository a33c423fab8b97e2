/**
 * How records become DynamoDB items: keys, attribute encoding, the claim check and item size.
 * Pure (no SDK, no I/O) so the in-memory store can keep exactly the same items and refuse exactly
 * the same payloads as the DynamoDB store. The items of three concerns have modules of their own
 * beside this one: fan-in-shards.ts, spec-chunks.ts and event-packs.ts.
 *
 * Values the user controls (inputs, memory, results, agents, ...) are stored as JSON strings:
 * DynamoDB maps nest at most 32 levels and reject some values. Everything a condition or a
 * counter touches (status, version, counters, ids, depth, timestamps) stays a native attribute.
 */
import { BranchSpawnerError, PayloadTooLargeError, ValidationError } from '../../core/errors';
import type { BlobStore, BranchPatch, RunPatch } from '../../core/ports';
import { COST_FIELDS, emptyCost, type CostCounters } from '../../core/cost';
import { MAX_VALUE_BYTES } from '../../core/input-bounds';
import { OUTCOME_FIELDS, type BranchRecord, type RunRecord, type Scope, type SyncCounters, type SyncPointRecord } from '../../core/model';
import { blobKey } from '../blobs/blob-keys';

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
/** Fan-in shards of a sync point (see fanInShardOf); a prefix of their own, so `S#` lists sync points only. */
export const SHARD_PREFIX = 'F#';
/**
 * Children per fan-in shard. A shard item keeps the (shard-relative) indices of the children it
 * counted, so it stays under 1 KB (one write unit) at this size; the sync point keeps one small
 * number per shard, so it stays under 1 KB up to 10,000 children.
 */
export const FAN_IN_SHARD_SIZE = 250;
/** Task tokens of fan-out batches (see batchTokenKey). */
export const BATCH_TOKEN_PREFIX = 'K#';
/** Stored child specs of wide spawns: `C#<key>#<chunk>`. */
export const SPECS_PREFIX = 'C#';
export const COST_SK = 'COST';
/** Child specs per stored chunk are cut at this many bytes of JSON (an item stays well under 400 KB). */
export const SPEC_CHUNK_BYTES = 256 * 1024;

/** Attributes that exist only for the table (keys, index keys, TTL, idempotency sets). */
const INTERNAL = new Set(['PK', 'SK', 'GSI1PK', 'GSI1SK', 'entity', TTL_ATTRIBUTE, 'spawnKeys']);

const RUN_JSON = new Set(['request', 'agents', 'limits', 'failurePolicy', 'result']);
const BRANCH_JSON = new Set(['input', 'memory', 'peers', 'spawn', 'result', 'fanIn', 'usage', 'toolStats', 'toolLoop', 'suspended', 'answeredCallbacks', 'batch']);
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

/** GSI1 partition: the runs of one team (sort key: runsSk, so a Query reads them by creation time). */
export function runsPk(team: string): string {
  return `T#${keyPart(team)}#RUNS`;
}

/** A run's place in its team's GSI1 partition: its creation time (ms, 15 digits), then its id. */
export function runsSk(run: Pick<RunRecord, 'createdAt' | 'runId'>): string {
  return checkSk(`${String(Math.max(0, Math.floor(run.createdAt))).padStart(15, '0')}#${keyPart(run.runId)}`);
}

/** The run id of a runsSk (its inverse). */
export function runIdOfRunsSk(sk: string): string {
  return sk.slice(16).replace(/%23/g, '#').replace(/%25/g, '%');
}

/** A listing's position as a client sent it back: a runsSk, else a ValidationError naming `cursor`. */
export function runsPosition(value: string): string {
  if (!/^\d{15}#[^#]{1,200}$/.test(value)) throw new ValidationError('cursor: not a cursor this API gave (pass the `cursor` of the previous page)', 'cursor');
  return value;
}

/** GSI1 partition: the children of one parent. */
export function childrenPk(scope: Scope, parentId: string): string {
  return `${runPk(scope)}#P#${keyPart(parentId)}`;
}

export function checkSk(sk: string): string {
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

export const costKey = (scope: Scope): Key => ({ PK: runPk(scope), SK: COST_SK });

/** The attribute of an event pack item that lists the blobs its events name (their refs, space-separated). */
export const EVENT_REFS = 'valueRefs';

/** Where an idempotency key's run id is kept: a partition of its own, never a run's. */
export const RUN_KEY_SK = 'RUNKEY';

export function runKeyItem(team: string, keyHash: string, runId: string): Item {
  return { PK: runPk({ team, runId: `key-${keyHash}` }), SK: RUN_KEY_SK, entity: 'RUNKEY', runId };
}

/** A fan-out batch's task token: `K#<parent>#<seq>#<first index>` (a prefix of its own). */
export const batchTokenKey = (scope: Scope, parentId: string, seq: number, first: number): Key => ({
  PK: runPk(scope),
  SK: checkSk(`${BATCH_TOKEN_PREFIX}${keyPart(parentId)}#${String(seq).padStart(6, '0')}#${first}`),
});

/**
 * A fan-out batch's pool (SyncPointStore.claimBatchChild): `K#<parent>#<seq>#<first index>#pool`,
 * holding `next` (an offset from the batch's first index) and one attribute per claim, named by
 * the ender's offset, whose value is how far past the ender the claimed child is (always
 * positive: a child claims only children after it). At most BATCH_MAX_CHILDREN claims of 3 to 6
 * bytes each: under 2 KB, one or two write units a claim.
 */
export const batchPoolKey = (scope: Scope, parentId: string, seq: number, first: number): Key => ({
  PK: runPk(scope),
  SK: checkSk(`${batchTokenKey(scope, parentId, seq, first).SK}#pool`),
});
/** The pool's attribute of the claim made by the batch's child at `offset` (digits only: no other attribute's name). */
export const batchClaimAttribute = (offset: number): string => String(offset);

// --- records → items ----------------------------------------------------------------------

export function runItem(run: RunRecord): Item {
  // In GSI1 under its team: the team's runs listed newest first (GET /runs).
  return { ...runKey(run), entity: 'RUN', GSI1PK: runsPk(run.team), GSI1SK: runsSk(run), ...encodeFields('run', run, RUN_JSON) };
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
  const { counters, ...rest } = sp;
  return {
    ...syncKey(sp, sp.parentId, sp.seq),
    entity: 'SYNC',
    ...encodeFields('sync point', rest, SYNC_JSON),
    total: counters.total,
    succeeded: counters.succeeded,
    failed: counters.failed,
    cancelled: counters.cancelled,
  };
}

/** The attributes a branch patch writes (undefined keys are left unchanged). */
export function encodeBranchPatch(patch: BranchPatch): Item {
  return encodeFields('branch patch', omit(patch, BRANCH_IMMUTABLE), BRANCH_JSON);
}

export function encodeRunPatch(patch: RunPatch): Item {
  return encodeFields('run patch', omit(patch, RUN_IMMUTABLE), RUN_JSON);
}

function omit(record: object, keys: Set<string>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const k in record) if (!keys.has(k)) kept[k] = (record as Record<string, unknown>)[k];
  return kept;
}

function encodeFields(what: string, record: object, json: Set<string>): Item {
  const item: Item = {};
  for (const name in record) {
    const value = (record as Record<string, unknown>)[name];
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

// --- the claim check -----------------------------------------------------------------------

/**
 * Values whose JSON is longer than this are kept in the blob store, and their attribute holds a
 * reference (docs/large-values.md). One write unit is 1 KB: a value past it would make every
 * write of its item cost more (a 2 KB result triples a child's last write), and values that grow
 * with a run (aggregates, memories) would reach DynamoDB's 400 KB item limit. Stored apart, an
 * item's writes cost about the same whatever its values hold.
 */
export const CLAIM_CHECK_BYTES = 1024;

/** An attribute holding a reference: `@blob:<ref>` (no JSON text starts with `@`, so no value can pass for one). */
const BLOB_MARK = '@blob:';

/** The attributes that hold values (JSON): the only ones the claim check moves. */
const VALUE_ATTRIBUTES = new Set([...RUN_JSON, ...BRANCH_JSON]);

/**
 * Moves the item's large values to the blob store and puts their references in their place.
 * Awaited before the item (or patch) is written: a reference is never stored before its content.
 * Without a blob store the item is answered as it is (and the size check refuses what is too large).
 */
export function checkInValues(label: string, scope: Scope, item: Item, blobs: BlobStore | undefined): Item | Promise<Item> {
  if (!blobs) return item;
  const large = Object.keys(item).filter((name) => {
    const value = item[name];
    // A string of n UTF-16 units is at most 3n bytes: most are ruled out without measuring.
    if (!VALUE_ATTRIBUTES.has(name) || typeof value !== 'string' || value.length * 3 <= CLAIM_CHECK_BYTES) return false;
    const bytes = Buffer.byteLength(value);
    if (bytes > MAX_VALUE_BYTES) {
      throw new PayloadTooLargeError(`${label} ${name} is ${bytes} bytes; a value is limited to ${MAX_VALUE_BYTES / 1024 / 1024} MB`, bytes, MAX_VALUE_BYTES);
    }
    return bytes > CLAIM_CHECK_BYTES;
  });
  // Answered at once when there is nothing to move: the in-memory store then checks and writes
  // without awaiting anything (what makes its writes atomic).
  if (large.length === 0) return item;
  const checked = { ...item };
  return Promise.all(large.map(async (name) => (checked[name] = BLOB_MARK + (await blobs.put(scope, item[name] as string))))).then(() => checked);
}

/** The item with every reference replaced by the value it names (what the decoders read); at once when there is none. */
export function checkOutValues<T extends Record<string, unknown>>(scope: Scope, item: T, blobs: BlobStore | undefined): T | Promise<T> {
  const refs = Object.keys(item).filter((name) => VALUE_ATTRIBUTES.has(name) && isBlobReference(item[name]));
  if (refs.length === 0) return item;
  if (!blobs) throw new BranchSpawnerError(`an item of run ${scope.runId} refers to stored values, and this store has no blob store`);
  const resolved: Record<string, unknown> = { ...item };
  return Promise.all(refs.map(async (name) => (resolved[name] = await blobs.get(scope, (item[name] as string).slice(BLOB_MARK.length))))).then(
    () => resolved as T,
  );
}

function isBlobReference(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(BLOB_MARK);
}

/**
 * Where the blobs an item refers to live (`blobKey`: `<team>/<run>/<ref>`), for a sweep of the
 * blobs nothing refers to (local/gc-command.ts). An item not of a run refers to none.
 */
export function referencedBlobKeys(item: Record<string, unknown>): string[] {
  const refs = Object.keys(item)
    .filter((name) => VALUE_ATTRIBUTES.has(name) && isBlobReference(item[name]))
    .map((name) => (item[name] as string).slice(BLOB_MARK.length));
  if (typeof item[EVENT_REFS] === 'string') refs.push(...item[EVENT_REFS].split(' '));
  if (refs.length === 0) return [];
  const scope = scopeOfPk(String(item.PK));
  return scope ? refs.map((ref) => blobKey(scope, ref)) : [];
}

/** The run of a `T#<team>#R#<run>` partition key (the inverse of runPk); undefined for any other key. */
function scopeOfPk(pk: string): Scope | undefined {
  const match = /^T#([^#]*)#R#([^#]*)$/.exec(pk);
  const unescape = (part: string) => part.replace(/%23/g, '#').replace(/%25/g, '%');
  return match ? { team: unescape(match[1]), runId: unescape(match[2]) } : undefined;
}

// --- items → records ----------------------------------------------------------------------

export function decodeRun(item: Record<string, unknown>): RunRecord {
  return decodeFields(item, RUN_JSON) as unknown as RunRecord;
}

/** The attributes of a branch's outcome (BranchStore.getOutcomes): its scope and OUTCOME_FIELDS. */
export const OUTCOME_ATTRIBUTES: readonly string[] = ['team', 'runId', ...OUTCOME_FIELDS];

/** The item cut to the given attributes, as a projected read answers it. */
export function projectItem<T extends Record<string, unknown>>(item: T, attributes: readonly string[]): T {
  const projected: Record<string, unknown> = {};
  for (const name of attributes) if (item[name] !== undefined) projected[name] = item[name];
  return projected as T;
}

export function decodeBranch(item: Record<string, unknown>): BranchRecord {
  return decodeFields(item, BRANCH_JSON) as unknown as BranchRecord;
}

export function decodeSyncPoint(item: Record<string, unknown>): SyncPointRecord {
  const rest = Object.fromEntries(Object.entries(item).filter(([name]) => !SYNC_NOT_RECORD.test(name)));
  return {
    ...(decodeFields(rest, SYNC_JSON) as unknown as Omit<SyncPointRecord, 'counters'>),
    counters: decodeCounters(item),
  };
}

/** A run's cost record (zeros for what was never recorded). */
export function decodeCost(item: Record<string, unknown> | undefined): CostCounters {
  const cost = emptyCost();
  for (const field of COST_FIELDS) cost[field] = Number(item?.[field] ?? 0);
  return cost;
}

/** The counters alone (never touches the shard snapshots). */
export function decodeCounters(item: Record<string, unknown>): SyncCounters {
  return {
    total: Number(item.total ?? 0),
    succeeded: Number(item.succeeded ?? 0),
    failed: Number(item.failed ?? 0),
    cancelled: Number(item.cancelled ?? 0),
  };
}

/** Sync point attributes that are not record fields: counters (decoded apart) and shard snapshots. */
const SYNC_NOT_RECORD = /^(total|succeeded|failed|cancelled|done|k(\d+|h\d+))$/;

function decodeFields(item: Record<string, unknown>, json: Set<string>): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const name in item) {
    if (INTERNAL.has(name)) continue;
    const value = item[name];
    record[name] = json.has(name) && typeof value === 'string' ? JSON.parse(value) : value;
  }
  return record;
}

// --- order and size -----------------------------------------------------------------------

// Natural order of branch ids: the core's rule (core/model.ts), for the stores.
export { compareIds } from '../../core/model';

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

/**
 * The size DynamoDB bills an item by (what ConsumedCapacity is computed from): attribute names
 * plus values, strings in UTF-8 bytes, numbers 1 byte plus 1 per two significant digits.
 */
export function billedItemSize(item: Record<string, unknown>): number {
  let total = 0;
  for (const name in item) total += Buffer.byteLength(name) + billedValueSize(item[name]);
  return total;
}

function billedValueSize(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number') return numberSize(value);
  if (value instanceof Set) {
    let n = 0;
    for (const s of value) n += typeof s === 'number' ? numberSize(s) : Buffer.byteLength(String(s));
    return n;
  }
  return 1;
}

export function numberSize(value: number): number {
  if (value === 0) return 1;
  return 1 + Math.ceil(significantDigits(value) / 2) + (value < 0 ? 1 : 0);
}

/** Significant digits of a number as DynamoDB keeps it (trailing zeros are not significant). */
function significantDigits(value: number): number {
  // Integers (counters, versions, timestamps) are most numbers: count digits without formatting.
  if (Number.isSafeInteger(value)) {
    let n = Math.abs(value);
    while (n % 10 === 0) n /= 10;
    let digits = 1;
    while (n >= 10) {
      n = Math.floor(n / 10);
      digits++;
    }
    return digits;
  }
  return Math.abs(value).toExponential().split('e')[0].replace(/[.-]/g, '').replace(/0+$/, '').length || 1;
}

/** Write units of a write whose larger item (old or new) bills this many bytes: 1 KB each. */
export function writeUnitsOfSize(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 1024));
}

/** Read units of a strongly consistent read of these items' total size: 4 KB each (at least 1). */
export function readUnits(size: number): number {
  return Math.max(1, Math.ceil(size / 4096));
}

export function itemSize(item: Item): number {
  let total = 0;
  for (const name in item) total += Buffer.byteLength(name) + valueSize(item[name]);
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
  for (const name in item) {
    const size = valueSize(item[name]);
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

/**
 * In-memory BranchStore: the reference for the store contract (no I/O).
 *
 * It keeps the very items the DynamoDB store writes (adapters/dynamodb/item-codec), so values
 * round-trip the same way (user values go through JSON), the same payloads are refused as too
 * large, and nothing a caller holds is shared with stored state: records are encoded on the
 * way in and decoded afresh on the way out. Each method checks and writes without awaiting in
 * between, which makes every conditional write atomic, as DynamoDB's are. It also reports the
 * capacity units DynamoDB would charge (computed from the item sizes the way DynamoDB does), so
 * the cost meter reads the same on every engine. Values over CLAIM_CHECK_BYTES go to its blob
 * store (awaited before the check-and-write) and come back on every read, as in the DynamoDB store.
 */
import { BranchSpawnerError, NotFoundError } from '../../core/errors';
import {
  canTransition,
  type BranchOutcome,
  type BranchRecord,
  type BranchStatus,
  type ChildOutcome,
  type ChildSpec,
  type RunRecord,
  type RunStatus,
  type Scope,
  type SyncPointRecord,
} from '../../core/model';
import { addCost, type CostCounters } from '../../core/cost';
import type { BlobStore, BranchPage, BranchPatch, BranchStore, CostSink, ListedRun, RecordChildEndResult, ReserveResult, RunPage, RunPatch, Statuses, StoredEvent } from '../../core/ports';
import type { LifecycleEvent } from '../../core/events';
import { MemoryBlobStore } from '../blobs/memory-blob-store';
import {
  assertFits,
  checkInValues,
  checkOutValues,
  BRANCH_PREFIX,
  branchItem,
  branchKey,
  childrenPk,
  compareIds,
  decodeBranch,
  OUTCOME_ATTRIBUTES,
  projectItem,
  decodeCounters,
  decodeRun,
  decodeSyncPoint,
  encodeBranchPatch,
  encodeRunPatch,
  runItem,
  runKey,
  runPk,
  runsPk,
  runsPosition,
  RUN_SK,
  decodeEventPack,
  EVENT_PREFIX,
  eventCounterKey,
  eventPackItems,
  eventSk,
  SYNC_PREFIX,
  syncKey,
  syncPointItem,
  billedItemSize,
  childOfShardMember,
  costKey,
  runKeyItem,
  decodeCost,
  decodeSnapshot,
  encodeSnapshot,
  fanInShardOf,
  readUnits,
  shardKey,
  shardSkPrefix,
  shardSnapshotAttribute,
  chunkCovers,
  shardsOfRange,
  countedInRange,
  batchTokenKey,
  specChunkItems,
  specsFromChunks,
  specsSkPrefix,
  writeUnitsOfSize,
  type Item,
  type Key,
} from '../dynamodb/item-codec';

const CHILD_OUTCOMES = new Set<ChildOutcome>(['succeeded', 'failed', 'cancelled']);

/**
 * An item's billed size, computed once: stored items are replaced, never mutated, so the size of
 * the item a write replaces (and of every item a read returns) is already known.
 */
const sizes = new WeakMap<Item, number>();
function size(item: Item | undefined): number {
  if (!item) return 0;
  let bytes = sizes.get(item);
  if (bytes === undefined) sizes.set(item, (bytes = billedItemSize(item)));
  return bytes;
}

/** Write units of replacing `old` (if any) with `next`: on the larger of the two. */
const writeUnits = (old: Item | undefined, next?: Item): number => writeUnitsOfSize(Math.max(size(old), size(next)));

function countsOf(item: Item | undefined) {
  return { succeeded: Number(item?.succeeded ?? 0), failed: Number(item?.failed ?? 0), cancelled: Number(item?.cancelled ?? 0) };
}

/** The run an item belongs to (every item the store writes carries team and runId, or a run key). */
function scopeOfItem(item: Item): Scope | undefined {
  return typeof item.team === 'string' && typeof item.runId === 'string' ? { team: item.team, runId: item.runId } : undefined;
}

export interface MemoryBranchStoreOptions {
  /** Receives the capacity units DynamoDB would charge for each call, by run. */
  meter?: CostSink;
  /**
   * Told of every item put, before it is stored and before the call returns (a journal keeps the
   * table on disk this way). If it throws, nothing is stored and the call fails.
   */
  onPut?: (item: Item) => void;
  /**
   * Where values over CLAIM_CHECK_BYTES are kept (the claim check, adapters/dynamodb/item-codec):
   * a MemoryBlobStore by default, the data folder's blobs on the journal tier.
   */
  blobs?: BlobStore;
}

export class MemoryBranchStore implements BranchStore {
  /** PK → SK → item, like the table. */
  private readonly partitions = new Map<string, Map<string, Item>>();
  private readonly meter: CostSink | undefined;
  private readonly onPut: ((item: Item) => void) | undefined;
  readonly blobs: BlobStore;

  constructor(options: MemoryBranchStoreOptions = {}) {
    this.meter = options.meter;
    this.onPut = options.onPut;
    this.blobs = options.blobs ?? new MemoryBlobStore();
  }

  /** Puts items back as they were kept (a journal's replay): no condition, no cost, no onPut. */
  restore(items: Iterable<Item>): void {
    for (const item of items) this.store(item);
  }

  /** Every stored item (what a journal's snapshot keeps). Items are never mutated in place. */
  *items(): IterableIterator<Item> {
    for (const partition of this.partitions.values()) yield* partition.values();
  }

  async createRun(run: RunRecord): Promise<boolean> {
    let item = checkInValues(`run ${run.runId}`, run, runItem(run), this.blobs);
    if (item instanceof Promise) item = await item;
    assertFits(`run ${run.runId}`, item);
    return this.putIfAbsent(item);
  }

  async getRun(scope: Scope): Promise<RunRecord | undefined> {
    const item = this.readCharged(scope, runKey(scope));
    if (!item) return undefined;
    const checked = checkOutValues(scope, item, this.blobs);
    return checked instanceof Promise ? checked.then(decodeRun) : decodeRun(checked);
  }

  async finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean> {
    let fields = checkInValues(`run ${scope.runId}`, scope, { ...encodeRunPatch(patch), status }, this.blobs);
    if (fields instanceof Promise) fields = await fields;
    assertFits(`run ${scope.runId}`, fields);
    const item = this.read(runKey(scope));
    if (!item || item.status !== 'RUNNING') return this.refused(scope, false);
    const next = { ...item, ...fields };
    assertFits(`run ${scope.runId}`, next);
    this.write(next);
    this.charge(scope, { writeUnits: writeUnits(item, next) });
    return true;
  }

  async reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult> {
    const item = this.read(runKey(scope));
    // A refusal costs the refused write and the read that tells why, as in DynamoDB.
    if (!item) return this.refused(scope, { ok: false, branchCount: 0 }, 1);
    const branchCount = Number(item.branchCount ?? 0);
    const keys = item.spawnKeys instanceof Set ? item.spawnKeys : new Set<string>();
    if (keys.has(spawnKey)) return this.refused(scope, { ok: true, branchCount }, readUnits(size(item)));
    if (branchCount + count > max) return this.refused(scope, { ok: false, branchCount }, readUnits(size(item)));
    const next = { ...item, branchCount: branchCount + count, spawnKeys: new Set([...keys, spawnKey]) };
    this.write(next);
    this.charge(scope, { writeUnits: writeUnits(item, next) });
    return { ok: true, branchCount: branchCount + count };
  }

  async addRunTokens(scope: Scope, tokens: number): Promise<number | undefined> {
    const item = this.read(runKey(scope));
    if (!item) return undefined;
    const usedTokens = Number(item.usedTokens ?? 0) + tokens;
    this.write({ ...item, usedTokens });
    return usedTokens;
  }

  async createBranches(branches: BranchRecord[]): Promise<string[]> {
    // Every item is checked before any is written, as in the DynamoDB store.
    const checked = branches.map((b) => checkInValues(`branch ${b.id}`, b, branchItem(b), this.blobs));
    const items = checked.some((item) => item instanceof Promise) ? await Promise.all(checked) : (checked as Item[]);
    items.forEach((item, i) => assertFits(`branch ${branches[i].id}`, item));
    return branches.filter((_, i) => this.putIfAbsent(items[i])).map((b) => b.id);
  }

  async getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined> {
    const item = this.readCharged(scope, branchKey(scope, branchId));
    return item && this.decodeBranch(scope, item);
  }

  async getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]> {
    // BatchGetItem bills each item on its own, rounded up to 4 KB.
    const items = branchIds.flatMap((id): Item[] => {
      const item = this.readCharged(scope, branchKey(scope, id));
      return item ? [item] : [];
    });
    return this.decodeBranches(scope, items);
  }

  async getOutcomes(scope: Scope, branchIds: string[]): Promise<BranchOutcome[]> {
    // Billed as getBranches: DynamoDB charges a projected read for the whole item.
    const items = branchIds.flatMap((id): Item[] => {
      const item = this.readCharged(scope, branchKey(scope, id));
      return item ? [projectItem(item, OUTCOME_ATTRIBUTES)] : [];
    });
    return this.decodeBranches(scope, items);
  }

  async getStatuses(scope: Scope, branchIds: string[]): Promise<Statuses> {
    // One BatchGetItem in DynamoDB: each item is billed on its own, whatever the projection.
    const run = this.readCharged(scope, runKey(scope));
    const branches = new Map<string, BranchStatus>();
    for (const id of new Set(branchIds)) {
      const item = this.readCharged(scope, branchKey(scope, id));
      if (item) branches.set(id, item.status as BranchStatus);
    }
    return { run: run?.status as RunStatus | undefined, branches };
  }

  async updateBranch(
    scope: Scope,
    branchId: string,
    expectedVersion: number,
    patch: BranchPatch,
  ): Promise<BranchRecord | undefined> {
    let fields = checkInValues(`branch ${branchId}`, scope, encodeBranchPatch(patch), this.blobs);
    if (fields instanceof Promise) fields = await fields;
    assertFits(`branch ${branchId}`, fields);
    const item = this.read(branchKey(scope, branchId));
    if (!item || item.version !== expectedVersion) return this.refused(scope, undefined);
    return this.decodeBranch(scope, this.writeBranch(scope, branchId, item, fields));
  }

  async transitionBranch(
    scope: Scope,
    branchId: string,
    from: readonly BranchStatus[],
    to: BranchStatus,
    patch: BranchPatch = {},
  ): Promise<BranchRecord | undefined> {
    let fields = checkInValues(`branch ${branchId}`, scope, { ...encodeBranchPatch(patch), status: to }, this.blobs);
    if (fields instanceof Promise) fields = await fields;
    assertFits(`branch ${branchId}`, fields);
    const item = this.read(branchKey(scope, branchId));
    if (!item) return this.refused(scope, undefined);
    const status = item.status as BranchStatus;
    // A terminal branch never changes, whatever `from` says (the DynamoDB store sends no request when no `from` may).
    if (!from.some((f) => canTransition(f, to))) return undefined;
    if (!from.includes(status) || !canTransition(status, to)) return this.refused(scope, undefined);
    return this.decodeBranch(scope, this.writeBranch(scope, branchId, item, fields));
  }

  async listBranches(scope: Scope): Promise<BranchRecord[]> {
    const branches = await this.decodeBranches(scope, this.queryCharged(scope, BRANCH_PREFIX));
    return branches.sort((a, b) => compareIds(a.id, b.id));
  }

  async claimRunId(team: string, keyHash: string, runId: string): Promise<string> {
    const item = runKeyItem(team, keyHash, runId);
    if (this.putIfAbsent(item)) return runId;
    return String(this.read({ PK: String(item.PK), SK: String(item.SK) })!.runId);
  }

  async listBranchesPage(scope: Scope, page: BranchPage): Promise<{ branches: BranchRecord[]; more: boolean }> {
    // DynamoDB's order: the sort keys as strings.
    const start = page.after === undefined ? undefined : branchKey(scope, page.after).SK;
    const items = this.partitionItems(runPk(scope), BRANCH_PREFIX)
      .filter((item) => start === undefined || String(item.SK) > start)
      .sort((a, b) => (String(a.SK) < String(b.SK) ? -1 : 1));
    const taken = items.slice(0, Math.max(1, page.limit));
    this.charge(scope, { readUnits: readUnits(taken.reduce((n, i) => n + size(i), 0)) });
    return { branches: await this.decodeBranches(scope, taken), more: items.length > taken.length };
  }

  async listRunsPage(team: string, page: RunPage): Promise<{ runs: ListedRun[]; more: boolean }> {
    // DynamoDB's order on the index: sort keys as strings, newest (greatest) first.
    const pk = runsPk(team);
    const after = page.after === undefined ? undefined : runsPosition(page.after);
    const entries = [...this.partitions.values()]
      .map((partition) => partition.get(RUN_SK))
      .filter((item): item is Item => item !== undefined && item.GSI1PK === pk && (after === undefined || String(item.GSI1SK) < after))
      .sort((a, b) => (String(a.GSI1SK) < String(b.GSI1SK) ? 1 : -1));
    const taken = entries.slice(0, Math.max(1, page.limit));
    const runs = await Promise.all(taken.map(async (item) => ({ run: (await this.getRun(scopeOfItem(item)!))!, position: String(item.GSI1SK) })));
    return { runs, more: entries.length > taken.length };
  }

  async appendEvents(scope: Scope, events: readonly LifecycleEvent[]): Promise<void> {
    if (events.length === 0) return;
    const counter = this.read(eventCounterKey(scope));
    const last = Number(counter?.last ?? 0);
    this.write({ ...eventCounterKey(scope), team: scope.team, runId: scope.runId, last: last + events.length });
    this.charge(scope, { writeUnits: 1 });
    for (const pack of eventPackItems(scope, last + 1, Date.now(), events)) {
      const item = { ...pack, team: scope.team, runId: scope.runId };
      assertFits(`events of ${scope.runId}`, item);
      this.write(item);
      this.charge(scope, { writeUnits: writeUnits(item) });
    }
  }

  async getValue(scope: Scope, ref: string): Promise<string> {
    return this.blobs.get(scope, ref);
  }

  async listEvents(scope: Scope, page: { after: number; limit: number }): Promise<StoredEvent[]> {
    const from = eventSk(page.after + 1);
    const limit = Math.max(1, page.limit);
    const packs = this.partitionItems(runPk(scope), EVENT_PREFIX)
      .filter((item) => String(item.SK) >= from)
      .sort((a, b) => (String(a.SK) < String(b.SK) ? -1 : 1))
      .slice(0, limit);
    this.charge(scope, { readUnits: readUnits(packs.reduce((n, i) => n + size(i), 0)) });
    return packs.flatMap((item) => decodeEventPack(scope, item)).filter((s) => s.seq > page.after).slice(0, limit);
  }

  async listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]> {
    const gsiPk = childrenPk(scope, parentId);
    const children = this.partitionItems(runPk(scope), BRANCH_PREFIX).filter((item) => item.GSI1PK === gsiPk);
    // The keys-only index query, then a consistent batch read of the items.
    this.charge(scope, { readUnits: readUnits(children.length * 100) + children.reduce((n, i) => n + readUnits(size(i)), 0) });
    return (await this.decodeBranches(scope, children)).sort((a, b) => compareIds(a.id, b.id));
  }

  async createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean> {
    const item = syncPointItem(syncPoint);
    assertFits(`sync point ${syncPoint.parentId}#${syncPoint.seq}`, item);
    return this.putIfAbsent(item);
  }

  async getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined> {
    const item = this.readCharged(scope, syncKey(scope, parentId, seq));
    return item && decodeSyncPoint(item);
  }

  /** The same items as the DynamoDB store (a shard, then the roll-up), written in one go. */
  async recordChildEnd(
    scope: Scope,
    parentId: string,
    seq: number,
    childId: string,
    outcome: ChildOutcome,
  ): Promise<RecordChildEndResult> {
    if (!CHILD_OUTCOMES.has(outcome)) throw new BranchSpawnerError(`unknown child outcome ${String(outcome)}`);
    const { shard, member } = fanInShardOf(parentId, childId);
    const shardItemKey = shardKey(scope, parentId, seq, shard);
    const old = this.read(shardItemKey);
    const done = old?.done instanceof Set ? old.done : new Set<string>();
    const applied = !done.has(member);
    let shardItem = old;
    if (applied) {
      shardItem = { ...shardItemKey, ...old, done: new Set([...done, member]), [outcome]: Number(old?.[outcome] ?? 0) + 1 };
      this.write(shardItem);
    }
    this.charge(scope, applied ? { writeUnits: writeUnits(old, shardItem) } : { writeUnits: 1, readUnits: readUnits(size(old)) });
    const root = this.read(syncKey(scope, parentId, seq));
    if (!root) {
      this.charge(scope, { writeUnits: 1 });
      throw new NotFoundError(`sync point ${parentId}#${seq} of run ${scope.runId} does not exist`);
    }
    const attribute = shardSnapshotAttribute(shard);
    const ours = decodeSnapshot(encodeSnapshot(countsOf(shardItem)));
    const rolled = decodeSnapshot(root[attribute]);
    if (rolled.succeeded + rolled.failed + rolled.cancelled >= ours.succeeded + ours.failed + ours.cancelled) {
      this.charge(scope, { readUnits: readUnits(size(root)) });
      return { applied, counters: decodeCounters(root) };
    }
    const next: Item = { ...root, [attribute]: encodeSnapshot(ours) };
    for (const name of ['succeeded', 'failed', 'cancelled'] as const) next[name] = Number(root[name] ?? 0) + ours[name] - rolled[name];
    this.write(next);
    this.charge(scope, { writeUnits: writeUnits(root, next) });
    return { applied, counters: decodeCounters(next) };
  }

  async listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]> {
    const prefix = shardSkPrefix(parentId, seq);
    const items = this.partitionItems(runPk(scope), prefix);
    this.charge(scope, { readUnits: readUnits(items.reduce((n, i) => n + size(i), 0)) });
    return items
      .flatMap((item) => {
        const shard = String(item.SK).slice(prefix.length);
        return item.done instanceof Set ? [...item.done].map((m) => childOfShardMember(parentId, shard, m)) : [];
      })
      .sort(compareIds);
  }

  async countEndedInRange(scope: Scope, parentId: string, seq: number, first: number, count: number): Promise<number> {
    const items = shardsOfRange(first, count).map((shard) => this.read(shardKey(scope, parentId, seq, shard)));
    this.charge(scope, { readUnits: items.reduce((n, i) => n + (i ? readUnits(size(i)) : 0), 0) || 1 });
    return items.reduce((n, item) => n + countedInRange(item, first, count), 0);
  }

  async putBatchToken(scope: Scope, parentId: string, seq: number, first: number, taskToken: string): Promise<void> {
    const item: Item = { ...batchTokenKey(scope, parentId, seq, first), entity: 'BATCH', taskToken };
    this.write(item);
    this.charge(scope, { writeUnits: writeUnitsOfSize(size(item)) });
  }

  async getBatchToken(scope: Scope, parentId: string, seq: number, first: number): Promise<string | undefined> {
    const item = this.read(batchTokenKey(scope, parentId, seq, first));
    this.charge(scope, { readUnits: item ? readUnits(size(item)) : 1 });
    return typeof item?.taskToken === 'string' ? item.taskToken : undefined;
  }

  async putChildSpecs(scope: Scope, key: string, specs: ChildSpec[]): Promise<void> {
    const items = specChunkItems(scope, key, specs);
    for (const item of items) assertFits(`child specs ${key}`, item);
    for (const item of items) this.putIfAbsent(item);
  }

  async getChildSpecs(scope: Scope, key: string, offset: number, count: number): Promise<ChildSpec[]> {
    // Only the chunks that hold the range are read (the DynamoDB store reads them by key, one a page).
    const items = this.partitionItems(runPk(scope), specsSkPrefix(key)).filter((i) => chunkCovers(i, offset, count));
    this.charge(scope, { readUnits: items.reduce((n, i) => n + readUnits(size(i)), 0) });
    const specs = specsFromChunks(items, offset, count) as ChildSpec[];
    if (specs.length !== count) throw new NotFoundError(`child specs ${key} [${offset}, ${offset + count}) of run ${scope.runId} are not stored`);
    return specs;
  }

  async addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void> {
    const key = costKey(scope);
    const item: Item = { ...key, ...(this.read(key) ?? {}) };
    const cost = decodeCost(item);
    addCost(cost, { ...usage, writeUnits: (usage.writeUnits ?? 0) + 1 });
    this.write({ ...item, ...cost });
  }

  async getCost(scope: Scope): Promise<CostCounters> {
    const item = this.read(costKey(scope));
    this.charge(scope, { readUnits: 1 });
    return decodeCost(item);
  }

  async claimAggregation(
    scope: Scope,
    parentId: string,
    seq: number,
    outcome: 'resume' | 'fail',
    at: number,
  ): Promise<boolean> {
    const item = this.read(syncKey(scope, parentId, seq));
    if (!item || item.aggregatedAt !== undefined) return this.refused(scope, false);
    const next = { ...item, aggregatedAt: at, outcome };
    this.write(next);
    this.charge(scope, { writeUnits: writeUnits(item, next) });
    return true;
  }

  async listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]> {
    return this.queryCharged(scope, SYNC_PREFIX)
      .filter((item) => item.aggregatedAt === undefined)
      .map(decodeSyncPoint)
      .sort((a, b) => compareIds(a.parentId, b.parentId) || a.seq - b.seq);
  }

  // --- the "table" ----------------------------------------------------------------------

  /** Writes the patched item (synchronously: no other call runs between the check and the write). */
  private writeBranch(scope: Scope, branchId: string, item: Item, fields: Item): Item {
    const next = { ...item, ...fields, version: Number(item.version) + 1 };
    assertFits(`branch ${branchId}`, next);
    this.write(next);
    this.charge(scope, { writeUnits: writeUnits(item, next) });
    return next;
  }

  /** Decoded at once unless the item refers to stored values (see the header). */
  private decodeBranch(scope: Scope, item: Item): BranchRecord | Promise<BranchRecord> {
    const checked = checkOutValues(scope, item, this.blobs);
    return checked instanceof Promise ? checked.then(decodeBranch) : decodeBranch(checked);
  }

  private decodeBranches(scope: Scope, items: Item[]): BranchRecord[] | Promise<BranchRecord[]> {
    const branches = items.map((item) => this.decodeBranch(scope, item));
    return branches.some((b) => b instanceof Promise) ? Promise.all(branches) : (branches as BranchRecord[]);
  }

  /** A consistent read, billed: 4 KB units of the item (1 when there is none). */
  private readCharged(scope: Scope, key: Key): Item | undefined {
    const item = this.read(key);
    this.charge(scope, { readUnits: readUnits(size(item)) });
    return item;
  }

  /** A consistent query of the run's partition, billed on the total size of what it read. */
  private queryCharged(scope: Scope, prefix: string): Item[] {
    const items = this.partitionItems(runPk(scope), prefix);
    this.charge(scope, { readUnits: readUnits(items.reduce((n, i) => n + size(i), 0)) });
    return items;
  }

  /** A refused conditional write still costs a unit (and `readUnits` for a follow-up read). */
  private refused<T>(scope: Scope, result: T, reads = 0): T {
    this.charge(scope, { writeUnits: 1, ...(reads ? { readUnits: reads } : {}) });
    return result;
  }

  private read(key: Key): Item | undefined {
    return this.partitions.get(key.PK)?.get(key.SK);
  }

  private partitionItems(pk: string, prefix: string): Item[] {
    return [...(this.partitions.get(pk)?.values() ?? [])].filter((item) => String(item.SK).startsWith(prefix));
  }

  /** Items are replaced, never mutated, so a decoded record never aliases stored state. */
  private write(item: Item): void {
    this.onPut?.(item);
    this.store(item);
  }

  private store(item: Item): void {
    const pk = String(item.PK);
    let partition = this.partitions.get(pk);
    if (!partition) this.partitions.set(pk, (partition = new Map()));
    partition.set(String(item.SK), item);
  }

  private putIfAbsent(item: Item): boolean {
    const scope = scopeOfItem(item);
    if (this.read({ PK: String(item.PK), SK: String(item.SK) })) {
      this.charge(scope, { writeUnits: 1 });
      return false;
    }
    this.write(item);
    // A child branch is also written to GSI1 (keys only: one unit).
    this.charge(scope, { writeUnits: writeUnits(item) + (item.GSI1PK !== undefined ? 1 : 0) });
    return true;
  }

  private charge(scope: Scope | undefined, usage: Partial<CostCounters>): void {
    if (scope && this.meter) this.meter.add(scope, usage);
  }
}

/** The in-memory store's sync points: the item, its fan-in (the same shards and roll-up as the DynamoDB store), batch tokens, the aggregation claim. */
import { BranchSpawnerError, NotFoundError } from '../../core/errors';
import { compareIds, type ChildOutcome, type Scope, type SyncPointRecord } from '../../core/model';
import type { BatchClaim, BatchClaimed, RecordChildEndResult, SyncPointStore } from '../../core/ports';
import type { WorkMark } from '../../core/work-mark';
import {
  assertFits,
  batchClaimAttribute,
  batchPoolKey,
  batchTokenKey,
  decodeCounters,
  decodeSyncPoint,
  readUnits,
  runPk,
  SYNC_PREFIX,
  syncKey,
  syncPointItem,
  writeUnitsOfSize,
  type Item,
} from '../dynamodb/item-codec';
import {
  childOfShardMember,
  countedInRange,
  decodeSnapshot,
  encodeSnapshot,
  fanInShardOf,
  shardKey,
  shardsOfRange,
  shardSkPrefix,
  shardSnapshotAttribute,
} from '../dynamodb/fan-in-shards';
import { size, writeUnits, type MemoryTable } from './memory-table';

const CHILD_OUTCOMES = new Set<ChildOutcome>(['succeeded', 'failed', 'cancelled']);

function countsOf(item: Item | undefined) {
  return { succeeded: Number(item?.succeeded ?? 0), failed: Number(item?.failed ?? 0), cancelled: Number(item?.cancelled ?? 0) };
}

export class MemorySyncPoints implements SyncPointStore {
  constructor(private readonly table: MemoryTable) {}

  async createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean> {
    const item = syncPointItem(syncPoint);
    assertFits(`sync point ${syncPoint.parentId}#${syncPoint.seq}`, item);
    return this.table.putIfAbsent(item);
  }

  async getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined> {
    const item = this.table.readCharged(scope, syncKey(scope, parentId, seq));
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
    const old = this.table.read(shardItemKey);
    const done = old?.done instanceof Set ? old.done : new Set<string>();
    const applied = !done.has(member);
    let shardItem = old;
    if (applied) {
      shardItem = { ...shardItemKey, ...old, done: new Set([...done, member]), [outcome]: Number(old?.[outcome] ?? 0) + 1 };
      this.table.write(shardItem);
    }
    this.table.charge(scope, applied ? { writeUnits: writeUnits(old, shardItem) } : { writeUnits: 1, readUnits: readUnits(size(old)) });
    const root = this.table.read(syncKey(scope, parentId, seq));
    if (!root) {
      this.table.charge(scope, { writeUnits: 1 });
      throw new NotFoundError(`sync point ${parentId}#${seq} of run ${scope.runId} does not exist`);
    }
    const attribute = shardSnapshotAttribute(shard);
    const ours = decodeSnapshot(encodeSnapshot(countsOf(shardItem)));
    const rolled = decodeSnapshot(root[attribute]);
    if (rolled.succeeded + rolled.failed + rolled.cancelled >= ours.succeeded + ours.failed + ours.cancelled) {
      this.table.charge(scope, { readUnits: readUnits(size(root)) });
      return { applied, counters: decodeCounters(root) };
    }
    const next: Item = { ...root, [attribute]: encodeSnapshot(ours) };
    for (const name of ['succeeded', 'failed', 'cancelled'] as const) next[name] = Number(root[name] ?? 0) + ours[name] - rolled[name];
    this.table.write(next);
    this.table.charge(scope, { writeUnits: writeUnits(root, next) });
    return { applied, counters: decodeCounters(next) };
  }

  async listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]> {
    const prefix = shardSkPrefix(parentId, seq);
    const items = this.table.partitionItems(runPk(scope), prefix);
    this.table.charge(scope, { readUnits: readUnits(items.reduce((n, i) => n + size(i), 0)) });
    return items
      .flatMap((item) => {
        const shard = String(item.SK).slice(prefix.length);
        return item.done instanceof Set ? [...item.done].map((m) => childOfShardMember(parentId, shard, m)) : [];
      })
      .sort(compareIds);
  }

  async countEndedInRange(scope: Scope, parentId: string, seq: number, first: number, count: number): Promise<number> {
    const items = shardsOfRange(first, count).map((shard) => this.table.read(shardKey(scope, parentId, seq, shard)));
    this.table.charge(scope, { readUnits: items.reduce((n, i) => n + (i ? readUnits(size(i)) : 0), 0) || 1 });
    return items.reduce((n, item) => n + countedInRange(item, first, count), 0);
  }

  async putBatchToken(scope: Scope, parentId: string, seq: number, first: number, taskToken: string): Promise<void> {
    const item: Item = { ...batchTokenKey(scope, parentId, seq, first), entity: 'BATCH', taskToken };
    this.table.write(item);
    this.table.charge(scope, { writeUnits: writeUnitsOfSize(size(item)) });
  }

  async getBatchToken(scope: Scope, parentId: string, seq: number, first: number): Promise<string | undefined> {
    const item = this.table.read(batchTokenKey(scope, parentId, seq, first));
    this.table.charge(scope, { readUnits: item ? readUnits(size(item)) : 1 });
    return typeof item?.taskToken === 'string' ? item.taskToken : undefined;
  }

  async claimBatchChild(scope: Scope, parentId: string, seq: number, first: number, claim: BatchClaim): Promise<BatchClaimed | undefined> {
    if (claim.start >= claim.end) return undefined; // nothing past the window: no pool
    const key = batchPoolKey(scope, parentId, seq, first);
    const mine = batchClaimAttribute(claim.ender - first);
    const item = this.table.read(key);
    const next = typeof item?.next === 'number' ? item.next : claim.start - first;
    if (item?.[mine] === undefined && next < claim.end - first) {
      const claimed: Item = { ...(item ?? key), next: next + 1, [mine]: first + next - claim.ender };
      this.table.write(claimed);
      this.table.charge(scope, { writeUnits: writeUnits(item, claimed) });
      return { index: first + next, repeat: false };
    }
    if (!claim.mayRepeat) return this.table.refused(scope, undefined);
    const earlier = item?.[mine];
    return this.table.refused(scope, typeof earlier === 'number' ? { index: claim.ender + earlier, repeat: true } : undefined, 1);
  }

  async claimAggregation(
    scope: Scope,
    parentId: string,
    seq: number,
    outcome: 'resume' | 'fail',
    at: number,
    by: WorkMark,
  ): Promise<boolean> {
    const item = this.table.read(syncKey(scope, parentId, seq));
    if (!item || item.aggregatedAt !== undefined) return this.table.refused(scope, false);
    const next = { ...item, aggregatedAt: at, outcome, aggregatedBy: by };
    this.table.write(next);
    this.table.charge(scope, { writeUnits: writeUnits(item, next) });
    return true;
  }

  async listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]> {
    return this.table
      .queryCharged(scope, SYNC_PREFIX)
      .filter((item) => item.aggregatedAt === undefined)
      .map(decodeSyncPoint)
      .sort((a, b) => compareIds(a.parentId, b.parentId) || a.seq - b.seq);
  }
}

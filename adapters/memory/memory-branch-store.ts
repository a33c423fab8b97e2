/**
 * In-memory BranchStore: the reference for the store contract (no I/O).
 *
 * It keeps the very items the DynamoDB store writes (adapters/dynamodb/item-codec), so values
 * round-trip the same way (user values go through JSON), the same payloads are refused as too
 * large, and nothing a caller holds is shared with stored state: records are encoded on the
 * way in and decoded afresh on the way out. Each method checks and writes without awaiting in
 * between, which makes every conditional write atomic, as DynamoDB's are.
 */
import { BranchSpawnerError, NotFoundError } from '../../core/errors';
import {
  canTransition,
  type BranchRecord,
  type BranchStatus,
  type ChildOutcome,
  type RunRecord,
  type RunStatus,
  type Scope,
  type SyncPointRecord,
} from '../../core/model';
import type { BranchPatch, BranchStore, RecordChildEndResult, ReserveResult, RunPatch } from '../../core/ports';
import {
  assertFits,
  BRANCH_PREFIX,
  branchItem,
  branchKey,
  childrenPk,
  compareIds,
  decodeBranch,
  decodeCounters,
  decodeRun,
  decodeSyncPoint,
  encodeBranchPatch,
  encodeRunPatch,
  runItem,
  runKey,
  runPk,
  SYNC_PREFIX,
  syncKey,
  syncPointItem,
  type Item,
  type Key,
} from '../dynamodb/item-codec';

const CHILD_OUTCOMES = new Set<ChildOutcome>(['succeeded', 'failed', 'cancelled']);

export class MemoryBranchStore implements BranchStore {
  /** PK → SK → item, like the table. */
  private readonly partitions = new Map<string, Map<string, Item>>();

  async createRun(run: RunRecord): Promise<boolean> {
    const item = runItem(run);
    assertFits(`run ${run.runId}`, item);
    return this.putIfAbsent(item);
  }

  async getRun(scope: Scope): Promise<RunRecord | undefined> {
    const item = this.read(runKey(scope));
    return item && decodeRun(item);
  }

  async finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean> {
    const fields = { ...encodeRunPatch(patch), status };
    assertFits(`run ${scope.runId}`, fields);
    const item = this.read(runKey(scope));
    if (!item || item.status !== 'RUNNING') return false;
    const next = { ...item, ...fields };
    assertFits(`run ${scope.runId}`, next);
    this.write(next);
    return true;
  }

  async reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult> {
    const item = this.read(runKey(scope));
    if (!item) return { ok: false, branchCount: 0 };
    const branchCount = Number(item.branchCount ?? 0);
    const keys = item.spawnKeys instanceof Set ? item.spawnKeys : new Set<string>();
    if (keys.has(spawnKey)) return { ok: true, branchCount };
    if (branchCount + count > max) return { ok: false, branchCount };
    const next = { ...item, branchCount: branchCount + count, spawnKeys: new Set([...keys, spawnKey]) };
    this.write(next);
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
    const items = branches.map((b) => {
      const item = branchItem(b);
      assertFits(`branch ${b.id}`, item);
      return item;
    });
    return branches.filter((_, i) => this.putIfAbsent(items[i])).map((b) => b.id);
  }

  async getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined> {
    const item = this.read(branchKey(scope, branchId));
    return item && decodeBranch(item);
  }

  async getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]> {
    return branchIds.flatMap((id) => {
      const item = this.read(branchKey(scope, id));
      return item ? [decodeBranch(item)] : [];
    });
  }

  async updateBranch(
    scope: Scope,
    branchId: string,
    expectedVersion: number,
    patch: BranchPatch,
  ): Promise<BranchRecord | undefined> {
    const fields = encodeBranchPatch(patch);
    assertFits(`branch ${branchId}`, fields);
    const item = this.read(branchKey(scope, branchId));
    if (!item || item.version !== expectedVersion) return undefined;
    return this.writeBranch(branchId, item, fields);
  }

  async transitionBranch(
    scope: Scope,
    branchId: string,
    from: readonly BranchStatus[],
    to: BranchStatus,
    patch: BranchPatch = {},
  ): Promise<BranchRecord | undefined> {
    const fields = { ...encodeBranchPatch(patch), status: to };
    assertFits(`branch ${branchId}`, fields);
    const item = this.read(branchKey(scope, branchId));
    if (!item) return undefined;
    const status = item.status as BranchStatus;
    // A terminal branch never changes, whatever `from` says.
    if (!from.includes(status) || !canTransition(status, to)) return undefined;
    return this.writeBranch(branchId, item, fields);
  }

  async listBranches(scope: Scope): Promise<BranchRecord[]> {
    return this.partitionItems(runPk(scope), BRANCH_PREFIX)
      .map(decodeBranch)
      .sort((a, b) => compareIds(a.id, b.id));
  }

  async listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]> {
    const gsiPk = childrenPk(scope, parentId);
    return this.partitionItems(runPk(scope), BRANCH_PREFIX)
      .filter((item) => item.GSI1PK === gsiPk)
      .map(decodeBranch)
      .sort((a, b) => compareIds(a.id, b.id));
  }

  async createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean> {
    const item = syncPointItem(syncPoint);
    assertFits(`sync point ${syncPoint.parentId}#${syncPoint.seq}`, item);
    return this.putIfAbsent(item);
  }

  async getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined> {
    const item = this.read(syncKey(scope, parentId, seq));
    return item && decodeSyncPoint(item);
  }

  async recordChildEnd(
    scope: Scope,
    parentId: string,
    seq: number,
    childId: string,
    outcome: ChildOutcome,
  ): Promise<RecordChildEndResult> {
    if (!CHILD_OUTCOMES.has(outcome)) throw new BranchSpawnerError(`unknown child outcome ${String(outcome)}`);
    const item = this.read(syncKey(scope, parentId, seq));
    if (!item) throw new NotFoundError(`sync point ${parentId}#${seq} of run ${scope.runId} does not exist`);
    const done = item.done instanceof Set ? item.done : new Set<string>();
    if (done.has(childId)) return { applied: false, counters: decodeCounters(item) };
    const next = { ...item, done: new Set([...done, childId]), [outcome]: Number(item[outcome] ?? 0) + 1 };
    this.write(next);
    return { applied: true, counters: decodeCounters(next) };
  }

  async claimAggregation(
    scope: Scope,
    parentId: string,
    seq: number,
    outcome: 'resume' | 'fail',
    at: number,
  ): Promise<boolean> {
    const item = this.read(syncKey(scope, parentId, seq));
    if (!item || item.aggregatedAt !== undefined) return false;
    this.write({ ...item, aggregatedAt: at, outcome });
    return true;
  }

  async listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]> {
    return this.partitionItems(runPk(scope), SYNC_PREFIX)
      .filter((item) => item.aggregatedAt === undefined)
      .map(decodeSyncPoint)
      .sort((a, b) => compareIds(a.parentId, b.parentId) || a.seq - b.seq);
  }

  // --- the "table" ----------------------------------------------------------------------

  private writeBranch(branchId: string, item: Item, fields: Item): BranchRecord {
    const next = { ...item, ...fields, version: Number(item.version) + 1 };
    assertFits(`branch ${branchId}`, next);
    this.write(next);
    return decodeBranch(next);
  }

  private read(key: Key): Item | undefined {
    return this.partitions.get(key.PK)?.get(key.SK);
  }

  private partitionItems(pk: string, prefix: string): Item[] {
    return [...(this.partitions.get(pk)?.values() ?? [])].filter((item) => String(item.SK).startsWith(prefix));
  }

  /** Items are replaced, never mutated, so a decoded record never aliases stored state. */
  private write(item: Item): void {
    const pk = String(item.PK);
    let partition = this.partitions.get(pk);
    if (!partition) this.partitions.set(pk, (partition = new Map()));
    partition.set(String(item.SK), item);
  }

  private putIfAbsent(item: Item): boolean {
    if (this.read({ PK: String(item.PK), SK: String(item.SK) })) return false;
    this.write(item);
    return true;
  }
}

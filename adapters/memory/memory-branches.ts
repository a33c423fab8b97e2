/** The in-memory store's branch records: one item each in the run's partition, children found by their GSI1 key. */
import { canTransition, type BranchOutcome, type BranchRecord, type BranchStatus, type RunStatus, type Scope } from '../../core/model';
import type { BlobStore, BranchPage, BranchPatch, BranchRecordStore, Statuses } from '../../core/ports';
import {
  assertFits,
  BRANCH_PREFIX,
  branchItem,
  branchKey,
  checkInValues,
  checkOutValues,
  childrenPk,
  compareIds,
  decodeBranch,
  encodeBranchPatch,
  OUTCOME_ATTRIBUTES,
  projectItem,
  readUnits,
  runKey,
  runPk,
  type Item,
} from '../dynamodb/item-codec';
import { size, writeUnits, type MemoryTable } from './memory-table';

export class MemoryBranches implements BranchRecordStore {
  constructor(
    private readonly table: MemoryTable,
    private readonly blobs: BlobStore,
  ) {}

  async createBranches(branches: BranchRecord[]): Promise<string[]> {
    // Every item is checked before any is written, as in the DynamoDB store.
    const checked = branches.map((b) => checkInValues(`branch ${b.id}`, b, branchItem(b), this.blobs));
    const items = checked.some((item) => item instanceof Promise) ? await Promise.all(checked) : (checked as Item[]);
    items.forEach((item, i) => assertFits(`branch ${branches[i].id}`, item));
    return branches.filter((_, i) => this.table.putIfAbsent(items[i])).map((b) => b.id);
  }

  async getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined> {
    const item = this.table.readCharged(scope, branchKey(scope, branchId));
    return item && this.decodeBranch(scope, item);
  }

  async getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]> {
    // BatchGetItem bills each item on its own, rounded up to 4 KB.
    const items = branchIds.flatMap((id): Item[] => {
      const item = this.table.readCharged(scope, branchKey(scope, id));
      return item ? [item] : [];
    });
    return this.decodeBranches(scope, items);
  }

  async getOutcomes(scope: Scope, branchIds: string[]): Promise<BranchOutcome[]> {
    // Billed as getBranches: DynamoDB charges a projected read for the whole item.
    const items = branchIds.flatMap((id): Item[] => {
      const item = this.table.readCharged(scope, branchKey(scope, id));
      return item ? [projectItem(item, OUTCOME_ATTRIBUTES)] : [];
    });
    return this.decodeBranches(scope, items);
  }

  async getStatuses(scope: Scope, branchIds: string[]): Promise<Statuses> {
    // One BatchGetItem in DynamoDB: each item is billed on its own, whatever the projection.
    const run = this.table.readCharged(scope, runKey(scope));
    const branches = new Map<string, BranchStatus>();
    for (const id of new Set(branchIds)) {
      const item = this.table.readCharged(scope, branchKey(scope, id));
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
    const item = this.table.read(branchKey(scope, branchId));
    if (!item || item.version !== expectedVersion) return this.table.refused(scope, undefined);
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
    const item = this.table.read(branchKey(scope, branchId));
    if (!item) return this.table.refused(scope, undefined);
    const status = item.status as BranchStatus;
    // A terminal branch never changes, whatever `from` says (the DynamoDB store sends no request when no `from` may).
    if (!from.some((f) => canTransition(f, to))) return undefined;
    if (!from.includes(status) || !canTransition(status, to)) return this.table.refused(scope, undefined);
    return this.decodeBranch(scope, this.writeBranch(scope, branchId, item, fields));
  }

  async listBranches(scope: Scope): Promise<BranchRecord[]> {
    const branches = await this.decodeBranches(scope, this.table.queryCharged(scope, BRANCH_PREFIX));
    return branches.sort((a, b) => compareIds(a.id, b.id));
  }

  async listBranchesPage(scope: Scope, page: BranchPage): Promise<{ branches: BranchRecord[]; more: boolean }> {
    // DynamoDB's order: the sort keys as strings.
    const start = page.after === undefined ? undefined : branchKey(scope, page.after).SK;
    const items = this.table
      .partitionItems(runPk(scope), BRANCH_PREFIX)
      .filter((item) => start === undefined || String(item.SK) > start)
      .sort((a, b) => (String(a.SK) < String(b.SK) ? -1 : 1));
    const taken = items.slice(0, Math.max(1, page.limit));
    this.table.charge(scope, { readUnits: readUnits(taken.reduce((n, i) => n + size(i), 0)) });
    return { branches: await this.decodeBranches(scope, taken), more: items.length > taken.length };
  }

  async listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]> {
    const gsiPk = childrenPk(scope, parentId);
    const children = this.table.partitionItems(runPk(scope), BRANCH_PREFIX).filter((item) => item.GSI1PK === gsiPk);
    // The keys-only index query, then a consistent batch read of the items.
    this.table.charge(scope, { readUnits: readUnits(children.length * 100) + children.reduce((n, i) => n + readUnits(size(i)), 0) });
    return (await this.decodeBranches(scope, children)).sort((a, b) => compareIds(a.id, b.id));
  }

  /** Writes the patched item (synchronously: no other call runs between the check and the write). */
  private writeBranch(scope: Scope, branchId: string, item: Item, fields: Item): Item {
    const next = { ...item, ...fields, version: Number(item.version) + 1 };
    assertFits(`branch ${branchId}`, next);
    this.table.write(next);
    this.table.charge(scope, { writeUnits: writeUnits(item, next) });
    return next;
  }

  /** Decoded at once unless the item refers to stored values (see memory-branch-store.ts). */
  private decodeBranch(scope: Scope, item: Item): BranchRecord | Promise<BranchRecord> {
    const checked = checkOutValues(scope, item, this.blobs);
    return checked instanceof Promise ? checked.then(decodeBranch) : decodeBranch(checked);
  }

  private decodeBranches(scope: Scope, items: Item[]): BranchRecord[] | Promise<BranchRecord[]> {
    const branches = items.map((item) => this.decodeBranch(scope, item));
    return branches.some((b) => b instanceof Promise) ? Promise.all(branches) : (branches as BranchRecord[]);
  }
}

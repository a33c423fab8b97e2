/** The in-memory store's runs: the run item, its counters, idempotency keys, the team's listing. */
import type { RunRecord, RunStatus, Scope } from '../../core/model';
import type { BlobStore, ListedRun, ReserveResult, RunPage, RunPatch, RunStore } from '../../core/ports';
import { assertFits, checkInValues, checkOutValues, decodeRun, encodeRunPatch, readUnits, runItem, runKey, runKeyItem, runsPk, runsPosition, RUN_SK } from '../dynamodb/item-codec';
import { scopeOfItem, size, writeUnits, type MemoryTable } from './memory-table';

export class MemoryRuns implements RunStore {
  constructor(
    private readonly table: MemoryTable,
    private readonly blobs: BlobStore,
  ) {}

  async createRun(run: RunRecord): Promise<boolean> {
    let item = checkInValues(`run ${run.runId}`, run, runItem(run), this.blobs);
    if (item instanceof Promise) item = await item;
    assertFits(`run ${run.runId}`, item);
    return this.table.putIfAbsent(item);
  }

  async getRun(scope: Scope): Promise<RunRecord | undefined> {
    const item = this.table.readCharged(scope, runKey(scope));
    if (!item) return undefined;
    const checked = checkOutValues(scope, item, this.blobs);
    return checked instanceof Promise ? checked.then(decodeRun) : decodeRun(checked);
  }

  async finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean> {
    let fields = checkInValues(`run ${scope.runId}`, scope, { ...encodeRunPatch(patch), status }, this.blobs);
    if (fields instanceof Promise) fields = await fields;
    assertFits(`run ${scope.runId}`, fields);
    const item = this.table.read(runKey(scope));
    if (!item || item.status !== 'RUNNING') return this.table.refused(scope, false);
    const next = { ...item, ...fields };
    assertFits(`run ${scope.runId}`, next);
    this.table.write(next);
    this.table.charge(scope, { writeUnits: writeUnits(item, next) });
    return true;
  }

  async reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult> {
    const item = this.table.read(runKey(scope));
    // A refusal costs the refused write and the read that tells why, as in DynamoDB.
    if (!item) return this.table.refused(scope, { ok: false, branchCount: 0 }, 1);
    const branchCount = Number(item.branchCount ?? 0);
    const keys = item.spawnKeys instanceof Set ? item.spawnKeys : new Set<string>();
    if (keys.has(spawnKey)) return this.table.refused(scope, { ok: true, branchCount }, readUnits(size(item)));
    if (branchCount + count > max) return this.table.refused(scope, { ok: false, branchCount }, readUnits(size(item)));
    const next = { ...item, branchCount: branchCount + count, spawnKeys: new Set([...keys, spawnKey]) };
    this.table.write(next);
    this.table.charge(scope, { writeUnits: writeUnits(item, next) });
    return { ok: true, branchCount: branchCount + count };
  }

  async addRunTokens(scope: Scope, tokens: number): Promise<number | undefined> {
    const item = this.table.read(runKey(scope));
    if (!item) return undefined;
    const usedTokens = Number(item.usedTokens ?? 0) + tokens;
    this.table.write({ ...item, usedTokens });
    return usedTokens;
  }

  async claimRunId(team: string, keyHash: string, runId: string): Promise<string> {
    const item = runKeyItem(team, keyHash, runId);
    if (this.table.putIfAbsent(item)) return runId;
    return String(this.table.read({ PK: String(item.PK), SK: String(item.SK) })!.runId);
  }

  async listRunsPage(team: string, page: RunPage): Promise<{ runs: ListedRun[]; more: boolean }> {
    // DynamoDB's order on the index: sort keys as strings, newest (greatest) first.
    const pk = runsPk(team);
    const after = page.after === undefined ? undefined : runsPosition(page.after);
    const entries = this.table
      .itemsWithSk(RUN_SK)
      .filter((item) => item.GSI1PK === pk && (after === undefined || String(item.GSI1SK) < after))
      .sort((a, b) => (String(a.GSI1SK) < String(b.GSI1SK) ? 1 : -1));
    const taken = entries.slice(0, Math.max(1, page.limit));
    const runs = await Promise.all(taken.map(async (item) => ({ run: (await this.getRun(scopeOfItem(item)!))!, position: String(item.GSI1SK) })));
    return { runs, more: entries.length > taken.length };
  }
}

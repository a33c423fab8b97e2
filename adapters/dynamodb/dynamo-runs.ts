/** The store's runs on the table (see docs/dynamodb-schema.md): the run item, its counters, idempotency keys, the team's listing. */
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { BranchSpawnerError } from '../../core/errors';
import type { RunRecord, RunStatus, Scope } from '../../core/model';
import type { ListedRun, ReserveResult, RunPage, RunPatch, RunStore } from '../../core/ports';
import { assertFits, checkInValues, checkOutValues, decodeRun, encodeRunPatch, GSI1, runIdOfRunsSk, runItem, runKey, runKeyItem, runsPk, runsPosition } from './item-codec';
import { Expr } from './expression';
import type { DynamoTable } from './dynamo-table';

export class DynamoRuns implements RunStore {
  constructor(private readonly table: DynamoTable) {}

  async createRun(run: RunRecord): Promise<boolean> {
    const item = this.table.withTtl(await checkInValues(`run ${run.runId}`, run, runItem(run), this.table.blobs));
    assertFits(`run ${run.runId}`, item);
    return this.table.putIfAbsent(run, item, `createRun ${run.runId}`);
  }

  async getRun(scope: Scope): Promise<RunRecord | undefined> {
    const item = await this.table.get(scope, runKey(scope), `getRun ${scope.runId}`);
    return item && decodeRun(await checkOutValues(scope, item, this.table.blobs));
  }

  async finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean> {
    const fields = await checkInValues(`run ${scope.runId}`, scope, { ...encodeRunPatch(patch), status }, this.table.blobs);
    assertFits(`run ${scope.runId}`, fields);
    const x = new Expr();
    const updated = await this.table.conditional(`finishRun ${scope.runId}`, () =>
      this.table.send(scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: runKey(scope),
          UpdateExpression: `SET ${x.sets(fields).join(', ')}`,
          ConditionExpression: `${x.name('status')} = ${x.value('RUNNING')}`,
          ...x.params,
        }),
      ),
    );
    return updated !== undefined;
  }

  async reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult> {
    const x = new Expr();
    const context = `reserveBranches ${scope.runId} ${spawnKey}`;
    const key = runKey(scope);
    const updated = await this.table.conditional(context, () =>
      this.table.send(scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: key,
          // The key set makes the reservation idempotent: a repeated spawn key never counts again.
          UpdateExpression: `ADD ${x.name('branchCount')} ${x.value(count)}, ${x.name('spawnKeys')} ${x.value(new Set([spawnKey]))}`,
          ConditionExpression:
            `attribute_exists(${x.name('PK')}) AND NOT contains(${x.name('spawnKeys')}, ${x.value(spawnKey)})` +
            ` AND ${x.name('branchCount')} <= ${x.value(max - count)}`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    if (updated) return { ok: true, branchCount: Number(updated.Attributes?.branchCount) };
    // Refused: either this key was reserved before (ok) or the budget is spent.
    const current = await this.table.get(scope, key, context, ['branchCount', 'spawnKeys']);
    if (!current) return { ok: false, branchCount: 0 };
    const keys = current.spawnKeys;
    const branchCount = Number(current.branchCount ?? 0);
    return keys instanceof Set && keys.has(spawnKey) ? { ok: true, branchCount } : { ok: false, branchCount };
  }

  async addRunTokens(scope: Scope, tokens: number): Promise<number | undefined> {
    const x = new Expr();
    const updated = await this.table.conditional(`addRunTokens ${scope.runId}`, () =>
      this.table.doc.send(
        new UpdateCommand({
          TableName: this.table.name,
          Key: runKey(scope),
          UpdateExpression: `ADD ${x.name('usedTokens')} ${x.value(tokens)}`,
          ConditionExpression: `attribute_exists(${x.name('PK')})`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    return updated ? Number(updated.Attributes?.usedTokens) : undefined;
  }

  async claimRunId(team: string, keyHash: string, runId: string): Promise<string> {
    const item = runKeyItem(team, keyHash, runId);
    const scope = { team, runId: `key-${keyHash}` };
    if (await this.table.putIfAbsent(scope, item, `claimRunId ${keyHash}`)) return runId;
    const kept = await this.table.get(scope, { PK: String(item.PK), SK: String(item.SK) }, `claimRunId ${keyHash}`);
    if (typeof kept?.runId !== 'string') throw new BranchSpawnerError(`the run id kept for idempotency key ${keyHash} is missing`);
    return kept.runId;
  }

  /**
   * One Query page of the team's runs on GSI1 (keys only, newest first), then each run read by
   * its key: `limit` index entries and `limit` reads at most, whatever the team holds.
   */
  async listRunsPage(team: string, page: RunPage): Promise<{ runs: ListedRun[]; more: boolean }> {
    const x = new Expr();
    const listing: Scope = { team, runId: '(runs)' };
    const pk = runsPk(team);
    const result = await this.table.call(`listRunsPage ${team}`, () =>
      this.table.send(
        listing,
        new QueryCommand({
          TableName: this.table.name,
          IndexName: GSI1,
          KeyConditionExpression: `${x.name('GSI1PK')} = ${x.value(pk)}`,
          ScanIndexForward: false,
          Limit: Math.max(1, page.limit),
          ...(page.after === undefined ? {} : { ExclusiveStartKey: { GSI1PK: pk, GSI1SK: runsPosition(page.after), ...runKey({ team, runId: runIdOfRunsSk(page.after) }) } }),
          ...x.params,
        }),
      ),
    );
    const positions = (result.Items ?? []).map((item) => String(item.GSI1SK));
    const runs = await Promise.all(positions.map(async (position) => ({ run: await this.getRun({ team, runId: runIdOfRunsSk(position) }), position })));
    // A run whose item is gone (its TTL passed after the index was read) is left out.
    return { runs: runs.flatMap((r) => (r.run ? [{ run: r.run, position: r.position }] : [])), more: result.LastEvaluatedKey !== undefined };
  }
}

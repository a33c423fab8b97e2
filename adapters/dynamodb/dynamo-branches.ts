/** The store's branch records on the table (see docs/dynamodb-schema.md): one item each in the run's partition, children on GSI1. */
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { canTransition, type BranchOutcome, type BranchRecord, type BranchStatus, type RunStatus, type Scope } from '../../core/model';
import type { BranchPage, BranchPatch, BranchRecordStore, Statuses } from '../../core/ports';
import { mapLimit } from '../../core/map-limit';
import {
  assertFits,
  BRANCH_PREFIX,
  branchIdOfSk,
  branchItem,
  branchKey,
  checkInValues,
  checkOutValues,
  childrenPk,
  compareIds,
  decodeBranch,
  encodeBranchPatch,
  GSI1,
  OUTCOME_ATTRIBUTES,
  runKey,
  runPk,
  RUN_SK,
  type Key,
} from './item-codec';
import { Expr } from './expression';
import { BATCH_GET_MAX, type Attributes, type DynamoTable } from './dynamo-table';

export class DynamoBranches implements BranchRecordStore {
  constructor(private readonly table: DynamoTable) {}

  async createBranches(branches: BranchRecord[]): Promise<string[]> {
    // Check every item before writing any, so a refusal leaves nothing half-written.
    const items = await Promise.all(branches.map(async (b) => this.table.withTtl(await checkInValues(`branch ${b.id}`, b, branchItem(b), this.table.blobs))));
    items.forEach((item, i) => assertFits(`branch ${branches[i].id}`, item));
    const created = await mapLimit(items, this.table.writeConcurrency, (item, i) =>
      this.table.putIfAbsent(branches[i], item, `createBranches ${branches[i].id}`),
    );
    return branches.filter((_, i) => created[i]).map((b) => b.id);
  }

  async getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined> {
    const item = await this.table.get(scope, branchKey(scope, branchId), `getBranch ${branchId}`);
    return item && this.decodeBranch(scope, item);
  }

  async getStatuses(scope: Scope, branchIds: string[]): Promise<Statuses> {
    const ids = [...new Set(branchIds)];
    const keys = [runKey(scope), ...ids.map((id) => branchKey(scope, id))];
    // One request for a step's few statuses; a spawn's children (a retry of its opening) 100 a request.
    const chunks: Key[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_MAX) chunks.push(keys.slice(i, i + BATCH_GET_MAX));
    const items = (await Promise.all(chunks.map((chunk) => this.table.batchGet(scope, chunk, `getStatuses ${scope.runId}`, ['SK', 'id', 'status'])))).flat();
    const branches = new Map<string, BranchStatus>();
    let run: RunStatus | undefined;
    for (const item of items) {
      if (item.SK === RUN_SK) run = item.status as RunStatus;
      else branches.set(String(item.id), item.status as BranchStatus);
    }
    return { run, branches };
  }

  /** BatchGetItem, ConsistentRead, 100 keys per request, unprocessed keys asked again. */
  async getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]> {
    return this.readBranches(scope, branchIds);
  }

  /** As getBranches, projected to the outcome's attributes: a large input or memory is neither sent nor read from its blob. */
  async getOutcomes(scope: Scope, branchIds: string[]): Promise<BranchOutcome[]> {
    return this.readBranches(scope, branchIds, OUTCOME_ATTRIBUTES);
  }

  private async readBranches(scope: Scope, branchIds: string[], attributes?: readonly string[]): Promise<BranchRecord[]> {
    const unique = [...new Set(branchIds)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += BATCH_GET_MAX) chunks.push(unique.slice(i, i + BATCH_GET_MAX));
    const found = new Map<string, Attributes>();
    await Promise.all(
      chunks.map(async (chunk) => {
        for (const item of await this.table.batchGet(scope, chunk.map((id) => branchKey(scope, id)), `getBranches ${scope.runId}`, attributes && [...attributes])) {
          found.set(String(item.id), item);
        }
      }),
    );
    // Decode per occurrence so a repeated id never hands out a shared object.
    return Promise.all(branchIds.flatMap((id): Attributes[] => {
      const item = found.get(id);
      return item ? [item] : [];
    }).map((item) => this.decodeBranch(scope, item)));
  }

  async updateBranch(
    scope: Scope,
    branchId: string,
    expectedVersion: number,
    patch: BranchPatch,
  ): Promise<BranchRecord | undefined> {
    const fields = await checkInValues(`branch ${branchId}`, scope, encodeBranchPatch(patch), this.table.blobs);
    assertFits(`branch ${branchId}`, fields);
    const x = new Expr();
    const version = x.name('version');
    return this.updateBranchItem(scope, branchId, `updateBranch ${branchId}`, {
      UpdateExpression: `SET ${[...x.sets(fields), `${version} = ${version} + ${x.value(1)}`].join(', ')}`,
      ConditionExpression: `${version} = ${x.value(expectedVersion)}`,
      ...x.params,
    });
  }

  async transitionBranch(
    scope: Scope,
    branchId: string,
    from: readonly BranchStatus[],
    to: BranchStatus,
    patch: BranchPatch = {},
  ): Promise<BranchRecord | undefined> {
    // Only statuses the model lets become `to`: a terminal branch never changes, whatever `from` says.
    const allowed = [...new Set(from)].filter((status) => canTransition(status, to));
    if (allowed.length === 0) return undefined;
    const fields = await checkInValues(`branch ${branchId}`, scope, { ...encodeBranchPatch(patch), status: to }, this.table.blobs);
    assertFits(`branch ${branchId}`, fields);
    const x = new Expr();
    const version = x.name('version');
    const statuses = allowed.map((s) => x.value(s)).join(', ');
    return this.updateBranchItem(scope, branchId, `transitionBranch ${branchId} → ${to}`, {
      UpdateExpression: `SET ${[...x.sets(fields), `${version} = ${version} + ${x.value(1)}`].join(', ')}`,
      ConditionExpression: `${x.name('status')} IN (${statuses})`,
      ...x.params,
    });
  }

  /** Query on the run's partition, ConsistentRead, all pages; natural id order. */
  async listBranches(scope: Scope): Promise<BranchRecord[]> {
    const x = new Expr();
    const items = await this.table.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(BRANCH_PREFIX)})`,
        ConsistentRead: true,
        ...x.params,
      },
      `listBranches ${scope.runId}`,
    );
    const branches = await Promise.all(items.map((item) => this.decodeBranch(scope, item)));
    return branches.sort((a, b) => compareIds(a.id, b.id));
  }

  async listBranchesPage(scope: Scope, page: BranchPage): Promise<{ branches: BranchRecord[]; more: boolean }> {
    const x = new Expr();
    // Built once: each Query of the page sends the same expression (names and values built again
    // would leave the first ones unused, which DynamoDB refuses).
    const keyCondition = `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(BRANCH_PREFIX)})`;
    const limit = Math.max(1, page.limit);
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined = page.after === undefined ? undefined : { ...branchKey(scope, page.after) };
    // A Query page stops at 1 MB as well: read on until the page is full or the partition ends.
    do {
      const result = await this.table.call(`listBranchesPage ${scope.runId}`, () =>
        this.table.send(
          scope,
          new QueryCommand({
            TableName: this.table.name,
            KeyConditionExpression: keyCondition,
            ConsistentRead: true,
            Limit: limit - items.length,
            ExclusiveStartKey: start,
            ...x.params,
          }),
        ),
      );
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
    } while (start && items.length < limit);
    return { branches: await Promise.all(items.map((item) => this.decodeBranch(scope, item))), more: start !== undefined };
  }

  /**
   * Query on GSI1. Eventually consistent (a GSI has no consistent reads): for views. Decisions
   * use getBranches with ids derived from the parent's spawn state instead.
   */
  async listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]> {
    const x = new Expr();
    const items = await this.table.queryAll(
      scope,
      {
        IndexName: GSI1,
        KeyConditionExpression: `${x.name('GSI1PK')} = ${x.value(childrenPk(scope, parentId))}`,
        ...x.params,
      },
      `listChildren ${parentId}`,
    );
    // The index holds keys only: the children themselves come from a consistent batch read.
    const ids = items.map((item) => branchIdOfSk(item.SK as string)).sort(compareIds);
    return this.getBranches(scope, ids);
  }

  private async updateBranchItem(
    scope: Scope,
    branchId: string,
    context: string,
    expression: Pick<
      ConstructorParameters<typeof UpdateCommand>[0],
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<BranchRecord | undefined> {
    const updated = await this.table.conditional(context, () =>
      this.table.send(scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: branchKey(scope, branchId),
          ReturnValues: 'ALL_NEW',
          ...expression,
        }),
      ),
    );
    return updated?.Attributes ? this.decodeBranch(scope, updated.Attributes) : undefined;
  }

  private async decodeBranch(scope: Scope, item: Attributes): Promise<BranchRecord> {
    return decodeBranch(await checkOutValues(scope, item, this.table.blobs));
  }
}

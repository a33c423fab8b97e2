/** The store's sync points on the table (see docs/dynamodb-schema.md): the item, its fan-in (dynamo-fan-in.ts), batch tokens, the aggregation claim. */
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { compareIds, type ChildOutcome, type Scope, type SyncPointRecord } from '../../core/model';
import type { BatchClaim, BatchClaimed, RecordChildEndResult, SyncPointStore } from '../../core/ports';
import type { WorkMark } from '../../core/work-mark';
import { assertFits, batchClaimAttribute, batchPoolKey, batchTokenKey, decodeSyncPoint, runPk, SYNC_PREFIX, syncKey, syncPointItem } from './item-codec';
import { Expr } from './expression';
import { DynamoFanIn } from './dynamo-fan-in';
import type { DynamoTable } from './dynamo-table';

export class DynamoSyncPoints implements SyncPointStore {
  private readonly fanIn: DynamoFanIn;

  constructor(private readonly table: DynamoTable) {
    this.fanIn = new DynamoFanIn(table);
  }

  async createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean> {
    const item = this.table.withTtl(syncPointItem(syncPoint));
    assertFits(`sync point ${syncPoint.parentId}#${syncPoint.seq}`, item);
    return this.table.putIfAbsent(syncPoint, item, `createSyncPoint ${syncPoint.parentId}#${syncPoint.seq}`);
  }

  async getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined> {
    const item = await this.table.get(scope, syncKey(scope, parentId, seq), `getSyncPoint ${parentId}#${seq}`);
    return item && decodeSyncPoint(item);
  }

  recordChildEnd(scope: Scope, parentId: string, seq: number, childId: string, outcome: ChildOutcome): Promise<RecordChildEndResult> {
    return this.fanIn.recordChildEnd(scope, parentId, seq, childId, outcome);
  }

  listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]> {
    return this.fanIn.listCountedChildren(scope, parentId, seq);
  }

  countEndedInRange(scope: Scope, parentId: string, seq: number, first: number, count: number): Promise<number> {
    return this.fanIn.countEndedInRange(scope, parentId, seq, first, count);
  }

  async putBatchToken(scope: Scope, parentId: string, seq: number, first: number, taskToken: string): Promise<void> {
    const item = this.table.withTtl({ ...batchTokenKey(scope, parentId, seq, first), entity: 'BATCH', taskToken });
    await this.table.call(`putBatchToken ${parentId}#${seq}`, () => this.table.send(scope, new PutCommand({ TableName: this.table.name, Item: item })));
  }

  async getBatchToken(scope: Scope, parentId: string, seq: number, first: number): Promise<string | undefined> {
    const item = await this.table.get(scope, batchTokenKey(scope, parentId, seq, first), `getBatchToken ${parentId}#${seq}`);
    return typeof item?.taskToken === 'string' ? item.taskToken : undefined;
  }

  /**
   * One UpdateItem on the batch's pool: `SET next = if_not_exists(next, :start) + 1, <ender> =
   * if_not_exists(next, :start) - :ender` (both read the item as it was) IF
   * `attribute_not_exists(<ender>) AND (attribute_not_exists(next) OR next < :end)`. Refused and
   * `mayRepeat`: one GetItem of the ender's claim.
   */
  async claimBatchChild(scope: Scope, parentId: string, seq: number, first: number, claim: BatchClaim): Promise<BatchClaimed | undefined> {
    if (claim.start >= claim.end) return undefined; // nothing past the window: no pool
    const key = batchPoolKey(scope, parentId, seq, first);
    const context = `claimBatchChild ${parentId}#${seq}#${first} by ${claim.ender}`;
    const x = new Expr();
    const next = x.name('next');
    const offset = claim.ender - first;
    const mine = x.name(batchClaimAttribute(offset));
    const start = x.value(claim.start - first);
    const ttl = this.table.ttlAssignment(x);
    const claimed = await this.table.conditional(context, () =>
      this.table.send(scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: key,
          UpdateExpression: `SET ${next} = if_not_exists(${next}, ${start}) + ${x.value(1)}, ${mine} = if_not_exists(${next}, ${start}) - ${x.value(offset)}${ttl === undefined ? '' : `, ${ttl}`}`,
          ConditionExpression: `attribute_not_exists(${mine}) AND (attribute_not_exists(${next}) OR ${next} < ${x.value(claim.end - first)})`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    const ours = claimed?.Attributes?.[batchClaimAttribute(offset)];
    if (typeof ours === 'number') return { index: claim.ender + ours, repeat: false };
    if (!claim.mayRepeat) return undefined;
    const item = await this.table.get(scope, key, context, [batchClaimAttribute(offset)]);
    const earlier = item?.[batchClaimAttribute(offset)];
    return typeof earlier === 'number' ? { index: claim.ender + earlier, repeat: true } : undefined;
  }

  async claimAggregation(
    scope: Scope,
    parentId: string,
    seq: number,
    outcome: 'resume' | 'fail',
    at: number,
    by: WorkMark,
  ): Promise<boolean> {
    const x = new Expr();
    const aggregatedAt = x.name('aggregatedAt');
    const updated = await this.table.conditional(`claimAggregation ${parentId}#${seq}`, () =>
      this.table.send(scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: syncKey(scope, parentId, seq),
          UpdateExpression: `SET ${aggregatedAt} = ${x.value(at)}, ${x.name('outcome')} = ${x.value(outcome)}, ${x.name('aggregatedBy')} = ${x.value(by)}`,
          ConditionExpression: `attribute_exists(${x.name('PK')}) AND attribute_not_exists(${aggregatedAt})`,
          ...x.params,
        }),
      ),
    );
    return updated !== undefined;
  }

  /** Query on the run's partition for `S#` items, filtered on `attribute_not_exists(aggregatedAt)`. */
  async listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]> {
    const x = new Expr();
    const items = await this.table.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(SYNC_PREFIX)})`,
        FilterExpression: `attribute_not_exists(${x.name('aggregatedAt')})`,
        ConsistentRead: true,
        ...x.params,
      },
      `listOpenSyncPoints ${scope.runId}`,
    );
    return items.map(decodeSyncPoint).sort((a, b) => compareIds(a.parentId, b.parentId) || a.seq - b.seq);
  }
}

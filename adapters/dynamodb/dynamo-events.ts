/** The run's stored lifecycle events on the table (see docs/dynamodb-schema.md): one counter item numbers them, packs hold them. */
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { NotFoundError } from '../../core/errors';
import type { LifecycleEvent } from '../../core/events';
import type { Scope } from '../../core/model';
import type { EventStore, StoredEvent } from '../../core/ports';
import { mapLimit } from '../../core/map-limit';
import { assertFits, runPk } from './item-codec';
import { decodeEventPack, EVENT_PREFIX, eventCounterKey, eventPackItems, eventSk } from './event-packs';
import { Expr } from './expression';
import type { DynamoTable } from './dynamo-table';

export class DynamoEvents implements EventStore {
  constructor(private readonly table: DynamoTable) {}

  async appendEvents(scope: Scope, events: readonly LifecycleEvent[]): Promise<void> {
    if (events.length === 0) return;
    const x = new Expr();
    const ttl = this.table.ttlClause(x);
    // One atomic ADD numbers the whole batch: the stream's order is the order of these updates.
    const counted = await this.table.call(`appendEvents ${scope.runId}`, () =>
      this.table.send(
        scope,
        new UpdateCommand({
          TableName: this.table.name,
          Key: eventCounterKey(scope),
          UpdateExpression: `ADD ${x.name('last')} ${x.value(events.length)}${ttl}`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    const first = Number(counted.Attributes?.last) - events.length + 1;
    const items = eventPackItems(scope, first, this.table.now(), events).map((item) => this.table.withTtl(item));
    items.forEach((item) => assertFits(`events of ${scope.runId}`, item));
    await mapLimit(items, this.table.writeConcurrency, (item) => this.table.putIfAbsent(scope, item, `appendEvents ${scope.runId}`));
  }

  async listEvents(scope: Scope, page: { after: number; limit: number }): Promise<StoredEvent[]> {
    const limit = Math.max(1, page.limit);
    const events: StoredEvent[] = [];
    let start: Record<string, unknown> | undefined;
    // A pack holds one or more events: read packs until the page is full or the stream ends.
    do {
      const x = new Expr();
      const result = await this.table.call(`listEvents ${scope.runId}`, () =>
        this.table.send(
          scope,
          new QueryCommand({
            TableName: this.table.name,
            KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND ${x.name('SK')} BETWEEN ${x.value(eventSk(page.after + 1))} AND ${x.value(`${EVENT_PREFIX}~`)}`,
            ConsistentRead: true,
            Limit: limit - events.length,
            ...(start ? { ExclusiveStartKey: start } : {}),
            ...x.params,
          }),
        ),
      );
      for (const item of result.Items ?? []) events.push(...decodeEventPack(scope, item).filter((s) => s.seq > page.after));
      start = result.LastEvaluatedKey;
    } while (start && events.length < limit);
    return events.slice(0, limit);
  }

  async getValue(scope: Scope, ref: string): Promise<string> {
    if (!this.table.blobs) throw new NotFoundError(`run ${scope.runId} keeps no values by reference (this store has no blob store)`);
    return this.table.blobs.get(scope, ref);
  }
}

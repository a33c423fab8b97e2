/** A wide spawn's child specs on the table (see docs/dynamodb-schema.md): chunks of bounded size under the spawn's key. */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { NotFoundError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { ChildSpec } from '../../core/protocol';
import type { ChildSpecStore } from '../../core/ports';
import { mapLimit } from '../../core/map-limit';
import { assertFits, runPk } from './item-codec';
import { specChunkItems, specChunkSk, specsFromChunks, specsSkPrefix } from './spec-chunks';
import { Expr } from './expression';
import type { Attributes, DynamoTable } from './dynamo-table';

export class DynamoChildSpecs implements ChildSpecStore {
  constructor(private readonly table: DynamoTable) {}

  async putChildSpecs(scope: Scope, key: string, specs: ChildSpec[]): Promise<void> {
    const items = specChunkItems(scope, key, specs).map((item) => this.table.withTtl(item));
    for (const item of items) assertFits(`child specs ${key}`, item);
    await mapLimit(items, this.table.writeConcurrency, (item) => this.table.putIfAbsent(scope, item, `putChildSpecs ${key}`));
  }

  async getChildSpecs(scope: Scope, key: string, offset: number, count: number): Promise<ChildSpec[]> {
    // The chunks holding the range, last first, one a page: those starting inside it, then the one
    // it starts in. A slice costs its own chunks however many the spawn has.
    const x = new Expr();
    const input = {
      KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND ${x.name('SK')} BETWEEN ${x.value(specsSkPrefix(key))} AND ${x.value(specChunkSk(key, offset + Math.max(count, 1) - 1))}`,
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
      ...x.params,
    };
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.table.call(`getChildSpecs ${key}`, () =>
        this.table.send(scope, new QueryCommand({ ...input, TableName: this.table.name, ExclusiveStartKey: start })),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start && !items.some((item) => Number(item.first) <= offset));
    let specs = specsFromChunks(items, offset, count) as ChildSpec[];
    if (specs.length !== count) specs = specsFromChunks(await this.allSpecChunks(scope, key), offset, count) as ChildSpec[];
    if (specs.length !== count) throw new NotFoundError(`child specs ${key} [${offset}, ${offset + count}) of run ${scope.runId} are not stored`);
    return specs;
  }

  /** Every chunk of a spawn's specs: for chunks stored before their keys named their first index. */
  private allSpecChunks(scope: Scope, key: string): Promise<Attributes[]> {
    const x = new Expr();
    return this.table.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(specsSkPrefix(key))})`,
        ConsistentRead: true,
        ...x.params,
      },
      `getChildSpecs ${key}`,
    );
  }
}

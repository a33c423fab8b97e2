/** The run's cost record on the table: a small item of its own, added to atomically. */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { COST_FIELDS, type CostCounters } from '../../core/cost';
import type { Scope } from '../../core/model';
import type { CostStore } from '../../core/ports';
import { costKey, decodeCost } from './item-codec';
import { Expr } from './expression';
import type { DynamoTable } from './dynamo-table';

export class DynamoCosts implements CostStore {
  constructor(private readonly table: DynamoTable) {}

  async addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void> {
    const x = new Expr();
    // The write's own unit is included (the cost item stays far below 1 KB), so it is not metered again.
    const fields = { ...usage, writeUnits: (usage.writeUnits ?? 0) + 1 };
    const adds = COST_FIELDS.filter((f) => (fields[f] ?? 0) !== 0).map((f) => `${x.name(f)} ${x.value(round6(fields[f]!))}`);
    const ttl = this.table.ttlClause(x);
    await this.table.call(`addCost ${scope.runId}`, () =>
      this.table.doc.send(
        new UpdateCommand({ TableName: this.table.name, Key: costKey(scope), UpdateExpression: `ADD ${adds.join(', ')}${ttl}`, ...x.params }),
      ),
    );
  }

  async getCost(scope: Scope): Promise<CostCounters> {
    const item = await this.table.get(scope, costKey(scope), `getCost ${scope.runId}`);
    return decodeCost(item);
  }
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

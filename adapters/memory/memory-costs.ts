/** The in-memory store's copy of a run's cost record. */
import { addCost, type CostCounters } from '../../core/cost';
import type { Scope } from '../../core/model';
import type { CostStore } from '../../core/ports';
import { costKey, decodeCost, type Item } from '../dynamodb/item-codec';
import type { MemoryTable } from './memory-table';

export class MemoryCosts implements CostStore {
  constructor(private readonly table: MemoryTable) {}

  async addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void> {
    const key = costKey(scope);
    const item: Item = { ...key, ...(this.table.read(key) ?? {}) };
    const cost = decodeCost(item);
    // The write's own unit is included, so it is not metered again (as in the DynamoDB store).
    addCost(cost, { ...usage, writeUnits: (usage.writeUnits ?? 0) + 1 });
    this.table.write({ ...item, ...cost });
  }

  async getCost(scope: Scope): Promise<CostCounters> {
    const item = this.table.read(costKey(scope));
    this.table.charge(scope, { readUnits: 1 });
    return decodeCost(item);
  }
}

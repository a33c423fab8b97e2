/**
 * The in-memory store's one "table" (PK → SK → item, the very items the DynamoDB store writes),
 * shared by the store's parts (memory-branch-store.ts), with the capacity units DynamoDB would
 * charge for each access (computed from the item sizes the way DynamoDB does). Nothing here
 * awaits: a part's check-and-write is one synchronous stretch, atomic as DynamoDB's writes are.
 */
import type { Scope } from '../../core/model';
import type { CostCounters } from '../../core/cost';
import type { CostSink } from '../../core/ports';
import { billedItemSize, readUnits, runPk, writeUnitsOfSize, type Item, type Key } from '../dynamodb/item-codec';

/**
 * An item's billed size, computed once: stored items are replaced, never mutated, so the size of
 * the item a write replaces (and of every item a read returns) is already known.
 */
const sizes = new WeakMap<Item, number>();
export function size(item: Item | undefined): number {
  if (!item) return 0;
  let bytes = sizes.get(item);
  if (bytes === undefined) sizes.set(item, (bytes = billedItemSize(item)));
  return bytes;
}

/** Write units of replacing `old` (if any) with `next`: on the larger of the two. */
export const writeUnits = (old: Item | undefined, next?: Item): number => writeUnitsOfSize(Math.max(size(old), size(next)));

/** The run an item belongs to (every item the store writes carries team and runId, or a run key). */
export function scopeOfItem(item: Item): Scope | undefined {
  return typeof item.team === 'string' && typeof item.runId === 'string' ? { team: item.team, runId: item.runId } : undefined;
}

export interface MemoryTableOptions {
  /** Receives the capacity units DynamoDB would charge for each call, by run. */
  meter?: CostSink;
  /**
   * Told of every item put, before it is stored and before the call returns (a journal keeps the
   * table on disk this way). If it throws, nothing is stored and the call fails.
   */
  onPut?: (item: Item) => void;
}

export class MemoryTable {
  /** PK → SK → item, like the table. */
  private readonly partitions = new Map<string, Map<string, Item>>();
  private readonly meter: CostSink | undefined;
  private readonly onPut: ((item: Item) => void) | undefined;

  constructor(options: MemoryTableOptions = {}) {
    this.meter = options.meter;
    this.onPut = options.onPut;
  }

  /** Puts items back as they were kept (a journal's replay): no condition, no cost, no onPut. */
  restore(items: Iterable<Item>): void {
    for (const item of items) this.store(item);
  }

  /** Every stored item (what a journal's snapshot keeps). Items are never mutated in place. */
  *items(): IterableIterator<Item> {
    for (const partition of this.partitions.values()) yield* partition.values();
  }

  read(key: Key): Item | undefined {
    return this.partitions.get(key.PK)?.get(key.SK);
  }

  /** A consistent read, billed: 4 KB units of the item (1 when there is none). */
  readCharged(scope: Scope, key: Key): Item | undefined {
    const item = this.read(key);
    this.charge(scope, { readUnits: readUnits(size(item)) });
    return item;
  }

  partitionItems(pk: string, prefix: string): Item[] {
    return [...(this.partitions.get(pk)?.values() ?? [])].filter((item) => String(item.SK).startsWith(prefix));
  }

  /** A consistent query of the run's partition, billed on the total size of what it read. */
  queryCharged(scope: Scope, prefix: string): Item[] {
    const items = this.partitionItems(runPk(scope), prefix);
    this.charge(scope, { readUnits: readUnits(items.reduce((n, i) => n + size(i), 0)) });
    return items;
  }

  /** The item under sort key `sk` of every partition (the runs, for a team's listing). */
  itemsWithSk(sk: string): Item[] {
    return [...this.partitions.values()].flatMap((partition) => {
      const item = partition.get(sk);
      return item ? [item] : [];
    });
  }

  /** Items are replaced, never mutated, so a decoded record never aliases stored state. */
  write(item: Item): void {
    this.onPut?.(item);
    this.store(item);
  }

  putIfAbsent(item: Item): boolean {
    const scope = scopeOfItem(item);
    if (this.read({ PK: String(item.PK), SK: String(item.SK) })) {
      this.charge(scope, { writeUnits: 1 });
      return false;
    }
    this.write(item);
    // A child branch is also written to GSI1 (keys only: one unit).
    this.charge(scope, { writeUnits: writeUnits(item) + (item.GSI1PK !== undefined ? 1 : 0) });
    return true;
  }

  /** A refused conditional write still costs a unit (and `readUnits` for a follow-up read). */
  refused<T>(scope: Scope, result: T, reads = 0): T {
    this.charge(scope, { writeUnits: 1, ...(reads ? { readUnits: reads } : {}) });
    return result;
  }

  charge(scope: Scope | undefined, usage: Partial<CostCounters>): void {
    if (scope && this.meter) this.meter.add(scope, usage);
  }

  private store(item: Item): void {
    const pk = String(item.PK);
    let partition = this.partitions.get(pk);
    if (!partition) this.partitions.set(pk, (partition = new Map()));
    partition.set(String(item.SK), item);
  }
}

/**
 * In-memory BranchStore: the reference for the store contract (no I/O).
 *
 * It keeps the very items the DynamoDB store writes (adapters/dynamodb/item-codec), so values
 * round-trip the same way (user values go through JSON), the same payloads are refused as too
 * large, and nothing a caller holds is shared with stored state: records are encoded on the
 * way in and decoded afresh on the way out. Each method checks and writes without awaiting in
 * between, which makes every conditional write atomic, as DynamoDB's are. It also reports the
 * capacity units DynamoDB would charge, so the cost meter reads the same on every engine. Values
 * over CLAIM_CHECK_BYTES go to its blob store (awaited before the check-and-write) and come back
 * on every read, as in the DynamoDB store.
 *
 * One part per concern of the port, as in the DynamoDB store, over one table (memory-table.ts):
 * runs, branches, a wide spawn's child specs, sync points and their fan-in, the run's stored
 * events, its cost record.
 */
import type { BlobStore } from '../../core/ports';
import { MemoryBlobStore } from '../blobs/memory-blob-store';
import type { Item } from '../dynamodb/item-codec';
import { ComposedBranchStore } from '../composed-branch-store';
import { MemoryBranches } from './memory-branches';
import { MemoryChildSpecs } from './memory-child-specs';
import { MemoryCosts } from './memory-costs';
import { MemoryEvents } from './memory-events';
import { MemoryRuns } from './memory-runs';
import { MemorySyncPoints } from './memory-sync-points';
import { MemoryTable, type MemoryTableOptions } from './memory-table';

export interface MemoryBranchStoreOptions extends MemoryTableOptions {
  /**
   * Where values over CLAIM_CHECK_BYTES are kept (the claim check, adapters/dynamodb/item-codec):
   * a MemoryBlobStore by default, the data folder's blobs on the journal tier.
   */
  blobs?: BlobStore;
}

export class MemoryBranchStore extends ComposedBranchStore {
  readonly blobs: BlobStore;
  private readonly table: MemoryTable;

  constructor(options: MemoryBranchStoreOptions = {}) {
    const table = new MemoryTable(options);
    const blobs = options.blobs ?? new MemoryBlobStore();
    super({
      runs: new MemoryRuns(table, blobs),
      branches: new MemoryBranches(table, blobs),
      childSpecs: new MemoryChildSpecs(table),
      syncPoints: new MemorySyncPoints(table),
      events: new MemoryEvents(table, blobs),
      costs: new MemoryCosts(table),
    });
    this.table = table;
    this.blobs = blobs;
  }

  /** Puts items back as they were kept (a journal's replay): no condition, no cost, no onPut. */
  restore(items: Iterable<Item>): void {
    this.table.restore(items);
  }

  /** Every stored item (what a journal's snapshot keeps). Items are never mutated in place. */
  items(): IterableIterator<Item> {
    return this.table.items();
  }
}

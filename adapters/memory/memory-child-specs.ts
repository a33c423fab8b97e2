/** The in-memory store's copy of a wide spawn's child specs: the same chunks as the DynamoDB store. */
import { NotFoundError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { ChildSpec } from '../../core/protocol';
import type { ChildSpecStore } from '../../core/ports';
import { assertFits, readUnits, runPk } from '../dynamodb/item-codec';
import { chunkCovers, specChunkItems, specsFromChunks, specsSkPrefix } from '../dynamodb/spec-chunks';
import { size, type MemoryTable } from './memory-table';

export class MemoryChildSpecs implements ChildSpecStore {
  constructor(private readonly table: MemoryTable) {}

  async putChildSpecs(scope: Scope, key: string, specs: ChildSpec[]): Promise<void> {
    const items = specChunkItems(scope, key, specs);
    for (const item of items) assertFits(`child specs ${key}`, item);
    for (const item of items) this.table.putIfAbsent(item);
  }

  async getChildSpecs(scope: Scope, key: string, offset: number, count: number): Promise<ChildSpec[]> {
    // Only the chunks that hold the range are read (the DynamoDB store reads them by key, one a page).
    const items = this.table.partitionItems(runPk(scope), specsSkPrefix(key)).filter((i) => chunkCovers(i, offset, count));
    this.table.charge(scope, { readUnits: items.reduce((n, i) => n + readUnits(size(i)), 0) });
    const specs = specsFromChunks(items, offset, count) as ChildSpec[];
    if (specs.length !== count) throw new NotFoundError(`child specs ${key} [${offset}, ${offset + count}) of run ${scope.runId} are not stored`);
    return specs;
  }
}

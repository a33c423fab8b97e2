/** The in-memory store's copy of a run's stored lifecycle events (the same counter and packs as the DynamoDB store), and the values they refer to. */
import type { LifecycleEvent } from '../../core/events';
import type { Scope } from '../../core/model';
import type { BlobStore, EventStore, StoredEvent } from '../../core/ports';
import { assertFits, readUnits, runPk } from '../dynamodb/item-codec';
import { decodeEventPack, EVENT_PREFIX, eventCounterKey, eventPackItems, eventSk } from '../dynamodb/event-packs';
import { size, writeUnits, type MemoryTable } from './memory-table';

export class MemoryEvents implements EventStore {
  constructor(
    private readonly table: MemoryTable,
    private readonly blobs: BlobStore,
  ) {}

  async appendEvents(scope: Scope, events: readonly LifecycleEvent[]): Promise<void> {
    if (events.length === 0) return;
    const counter = this.table.read(eventCounterKey(scope));
    const last = Number(counter?.last ?? 0);
    this.table.write({ ...eventCounterKey(scope), team: scope.team, runId: scope.runId, last: last + events.length });
    this.table.charge(scope, { writeUnits: 1 });
    for (const pack of eventPackItems(scope, last + 1, Date.now(), events)) {
      const item = { ...pack, team: scope.team, runId: scope.runId };
      assertFits(`events of ${scope.runId}`, item);
      this.table.write(item);
      this.table.charge(scope, { writeUnits: writeUnits(item) });
    }
  }

  async listEvents(scope: Scope, page: { after: number; limit: number }): Promise<StoredEvent[]> {
    const from = eventSk(page.after + 1);
    const limit = Math.max(1, page.limit);
    const packs = this.table
      .partitionItems(runPk(scope), EVENT_PREFIX)
      .filter((item) => String(item.SK) >= from)
      .sort((a, b) => (String(a.SK) < String(b.SK) ? -1 : 1))
      .slice(0, limit);
    this.table.charge(scope, { readUnits: readUnits(packs.reduce((n, i) => n + size(i), 0)) });
    return packs.flatMap((item) => decodeEventPack(scope, item)).filter((s) => s.seq > page.after).slice(0, limit);
  }

  async getValue(scope: Scope, ref: string): Promise<string> {
    return this.blobs.get(scope, ref);
  }
}

/**
 * How a run's lifecycle events become items (pure, as item-codec.ts): the stream's counter item
 * and the packs of events each publication is written as.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { eventId, isEventOf, type LifecycleEvent } from '../../core/events';
import type { Scope } from '../../core/model';
import type { StoredEvent } from '../../core/ports';
import { EVENT_REFS, runPk, type Item, type Key } from './item-codec';

/**
 * The run's stored event stream: a counter item numbering the events, and the events of each
 * publication packed into as few items as fit (most publications are one item). A pack's sort key
 * is its LAST number, so a Query from `eventSk(after + 1)` starts at the pack holding the next
 * event. Events are kept compact (the partition's team and run left out, an eventId left out when
 * it is the one eventId() gives) and deflated: a spawn's BranchCreated burst of 150 events is
 * about 2 write units, not 150.
 */
export const EVENT_COUNTER_SK = 'EVSEQ';
export const EVENT_PREFIX = 'E#';
/** Raw JSON of one pack at most: deflated and in base64 it stays under 400 KB however badly it compresses. */
export const EVENT_PACK_BYTES = 256 * 1024;
export const eventCounterKey = (scope: Scope): Key => ({ PK: runPk(scope), SK: EVENT_COUNTER_SK });
export const eventSk = (seq: number): string => `${EVENT_PREFIX}${String(seq).padStart(12, '0')}`;

/** An event as a pack holds it: without its team and run (the item's), its id only when not the one eventId derives. */
type PackedEvent = Pick<LifecycleEvent, 'type' | 'branchId' | 'time' | 'detail'> & { eventId?: string };

/** The items of events numbered `first`, `first + 1`, ... in one publication. */
export function eventPackItems(scope: Scope, first: number, storedAt: number, events: readonly LifecycleEvent[]): Item[] {
  const items: Item[] = [];
  let pack: string[] = [];
  let refs: string[] = [];
  let bytes = 0;
  let packFirst = first;
  const flush = () => {
    const last = packFirst + pack.length - 1;
    const ev = deflateRawSync(`[${pack.join(',')}]`).toString('base64');
    // The values the pack's events name by reference (tool calls' arguments and outputs): what gc must keep.
    items.push({ PK: runPk(scope), SK: eventSk(last), entity: 'EVENTS', first: packFirst, storedAt, ev, ...(refs.length ? { [EVENT_REFS]: refs.join(' ') } : {}) });
    packFirst = last + 1;
    pack = [];
    refs = [];
    bytes = 0;
  };
  for (const event of events) {
    const { team: _team, runId: _runId, eventId: id, ...rest } = event;
    const packed: PackedEvent = id === eventId(scope, event.type, event.branchId) ? rest : { ...rest, eventId: id };
    const text = JSON.stringify(packed);
    const named = eventValueRefs(event);
    // The refs count in the pack's bytes: the item stays under 400 KB with them.
    const size = Buffer.byteLength(text) + 1 + named.length * 65;
    if (pack.length > 0 && bytes + size > EVENT_PACK_BYTES) flush();
    pack.push(text);
    refs.push(...named);
    bytes += size;
  }
  if (pack.length > 0) flush();
  return items;
}

function eventValueRefs(event: LifecycleEvent): string[] {
  if (!isEventOf(event, 'ToolCalled')) return [];
  return [event.detail.argumentsRef, event.detail.outputRef].filter((ref): ref is string => typeof ref === 'string');
}

/** The events of a pack item, each with its number. */
export function decodeEventPack(scope: Scope, item: Record<string, unknown>): StoredEvent[] {
  const first = Number(item.first);
  const storedAt = Number(item.storedAt);
  const packed = JSON.parse(inflateRawSync(Buffer.from(String(item.ev), 'base64')).toString('utf8')) as PackedEvent[];
  return packed.map((p, i) => ({
    seq: first + i,
    storedAt,
    // Packed from a LifecycleEvent (eventPackItems): its type and detail go together as they were.
    event: { eventId: p.eventId ?? eventId(scope, p.type, p.branchId), type: p.type, team: scope.team, runId: scope.runId, ...(p.branchId !== undefined ? { branchId: p.branchId } : {}), time: p.time, detail: p.detail } as LifecycleEvent,
  }));
}

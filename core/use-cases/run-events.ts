/**
 * A run's lifecycle events, stored as they are published (recordedEvents, one decorator on the
 * publisher) and read back after a cursor: what `events --follow`, the CLI's remote `--trace` and
 * the page poll (`GET /runs/{runId}/events?after=<cursor>`). Every event the bus carries is there,
 * SyncPointReached included, numbered in the order the store appended them, so a reader gets each
 * as soon as it is written: no hold. A number still being written (a writer between numbering and
 * writing) stops a page there until it lands; one left unwritten by a crash is skipped once the
 * events after it are EVENT_GAP_GIVE_UP_MS old. Events are at least once: a publication retried
 * after a crash appends them again, and a page drops the repeats of an eventId it holds.
 */
import { ValidationError } from '../errors';
import { SEND_ALL_EVENTS, sendsToBus, type EventPolicy } from '../event-policy';
import { isRunEnd, type LifecycleEvent } from '../events';
import type { RunRecord, Scope } from '../model';
import type { BranchStore, EventPublisher } from '../ports';
import type { SpawnerDeps } from './deps';
import { mustGetRun } from './queries';

/** A gap in the stream's numbers older than this is a writer that died after numbering: skipped. */
export const EVENT_GAP_GIVE_UP_MS = 30_000;
/** Events in one answer at most (the next page starts at its cursor). */
export const EVENTS_PAGE_MAX = 500;
const CURSOR_MAX_CHARS = 15;

/**
 * The publisher that first appends each run's events to its stored stream, then publishes them.
 * The stream keeps what the team's event setting sends to its bus (core/event-policy.ts: run-level
 * events always), so a team that turns branch events down pays for fewer stored ones too.
 */
export function recordedEvents(store: Pick<BranchStore, 'appendEvents'>, publisher: EventPublisher, policy: EventPolicy = SEND_ALL_EVENTS): EventPublisher {
  return {
    async publish(events) {
      const byRun = new Map<string, [Scope, LifecycleEvent[]]>();
      for (const event of events) {
        if (!sendsToBus(event, policy)) continue;
        const key = `${event.team}\u0000${event.runId}`;
        const entry = byRun.get(key) ?? [{ team: event.team, runId: event.runId }, []];
        entry[1].push(event);
        byRun.set(key, entry);
      }
      for (const [scope, list] of byRun.values()) await store.appendEvents(scope, list);
      await publisher.publish(events);
    },
  };
}

/** The last number given, and `e` once the run's end event has been given. */
export function encodeCursor(seq: number, endTold: boolean): string {
  return `${seq}${endTold ? 'e' : ''}`;
}

export function decodeCursor(cursor: string): { seq: number; endTold: boolean } {
  const m = cursor.length <= CURSOR_MAX_CHARS ? /^(\d+)(e?)$/.exec(cursor) : null;
  if (!m) throw new ValidationError('after: not a cursor this API gave (pass the `cursor` of the previous answer)', 'after');
  return { seq: Number(m[1]), endTold: m[2] === 'e' };
}

export interface RunEventsPage {
  runId: string;
  status: RunRecord['status'];
  events: LifecycleEvent[];
  /** Pass as `after` to get only newer events (the same cursor again when there were none). */
  cursor: string | null;
  /** True once the run has ended and this answer holds its last event. */
  done: boolean;
}

export async function runEventsAfter(
  deps: Pick<SpawnerDeps, 'store' | 'clock'>,
  scope: Scope,
  after?: string,
  limit = EVENTS_PAGE_MAX,
): Promise<RunEventsPage> {
  const { seq: from, endTold: toldBefore } = after ? decodeCursor(after) : { seq: 0, endTold: false };
  const run = await mustGetRun(deps, scope);
  const max = Math.max(1, Math.min(limit, EVENTS_PAGE_MAX));
  const stored = await deps.store.listEvents(scope, { after: from, limit: max });
  const now = deps.clock.now();
  const events: LifecycleEvent[] = [];
  const ids = new Set<string>();
  let last = from;
  for (const s of stored) {
    // A number not written yet: stop before it, unless what follows it is old (its writer died).
    if (s.seq !== last + 1 && now - s.storedAt < EVENT_GAP_GIVE_UP_MS) break;
    last = s.seq;
    if (ids.has(s.event.eventId)) continue;
    ids.add(s.event.eventId);
    events.push(s.event);
  }
  const readAll = last === (stored.at(-1)?.seq ?? from) && stored.length < max;
  // The run's end is told after its record ends: done once its end event is given (or long overdue).
  const endTold = toldBefore || events.some(isRunEnd) || now - (run.endedAt ?? now) > EVENT_GAP_GIVE_UP_MS;
  return {
    runId: scope.runId,
    status: run.status,
    events,
    cursor: last > 0 ? encodeCursor(last, endTold) : after ?? null,
    done: run.status !== 'RUNNING' && readAll && endTold,
  };
}

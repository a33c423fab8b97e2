/**
 * A run's lifecycle events read back from the store, after a cursor: what `events --follow`, the
 * CLI's remote `--trace` and the page poll (`GET /runs/{runId}/events?after=<cursor>`).
 *
 * They are worked out from the records every state change already writes (the run's and each
 * branch's createdAt / endedAt / status), so watching adds no write to a run: RunStarted,
 * BranchCreated, BranchCompleted / BranchFailed / BranchCancelled and the run's end, in the
 * shape the bus carries. SyncPointReached is on the bus only (it would need the sync points read too).
 */
import { ValidationError } from '../errors';
import { branchEvent, runEvent, RUN_END_EVENTS, type LifecycleEvent } from '../events';
import type { BranchRecord, RunRecord, Scope } from '../model';
import type { SpawnerDeps } from './deps';
import { mustGetRun } from './queries';

/**
 * Events of a still-running run younger than this are held back: a record is stamped before its
 * write lands, so an event may appear a little after a later one. Past this lag the order is final
 * and a cursor never skips one; once the run has ended every event is given.
 */
export const EVENT_SETTLE_MS = 2_000;
/** Events in one answer at most (the next page starts at its cursor). */
export const EVENTS_PAGE_MAX = 500;
const CURSOR_MAX_CHARS = 800;

const RANK: Record<string, number> = {
  RunStarted: 0, BranchCreated: 1, BranchCompleted: 2, BranchFailed: 2, BranchCancelled: 2, RunCompleted: 3, RunFailed: 3, RunCancelled: 3,
};

type Key = [time: number, rank: number, branchId: string];

const keyOf = (e: LifecycleEvent): Key => [e.time, RANK[e.type] ?? 9, e.branchId ?? ''];
const compare = (a: Key, b: Key) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0);

export function encodeCursor(key: Key): string {
  return `${key[0]}.${key[1]}.${key[2]}`;
}

export function decodeCursor(cursor: string): Key {
  const m = cursor.length <= CURSOR_MAX_CHARS ? /^(\d{1,15})\.(\d)\.([A-Za-z0-9._-]*)$/.exec(cursor) : null;
  if (!m) throw new ValidationError('after: not a cursor this API gave (pass the `cursor` of the previous answer)', 'after');
  return [Number(m[1]), Number(m[2]), m[3]];
}

const BRANCH_END = { COMPLETED: 'BranchCompleted', FAILED: 'BranchFailed', TIMED_OUT: 'BranchFailed', CANCELLED: 'BranchCancelled' } as const;

/** Every event the records show, oldest first. */
export function eventsOfRecords(run: RunRecord, branches: readonly BranchRecord[]): LifecycleEvent[] {
  const events: LifecycleEvent[] = [runEvent('RunStarted', run, run.createdAt, { status: 'RUNNING', name: run.name })];
  for (const b of branches) {
    events.push(branchEvent('BranchCreated', { ...b, status: 'PENDING' }, b.createdAt));
    const end = BRANCH_END[b.status as keyof typeof BRANCH_END];
    if (end && b.endedAt !== undefined) events.push(branchEvent(end, b, b.endedAt, b.error ? { error: b.error } : {}));
  }
  if (run.status !== 'RUNNING') {
    events.push(runEvent(RUN_END_EVENTS[run.status], run, run.endedAt ?? run.createdAt, {
      status: run.status,
      ...(run.status === 'COMPLETED' ? { result: run.result ?? null } : {}),
      ...(run.error ? { error: run.error } : {}),
    }));
  }
  return events.sort((a, b) => compare(keyOf(a), keyOf(b)));
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
  const from = after ? decodeCursor(after) : undefined;
  const run = await mustGetRun(deps, scope);
  const branches = await deps.store.listBranches(scope);
  const settled = run.status === 'RUNNING' ? deps.clock.now() - EVENT_SETTLE_MS : Infinity;
  const fresh = eventsOfRecords(run, branches).filter((e) => (!from || compare(keyOf(e), from) > 0) && e.time <= settled);
  const events = fresh.slice(0, Math.max(1, Math.min(limit, EVENTS_PAGE_MAX)));
  const last = events.at(-1);
  return {
    runId: scope.runId,
    status: run.status,
    events,
    cursor: last ? encodeCursor(keyOf(last)) : after ?? null,
    done: run.status !== 'RUNNING' && events.length === fresh.length,
  };
}

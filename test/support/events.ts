/**
 * Lifecycle events built by hand for tests, each with a whole detail of its type (core/events.ts
 * EventDetails): a test names only the fields it is about, the compiler checks the rest.
 */
import { eventId, type EventDetails, type EventType, type LifecycleEvent } from '../../core/events';

const branch = { parentId: 'root', agent: 'A', type: 'SIMPLE', depth: 1 } as const;
const counters = { total: 1, succeeded: 1, failed: 0, cancelled: 0 };

/** A detail of each type, as the constructors would make it. */
const DETAILS: { [K in EventType]: EventDetails[K] } = {
  RunStarted: { status: 'RUNNING', name: 'run' },
  RunCompleted: { status: 'COMPLETED' },
  RunFailed: { status: 'FAILED', error: 'boom' },
  RunCancelled: { status: 'CANCELLED', error: 'cancelled by request' },
  BranchCreated: { ...branch, status: 'PENDING' },
  BranchCompleted: { ...branch, status: 'COMPLETED', result: null },
  BranchFailed: { ...branch, status: 'FAILED', error: 'boom' },
  BranchCancelled: { ...branch, status: 'CANCELLED' },
  SyncPointReached: { seq: 1, outcome: 'resume', reason: 'all 1 children ended', completion_reason: 'ALL_COMPLETED', ...counters, results: [] },
  ToolCalled: { agent: 'A', step: 0, tool: 't', kind: 'module', status: 'ok', durationMs: 1, argumentBytes: 2, outputBytes: 2 },
  BranchRetryScheduled: { step: 0, attempt: 1, delaySeconds: 1, error: 'boom' },
  BranchWaiting: { agent: 'A', step: 1, since: 0, until: 1000, seconds: 1 },
  BranchWaitingForCallback: { agent: 'A', step: 1, since: 0, token: 'token', timeoutAt: 1000 },
  BranchResumed: { agent: 'A', step: 1, reason: 'wait-over' },
  AgentRetryScheduled: { agent: 'A', step: 0, attempt: 1, attempts: 3, delayMs: 100, kind: 'error', error: 'boom' },
};

/** A whole detail of `type`, with the fields given. */
export function detailOf<T extends EventType>(type: T, fields: Partial<EventDetails[T]> = {}): EventDetails[T] {
  return { ...DETAILS[type], ...fields };
}

/** A SyncPointReached detail as syncPointEvent takes it (its seq is the event's own). */
export function syncPointDetail(fields: Partial<EventDetails['SyncPointReached']> = {}): Omit<EventDetails['SyncPointReached'], 'seq'> {
  const { seq: _seq, ...detail } = detailOf('SyncPointReached', fields);
  return detail;
}

/** An event of `type` (team `local`, run `run1` unless given), its id as eventId makes it unless given. */
export function anEvent<T extends EventType>(
  type: T,
  parts: Partial<Omit<LifecycleEvent<T>, 'type' | 'detail'>> & { detail?: Partial<EventDetails[T]> } = {},
): LifecycleEvent<T> {
  const { detail, ...rest } = parts;
  const scope = { team: rest.team ?? 'local', runId: rest.runId ?? 'run1' };
  const event = { eventId: eventId(scope, type, rest.branchId), type, ...scope, time: 1_700_000_000_000, ...rest, detail: detailOf(type, detail) };
  return event as LifecycleEvent<T>;
}

/**
 * Lifecycle hooks (`run --hooks`) that make the run's own process die at a chosen moment, so the
 * moment is exact whatever the load (a test process watching the trace reacts late when it is
 * busy). Chosen by environment variables, read when the hooks are called:
 *
 * - KILL_AFTER_EVENTS=n: SIGKILL once n lifecycle events have been seen;
 * - KILL_WHEN_GROUP_SETTLED=1: SIGKILL once a branch other than the root reaches the sync point
 *   of its first group (its second group is being opened then), KILL_DELAY_MS=d later (0–few ms,
 *   to land at different points of the opening);
 * - INTERRUPT_AFTER_EVENTS=n and KILL_AFTER_CANCELLED=j: SIGINT (Ctrl-C: the run is cancelled)
 *   after n events, then SIGKILL once j BranchCancelled events have been seen.
 */
let events = 0;
let cancelled = 0;
let interrupted = false;

const numberOf = (name: string) => (process.env[name] === undefined ? undefined : Number(process.env[name]));

function seen(kind: 'event' | 'cancelled' | 'group-settled'): void {
  if (kind === 'cancelled') cancelled++;
  events++;
  const killAfter = numberOf('KILL_AFTER_EVENTS');
  if (killAfter !== undefined && events >= killAfter) process.kill(process.pid, 'SIGKILL');
  if (kind === 'group-settled' && process.env.KILL_WHEN_GROUP_SETTLED === '1') {
    const delay = numberOf('KILL_DELAY_MS') ?? 0;
    if (delay > 0) setTimeout(() => process.kill(process.pid, 'SIGKILL'), delay);
    else process.kill(process.pid, 'SIGKILL');
  }
  const interruptAfter = numberOf('INTERRUPT_AFTER_EVENTS');
  if (interruptAfter !== undefined && !interrupted && events >= interruptAfter) {
    interrupted = true;
    process.kill(process.pid, 'SIGINT');
  }
  const killAfterCancelled = numberOf('KILL_AFTER_CANCELLED');
  if (interrupted && killAfterCancelled !== undefined && cancelled >= killAfterCancelled) process.kill(process.pid, 'SIGKILL');
}

export const onRunStarted = () => seen('event');
export const onBranchCreated = () => seen('event');
export const onBranchCompleted = () => seen('event');
export const onBranchFailed = () => seen('event');
export const onBranchCancelled = () => seen('cancelled');
export const onSynchronizationPoint = (parentId: string, _results: unknown, syncPoint: { seq: number }) =>
  seen(parentId !== 'root' && syncPoint.seq === 1 ? 'group-settled' : 'event');
export const onRunEnded = () => seen('event');

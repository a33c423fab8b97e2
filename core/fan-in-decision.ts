/**
 * Fan-in decisions: given a sync point's counters, its wait_for and the failure policy, say
 * whether to keep waiting, resume the parent or fail it. The single source of this logic.
 */
import type { SyncCounters, WaitFor } from './model';

export type FanInDecision =
  | { action: 'wait' }
  | { action: 'resume'; cancelRest: boolean; reason: string }
  | { action: 'fail'; cancelRest: boolean; reason: string };

export function requiredSuccesses(waitFor: WaitFor, total: number): number {
  if (waitFor === 'all') return total;
  if (waitFor === 'any') return Math.min(1, total);
  return Math.min(waitFor, total);
}

export function decideFanIn(counters: SyncCounters, waitFor: WaitFor, maxFailedFraction: number): FanInDecision {
  const { total, succeeded, failed, cancelled } = counters;
  const ended = succeeded + failed + cancelled;
  const pending = Math.max(0, total - ended);
  if (total > 0 && failed / total > maxFailedFraction) {
    return {
      action: 'fail',
      cancelRest: pending > 0,
      reason: `${failed} of ${total} children failed (more than ${maxFailedFraction * 100}%)`,
    };
  }
  const required = requiredSuccesses(waitFor, total);
  if (waitFor !== 'all' && succeeded >= required) {
    return { action: 'resume', cancelRest: pending > 0, reason: `${succeeded} of ${total} children succeeded (needed ${required})` };
  }
  if (pending > 0) return { action: 'wait' };
  if (succeeded >= required || waitFor === 'all') {
    return { action: 'resume', cancelRest: false, reason: `all ${total} children ended` };
  }
  return {
    action: 'fail',
    cancelRest: false,
    reason: `only ${succeeded} of ${total} children succeeded; wait_for needed ${required}`,
  };
}

/**
 * Fan-in decisions: given a sync point's counters and its rule (wait_for or a completion
 * function, the failures it tolerates, what to do past them), say whether to keep waiting,
 * resume the parent or fail it. The single source of this logic.
 */
import type { FailurePolicy, FanInRule, SpawnState, SyncCounters } from './model';
import type { WaitFor } from './protocol';

export type FanInDecision =
  | { action: 'wait' }
  | { action: 'resume'; cancelRest: boolean; reason: string }
  | { action: 'fail'; cancelRest: boolean; reason: string };

/** Why a fan-out ended, as its parent reads it with `on_failure: continue`. */
export type CompletionReason = 'ALL_COMPLETED' | 'MIN_SUCCESSFUL_REACHED' | 'FAILURE_TOLERANCE_EXCEEDED';

/**
 * What a registered completion function (`complete_when: "fn:<name>"`) said of the children as
 * they are: done or not, or the error it threw (which fails the parent).
 */
export type CompletionVerdict = { met: boolean } | { error: string };

export function requiredSuccesses(waitFor: WaitFor, total: number): number {
  if (waitFor === 'all') return total;
  if (waitFor === 'any') return Math.min(1, total);
  return Math.min(waitFor, total);
}

/** Whether the failures counted pass what the rule tolerates (a count, else a fraction of the children). */
export function toleranceExceeded(counters: SyncCounters, rule: Pick<FanInRule, 'maxFailedFraction' | 'toleratedFailures'>): boolean {
  const { total, failed } = counters;
  if (rule.toleratedFailures !== undefined) return failed > rule.toleratedFailures;
  return total > 0 && failed / total > rule.maxFailedFraction;
}

function tolerated(rule: Pick<FanInRule, 'maxFailedFraction' | 'toleratedFailures'>): string {
  return rule.toleratedFailures !== undefined
    ? `more than the ${rule.toleratedFailures} tolerated`
    : `more than ${rule.maxFailedFraction * 100}%`;
}

/**
 * The decision for these counters. A rule with a completion function needs its verdict on the
 * children as they are (the caller runs it: core stays free of user code).
 */
export function decideFanIn(counters: SyncCounters, rule: FanInRule, verdict?: CompletionVerdict): FanInDecision {
  const { total, succeeded, failed, cancelled } = counters;
  const ended = succeeded + failed + cancelled;
  const pending = Math.max(0, total - ended);
  const goOn = rule.onFailure === 'continue' ? ('resume' as const) : ('fail' as const);
  if (toleranceExceeded(counters, rule)) {
    return { action: goOn, cancelRest: pending > 0, reason: `${failed} of ${total} children failed (${tolerated(rule)})` };
  }
  if (rule.completeFn !== undefined) {
    if (!verdict) throw new TypeError(`the completion function "${rule.completeFn}" was not asked`);
    if ('error' in verdict) return { action: 'fail', cancelRest: pending > 0, reason: verdict.error };
    if (verdict.met) {
      return { action: 'resume', cancelRest: pending > 0, reason: `the completion function "${rule.completeFn}" said done (${succeeded} of ${total} children succeeded)` };
    }
    if (pending > 0) return { action: 'wait' };
    return { action: goOn, cancelRest: false, reason: `all ${total} children ended and the completion function "${rule.completeFn}" never said done` };
  }
  const { waitFor } = rule;
  const required = requiredSuccesses(waitFor, total);
  if (waitFor !== 'all' && succeeded >= required) {
    return { action: 'resume', cancelRest: pending > 0, reason: `${succeeded} of ${total} children succeeded (needed ${required})` };
  }
  if (pending > 0) return { action: 'wait' };
  if (succeeded >= required || waitFor === 'all') {
    return { action: 'resume', cancelRest: false, reason: `all ${total} children ended` };
  }
  return {
    action: goOn,
    cancelRest: false,
    reason: `only ${succeeded} of ${total} children succeeded; wait_for needed ${required}`,
  };
}

/**
 * Why a settled fan-out ended, read from its children once they are final (those it left out
 * counted as cancelled): the same answer for the same children, so a settlement retried after a
 * crash hands the parent the same reason.
 */
export function completionReason(finalCounters: SyncCounters, rule: FanInRule, verdict?: CompletionVerdict): CompletionReason {
  if (toleranceExceeded(finalCounters, rule) || !completed(finalCounters, rule, verdict)) return 'FAILURE_TOLERANCE_EXCEEDED';
  return finalCounters.cancelled > 0 ? 'MIN_SUCCESSFUL_REACHED' : 'ALL_COMPLETED';
}

/** Whether the rule's completion condition holds, its tolerance aside. */
function completed(counters: SyncCounters, rule: FanInRule, verdict?: CompletionVerdict): boolean {
  if (rule.completeFn !== undefined) return verdict !== undefined && 'met' in verdict && verdict.met;
  return rule.waitFor === 'all' || counters.succeeded >= requiredSuccesses(rule.waitFor, counters.total);
}

/**
 * The rule of a spawn's sync point: its own options over the run's failure policy. An
 * `agent:<Name>` aggregator's sync point tolerates no failure (its one child is the aggregate).
 */
export function fanInRuleOf(spawn: Pick<SpawnState, 'waitFor' | 'options' | 'aggregationOf'>, failurePolicy: FailurePolicy): FanInRule {
  if (spawn.aggregationOf !== undefined) return { waitFor: spawn.waitFor, maxFailedFraction: 0 };
  const { toleratedFailures, onFailure, completeFn } = spawn.options ?? {};
  return {
    waitFor: spawn.waitFor,
    maxFailedFraction: toleratedFailures && 'fraction' in toleratedFailures ? toleratedFailures.fraction : failurePolicy.maxFailedFraction,
    ...(toleratedFailures && 'count' in toleratedFailures ? { toleratedFailures: toleratedFailures.count } : {}),
    ...(onFailure === 'continue' ? { onFailure } : {}),
    ...(completeFn !== undefined ? { completeFn } : {}),
  };
}

/**
 * Enforces run budgets around each agent call (called from execute-step): before a call, a run
 * past `maxRunSeconds` ends FAILED and no call starts; during a call, the signal given to the
 * agent aborts when `maxRunSeconds` runs out; after a call that reported tokens, they are added
 * to the run's counter (one atomic update) and the run ends as soon as `maxRunTokens` is reached.
 * Ending the run cancels every active branch (which aborts the calls in flight) and stops the
 * open fan-outs. A step whose call had already started when the budget was crossed finishes its
 * call; its answer is dropped. Calls that report no tokens (script, http) cost no write here.
 */
import type { BranchRecord, RunRecord } from '../model';
import { spentBudget, timeLeftMs, timeSpent, tokensSpent } from '../run-budget';
import { scopeOf, type SpawnerDeps } from './deps';
import { endRun } from './end-branch';
import { WorkMark } from '../work-mark';

/**
 * True when no agent call may start because a budget is spent (the run is ended now). Reads
 * nothing: the time is the clock's, the tokens those on the (possibly cached) run record; the
 * token budget is enforced exactly by chargeCall.
 */
export async function budgetRefusesCall(deps: SpawnerDeps, run: RunRecord): Promise<boolean> {
  const spent = spentBudget(run, run.usedTokens ?? 0, deps.clock.now());
  if (!spent) return false;
  await endRunOverBudget(deps, run, spent.message);
  return true;
}

/** The other bounds of one agent call, in ms from now (see withRunDeadline). */
export interface CallBounds {
  /** The run's `limits.agentTimeoutSeconds`: a call that takes longer fails its branch. */
  callMs?: number;
  /** What the step worker's invocation has left for the call: past it, the step comes back later. */
  workerMs?: number;
}

/**
 * The agent call's signal, aborting also when `maxRunSeconds` runs out or at the call's own
 * bounds (CallBounds), whichever comes first; `expired()` says whether the run's time did,
 * `cutBy()` which bound cut the call. Call `done()` when the call is over: the deadline's timer
 * and the listener on the branch's signal go with it (a timer per step left pending until the
 * run's deadline would keep every step's signal alive that long).
 */
export function withRunDeadline(
  deps: SpawnerDeps,
  run: RunRecord,
  signal: AbortSignal | undefined,
  bounds: CallBounds = {},
): { signal: AbortSignal | undefined; expired(): boolean; cutBy(): 'call' | 'worker' | undefined; done(): void } {
  const deadlines: ['run' | 'call' | 'worker', number | undefined][] = [
    ['run', timeLeftMs(run, deps.clock.now())],
    ['call', bounds.callMs],
    ['worker', bounds.workerMs],
  ];
  let first: ['run' | 'call' | 'worker', number] | undefined;
  for (const [kind, ms] of deadlines) if (ms !== undefined && (!first || ms < first[1])) first = [kind, ms];
  if (!first) return { signal, expired: () => false, cutBy: () => undefined, done: () => undefined };
  const [kind, ms] = first;
  const controller = new AbortController();
  let fired: 'run' | 'call' | 'worker' | undefined;
  const timer = setTimeout(() => {
    fired = kind;
    const why = kind === 'run' ? 'the run reached maxRunSeconds' : kind === 'call' ? 'the call reached limits.agentTimeoutSeconds' : "the step worker's invocation is ending";
    controller.abort(new DOMException(why, 'TimeoutError'));
  }, Math.max(1, ms));
  const follow = () => controller.abort(signal?.reason);
  if (signal?.aborted) follow();
  else signal?.addEventListener('abort', follow, { once: true });
  return {
    signal: controller.signal,
    expired: () => fired === 'run',
    cutBy: () => (fired === 'run' ? undefined : fired),
    done: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', follow);
    },
  };
}

/**
 * Adds a call's tokens to the run (only when it has a token budget). True when the budget is
 * now reached: the call's usage is kept on its branch (so `metrics.usage` counts it), the run
 * is ended, and what the call answered is dropped.
 */
export async function chargeCall(
  deps: SpawnerDeps,
  run: RunRecord,
  branch: BranchRecord,
  usage: { inputTokens: number; outputTokens: number } | undefined,
): Promise<boolean> {
  if (!usage) return false;
  const tokens = usage.inputTokens + usage.outputTokens;
  if (!(tokens > 0)) return false;
  const used = await deps.store.addRunTokens(scopeOf(run), tokens);
  if (used === undefined) return false;
  const spent = tokensSpent(run, used);
  if (!spent) return false;
  await deps.store.updateBranch(scopeOf(branch), branch.id, branch.version, {
    stepCount: branch.stepCount + 1,
    usage: {
      inputTokens: (branch.usage?.inputTokens ?? 0) + usage.inputTokens,
      outputTokens: (branch.usage?.outputTokens ?? 0) + usage.outputTokens,
    },
  });
  await endRunOverBudget(deps, run, spent.message);
  return true;
}

/** After a call aborted at the deadline: ends the run for `maxRunSeconds`. */
export async function endRunAtDeadline(deps: SpawnerDeps, run: RunRecord): Promise<void> {
  const current = (await deps.store.getRun(scopeOf(run))) ?? run;
  const spent = timeSpent(current, deps.clock.now());
  await endRunOverBudget(deps, current, spent?.message ?? `BudgetExceeded: maxRunSeconds ${run.limits.maxRunSeconds}`);
}

/**
 * The run ends FAILED with the budget's message (one conditional write, so it never races another
 * end of the run); then the root is cancelled with that message, which cancels its children,
 * theirs, and so on down, stopping every fan-out (as a cancel does). Safe to repeat.
 */
export async function endRunOverBudget(deps: SpawnerDeps, run: RunRecord, message: string): Promise<void> {
  // Ended otherwise first, or before its root was written (its start sees the run ended): nothing more.
  await endRun(deps, scopeOf(run), { status: 'FAILED', by: WorkMark.budget, error: message });
}

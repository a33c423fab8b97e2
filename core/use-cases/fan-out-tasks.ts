/** The tasks of the fan-out state machine: RecordChildFailure, Aggregate, RecordFanOutFailure, DispatchBatch and RecordBatchFailure. */
import type { AggregateInput, BatchFailureInput, ChildFailureInput, FanOutFailureInput, FanOutTasks } from '../ports';
import { type SpawnerDeps } from './deps';
import { childId, isTerminal, type BranchRecord, type Scope } from '../model';
import { mapLimit } from '../map-limit';
import { dispatchBatch } from './fan-out-batch';
import { WorkMark } from '../work-mark';
import { branchEnds, endedAbove, endOrRetell } from './end-branch';
import { settleSyncPoint } from './sync-point';

/** The fan-out tasks over the use cases (what every orchestrator's tasks call). */
export function fanOutTasks(deps: SpawnerDeps): FanOutTasks {
  return {
    recordChildFailure: (input) => recordChildFailure(deps, input),
    aggregate: (input) => aggregateSyncPoint(deps, input),
    recordFanOutFailure: (input) => recordFanOutFailure(deps, input),
    // (Its transition is counted with the execution's: fanOutUsage.)
    dispatchBatch: (input) => dispatchBatch(deps, input),
    recordBatchFailure: (input) => recordBatchFailure(deps, input),
  };
}

/** Why a child ended TIMED_OUT (by its iteration's timeout, or where it runs: execute-step.ts). */
export const BRANCH_TIMED_OUT = 'TIMED_OUT: the branch ran past branchTimeoutSeconds';

/** A child's fan-out iteration failed (timeout, dispatch error): end the child and count it. */
export async function recordChildFailure(deps: SpawnerDeps, input: ChildFailureInput): Promise<void> {
  const scope = { team: input.team, runId: input.runId };
  // Its own state transition (the RecordChildFailure task of the state machine).
  deps.meter?.add(scope, { stepFunctionsTransitions: 1 });
  const child = await deps.store.getBranch(scope, input.branchId);
  if (!child) return;
  await endFailedChild(deps, scope, child, input);
}

/**
 * A batch's iteration failed (its timeout, its dispatch): every child of it still running ends
 * as one whose own iteration failed would; children that ended under this task's mark (an
 * earlier try that died) are told again; the others ended on their own and were told.
 */
export async function recordBatchFailure(deps: SpawnerDeps, input: BatchFailureInput): Promise<void> {
  const scope = { team: input.team, runId: input.runId };
  deps.meter?.add(scope, { stepFunctionsTransitions: 1 });
  const ids = Array.from({ length: input.count }, (_, i) => childId(input.parentId, input.first + i));
  const children = await deps.store.getBranches(scope, ids);
  const left = children.filter((c) => !isTerminal(c.status) || c.advancedBy === WorkMark.fanOut(c.id));
  await mapLimit(left, 16, (child) => endFailedChild(deps, scope, child, input));
}

async function endFailedChild(deps: SpawnerDeps, scope: Scope, child: BranchRecord, input: { error: string; cause?: string; retryCount?: number }): Promise<void> {
  const timedOut = input.error === 'States.Timeout';
  const error = timedOut
    ? BRANCH_TIMED_OUT
    : `the fan-out could not run this branch: ${input.error}${input.cause ? ` (${input.cause.slice(0, 500)})` : ''}`;
  const by = WorkMark.fanOut(child.id);
  // Under a run or parent that ended (a cancel whose cascade has not reached this child yet), the
  // child ends CANCELLED like the rest, not TIMED_OUT or FAILED.
  const above = isTerminal(child.status) ? undefined : await endedAbove(deps, child);
  const end = above ? { status: 'CANCELLED' as const, by, error: above } : { status: timedOut ? 'TIMED_OUT' as const : 'FAILED' as const, by, error };
  // The iteration is over: nothing is to be released. If the child ended on its own just before
  // (or an earlier try of this task ended it), its end is told again; what other work made of it
  // (a settlement its step began) is this task's to tell again only on a retry.
  await endOrRetell(deps, child, end, { iterationOver: true, firstTry: input.retryCount === 0 });
}

/** The fan-out's Map finished: settle the sync point (a no-op if an early exit did already). */
export async function aggregateSyncPoint(deps: SpawnerDeps, input: AggregateInput): Promise<void> {
  // On its first attempt nothing it finds done is its own to tell again (only its retries are).
  await settleSyncPoint(deps, branchEnds, { team: input.team, runId: input.runId }, input.parentId, input.seq, { fanOutEnded: true, mayRepeat: input.retryCount !== 0 });
}

/**
 * The fan-out failed for good (its Map, or Aggregate after its retries): nothing will settle the
 * sync point, so the parent still waiting on it FAILS, through the one way branches end (its
 * children are cancelled, its own parent or the run is told). Idempotent: a retry finds the parent
 * ended under the same mark and tells its end again; a parent that moved on is left alone.
 */
export async function recordFanOutFailure(deps: SpawnerDeps, input: FanOutFailureInput): Promise<void> {
  const scope = { team: input.team, runId: input.runId };
  deps.meter?.add(scope, { stepFunctionsTransitions: 1 });
  const by = WorkMark.settle(input.parentId, input.seq);
  const error = `the fan-out of sync point ${input.seq} failed: ${input.error}${input.cause ? ` (${input.cause.slice(0, 500)})` : ''}`;
  const parent = await deps.store.getBranch(scope, input.parentId);
  if (!parent) return;
  // Conditional on the version read (tried again on a change that left it waiting here): the
  // parent may be resumed and wait on its next sync point meanwhile. Ended already: its own end is
  // told again, or the one its Aggregate wrote before failing for good (this is that task's Catch).
  await endOrRetell(deps, parent, { status: 'FAILED', by, error, atVersion: true }, {}, {
    mayEnd: (p) => p.status === 'WAITING' && p.spawn?.seq === input.seq,
    mine: [by, WorkMark.aggregate(input.parentId, input.seq)],
    tries: 5,
    readBack: 'never',
  });
}

/**
 * The tasks for an orchestrator built before the deps its tasks run on (the deps hold the
 * orchestrator): calls go to what `bind` was given; a call before that is a wiring error.
 */
export function lateBoundTasks(): { tasks: FanOutTasks; bind(to: FanOutTasks): void } {
  let bound: FanOutTasks | undefined;
  const target = (): FanOutTasks => {
    if (!bound) throw new Error('the fan-out tasks were called before they were bound to their deps');
    return bound;
  };
  return {
    tasks: {
      recordChildFailure: (input) => target().recordChildFailure(input),
      aggregate: (input) => target().aggregate(input),
      recordFanOutFailure: (input) => target().recordFanOutFailure(input),
      dispatchBatch: (input) => target().dispatchBatch(input),
      recordBatchFailure: (input) => target().recordBatchFailure(input),
    },
    bind: (to) => {
      bound = to;
    },
  };
}

/** The two tasks of the fan-out state machine: RecordChildFailure and Aggregate. */
import { type Scope } from '../model';
import { type SpawnerDeps } from './deps';
import { endBranch, settleSyncPoint, tellEnd } from './end-branch';

export interface ChildFailureInput extends Scope {
  parentId: string;
  seq: number;
  branchId: string;
  /** The Step Functions error name, e.g. `States.Timeout`. */
  error: string;
  cause?: string;
}

/** A child's fan-out iteration failed (timeout, dispatch error): end the child and count it. */
export async function recordChildFailure(deps: SpawnerDeps, input: ChildFailureInput): Promise<void> {
  const scope = { team: input.team, runId: input.runId };
  const child = await deps.store.getBranch(scope, input.branchId);
  if (!child) return;
  const timedOut = input.error === 'States.Timeout';
  const error = timedOut
    ? `TIMED_OUT: the branch ran past branchTimeoutSeconds`
    : `the fan-out could not run this branch: ${input.error}${input.cause ? ` (${input.cause.slice(0, 500)})` : ''}`;
  const by = `fan-out:${child.id}`;
  // The iteration is over: nothing is to be released (taskToken left out).
  const ended = await endBranch(deps, { ...child, taskToken: undefined }, { status: timedOut ? 'TIMED_OUT' : 'FAILED', by, error });
  if (ended) return;
  // It ended on its own just before (or an earlier try of this task ended it): its end is told
  // again (idempotent; the event again only if this task is what ended it).
  const now = await deps.store.getBranch(scope, child.id);
  if (now) await tellEnd(deps, { ...now, taskToken: undefined }, by);
}

export interface AggregateInput extends Scope {
  parentId: string;
  seq: number;
}

/** The fan-out's Map finished: settle the sync point (a no-op if an early exit did already). */
export async function aggregateSyncPoint(deps: SpawnerDeps, input: AggregateInput): Promise<void> {
  await settleSyncPoint(deps, { team: input.team, runId: input.runId }, input.parentId, input.seq, { early: false });
}

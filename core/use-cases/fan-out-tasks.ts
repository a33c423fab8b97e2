/** The two tasks of the fan-out state machine: RecordChildFailure and Aggregate. */
import { branchEvent } from '../events';
import { ACTIVE_STATUSES, type Scope } from '../model';
import { publish, type SpawnerDeps } from './deps';
import { cancelBranches, currentChildIds, propagateEnd, settleSyncPoint } from './fan-in';

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
  const reason = timedOut
    ? `TIMED_OUT: the branch ran past branchTimeoutSeconds`
    : `the fan-out could not run this branch: ${input.error}${input.cause ? ` (${input.cause.slice(0, 500)})` : ''}`;
  let ended = child;
  const moved = await deps.store.transitionBranch(scope, child.id, ACTIVE_STATUSES, timedOut ? 'TIMED_OUT' : 'FAILED', {
    error: reason,
    endedAt: deps.clock.now(),
  });
  if (moved) {
    ended = moved;
    await publish(deps, branchEvent('BranchFailed', moved, deps.clock.now(), { error: reason }));
    if (child.status === 'WAITING' && child.spawn) {
      await cancelBranches(deps, scope, currentChildIds(child), `its parent ${child.id} ${moved.status}`);
      // Its own fan-out would otherwise wait out the timeouts of the children just cancelled.
      const sp = await deps.store.getSyncPoint(scope, child.id, child.spawn.seq);
      if (sp) await deps.fanOut.stop(sp.executionName, `branch ${child.id} ${moved.status}`);
    }
  }
  // Whether we ended it or it ended on its own just before, its end is counted (idempotently).
  await propagateEnd(deps, { ...ended, taskToken: undefined });
}

export interface AggregateInput extends Scope {
  parentId: string;
  seq: number;
}

/** The fan-out's Map finished: settle the sync point (a no-op if an early exit did already). */
export async function aggregateSyncPoint(deps: SpawnerDeps, input: AggregateInput): Promise<void> {
  await settleSyncPoint(deps, { team: input.team, runId: input.runId }, input.parentId, input.seq, { early: false });
}

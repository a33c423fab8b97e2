import { ConflictError, NotFoundError } from '../errors';
import { isTerminal, ROOT_BRANCH_ID, type Scope } from '../model';
import { runEvent } from '../events';
import { publish, type SpawnerDeps } from './deps';
import { endBranch, tellEnd } from './end-branch';
import { WorkMark } from '../work-mark';

const BY = WorkMark.cancel;

/**
 * Cancels a running run: the run first (one conditional write, so a cancel never races another
 * end of the run), then the root, whose end cancels its current children, theirs, and so on down
 * (end-branch.ts), stopping every fan-out on the way. A spawn that creates children meanwhile sees
 * its parent ended and cancels them itself. Safe to repeat: a repeat finishes a cancel that died
 * half-way and publishes its events again.
 */
export async function cancelRun(deps: SpawnerDeps, scope: Scope, reason = 'cancelled by request'): Promise<void> {
  const run = await deps.store.getRun(scope);
  if (!run) throw new NotFoundError(`run ${scope.runId} not found`);
  const finished = await deps.store.finishRun(scope, 'CANCELLED', { endedAt: deps.clock.now(), error: reason, endedBy: BY });
  if (!finished) {
    const current = await deps.store.getRun(scope);
    if (current?.status !== 'CANCELLED') throw new ConflictError(`run ${scope.runId} is already ${current?.status}`);
  }
  const root = await deps.store.getBranch(scope, ROOT_BRANCH_ID);
  if (!root) {
    // The run's start has not written its root yet; it will see the run cancelled and end it.
    await publish(deps, runEvent('RunCancelled', scope, deps.clock.now(), { status: 'CANCELLED', error: reason }));
    return;
  }
  if (!isTerminal(root.status)) {
    if (await endBranch(deps, root, { status: 'CANCELLED', by: BY, error: reason })) return;
  }
  // Ended already (by an earlier try of this cancel, or on its own as the cancel came): told again.
  const now = (await deps.store.getBranch(scope, ROOT_BRANCH_ID)) ?? root;
  await tellEnd(deps, now, BY);
}

import { ConflictError, NotFoundError } from '../errors';
import { runEvent } from '../events';
import { ROOT_BRANCH_ID, type Scope } from '../model';
import { publish, type SpawnerDeps } from './deps';
import { cancelBranches } from './fan-in';

/** Cancels a running run: the run, every active branch, and every open fan-out. */
export async function cancelRun(deps: SpawnerDeps, scope: Scope, reason = 'cancelled by request'): Promise<void> {
  const run = await deps.store.getRun(scope);
  if (!run) throw new NotFoundError(`run ${scope.runId} not found`);
  const now = deps.clock.now();
  const finished = await deps.store.finishRun(scope, 'CANCELLED', { endedAt: now, error: reason });
  if (!finished) {
    const current = await deps.store.getRun(scope);
    if (current?.status !== 'CANCELLED') throw new ConflictError(`run ${scope.runId} is already ${current?.status}`);
  }
  // Branches first: the run's end event aborts in-flight agent calls.
  await cancelBranches(deps, scope, [ROOT_BRANCH_ID], reason);
  for (const open of await deps.store.listOpenSyncPoints(scope)) {
    await deps.fanOut.stop(open.executionName, reason);
  }
  if (finished) await publish(deps, runEvent('RunCancelled', scope, now, { status: 'CANCELLED', reason }));
}

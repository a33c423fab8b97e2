import { ConflictError, NotFoundError } from '../errors';
import type { Scope } from '../model';
import { runEvent, RUN_END_EVENTS } from '../events';
import { publish, type SpawnerDeps } from './deps';
import { endRun } from './end-branch';
import { WorkMark } from '../work-mark';

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
  const ended = await endRun(deps, scope, { status: 'CANCELLED', by: WorkMark.cancel, error: reason });
  if (ended.outcome === 'not-ours') throw new ConflictError(`run ${scope.runId} is already ${ended.run?.status}`);
  if (ended.outcome === 'no-root') {
    // The run's start has not written its root yet; it will see the run cancelled and end it.
    await publish(deps, runEvent(RUN_END_EVENTS.CANCELLED, scope, deps.clock.now(), { status: 'CANCELLED', error: reason }));
  }
}

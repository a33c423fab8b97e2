/**
 * Aborts in-flight agent calls whose branch ended elsewhere (cancelled, timed out) or whose run
 * ended, so nothing waits for cancelled work. Fed with lifecycle events.
 */
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { Scope } from '../../core/model';

export class BranchAborts {
  private readonly controllers = new Map<string, AbortController>();

  signalFor(scope: Scope, branchId: string): AbortSignal {
    const key = `${scope.team}/${scope.runId}/${branchId}`;
    let controller = this.controllers.get(key);
    if (!controller || controller.signal.aborted) {
      controller = new AbortController();
      this.controllers.set(key, controller);
    }
    return controller.signal;
  }

  handle(events: LifecycleEvent[]): void {
    for (const event of events) {
      const prefix = `${event.team}/${event.runId}/`;
      if (event.type === 'BranchCancelled' || event.type === 'BranchFailed' || event.type === 'BranchCompleted') {
        this.abort(prefix + event.branchId, event.type !== 'BranchCompleted');
      } else if (isRunEnd(event)) {
        for (const key of [...this.controllers.keys()]) if (key.startsWith(prefix)) this.abort(key, true);
      }
    }
  }

  private abort(key: string, abort: boolean): void {
    const controller = this.controllers.get(key);
    this.controllers.delete(key);
    if (abort) controller?.abort();
  }
}

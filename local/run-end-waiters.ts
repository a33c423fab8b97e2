/** The waits for runs' ends in the local runtime: each resolved by its run's end event (core/events.ts, isRunEnd). */
import { isRunEnd, type LifecycleEvent } from '../core/events';
import type { RunRecord, Scope } from '../core/model';
import type { BranchStore } from '../core/ports';

export class RunEndWaiters {
  private readonly waiters = new Map<string, ((run: RunRecord) => void)[]>();

  constructor(private readonly store: Pick<BranchStore, 'getRun'>) {}

  /** Resolves with the run, read again, once its end event is seen (call before reading its status, so no end is missed). */
  ended({ team, runId }: Scope): Promise<RunRecord> {
    const key = `${team}/${runId}`;
    return new Promise<RunRecord>((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
  }

  /** Told every lifecycle event (the local bus). */
  onEvent(event: LifecycleEvent): void {
    if (!isRunEnd(event)) return;
    const key = `${event.team}/${event.runId}`;
    const waiters = this.waiters.get(key);
    if (!waiters) return;
    this.waiters.delete(key);
    void this.store.getRun({ team: event.team, runId: event.runId }).then((run) => {
      for (const resolve of waiters) resolve(run!);
    });
  }
}

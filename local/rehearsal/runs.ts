/**
 * Runs as a client of the rehearsed stack sees them: read from the stack's table as the functions
 * wrote them, awaited to their end (failing fast when the rehearsal failed: a denied call, or a
 * fan-out execution that failed and would leave its parent waiting forever in AWS), and what a
 * run cost once the work is quiet.
 */
import type { DynamoBranchStore } from '../../adapters/dynamodb';
import type { CostCounters } from '../../core/cost';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { BranchRecord, RunRecord } from '../../core/model';
import type { RehearsalAccess } from './access';
import type { AccessDeniedError } from './iam';
import { RehearsalError } from './rehearsal-error';

export interface RunsContext {
  store: DynamoBranchStore;
  team: string;
  access: RehearsalAccess;
  onLifecycleEvent(listener: (event: LifecycleEvent) => void): () => void;
  /** Step Functions transitions of the run's executions, counted from the engine. */
  transitionsOfRun(team: string, runId: string): number;
  /** Waits until no work is in flight. */
  settle(): Promise<void>;
}

export class RehearsalRuns {
  /** Runs whose fan-out execution failed, by run id. */
  private readonly failedExecutions = new Map<string, Error>();
  private readonly executionFailureListeners = new Set<(runId: string, error: Error) => void>();

  constructor(private readonly ctx: RunsContext) {}

  /** One of the run's fan-out executions failed (its parent would wait forever in AWS). */
  executionFailed(runId: string, error: Error): void {
    this.failedExecutions.set(runId, error);
    for (const listener of this.executionFailureListeners) listener(runId, error);
  }

  getRun(runId: string): Promise<RunRecord | undefined> {
    return this.ctx.store.getRun({ team: this.ctx.team, runId });
  }

  listBranches(runId: string): Promise<BranchRecord[]> {
    return this.ctx.store.listBranches({ team: this.ctx.team, runId });
  }

  /**
   * Resolves with the run once it is terminal; rejects as soon as any call is denied, or one of
   * the run's fan-out executions fails.
   */
  async waitForRun(runId: string): Promise<RunRecord> {
    let unsubscribe = () => {};
    let undeny = () => {};
    let unfail = () => {};
    try {
      return await new Promise<RunRecord>((resolve, reject) => {
        const fail = (denial: AccessDeniedError) => reject(new RehearsalError(`the rehearsal failed: ${denial.message}`, { cause: denial }));
        const failed = (error: Error) => reject(new RehearsalError(`the rehearsal failed: run ${runId}'s fan-out ${error.message}`, { cause: error }));
        const { denials } = this.ctx.access;
        if (denials.length) return fail(denials[0]);
        const failure = this.failedExecutions.get(runId);
        if (failure) return failed(failure);
        const onFailure = (failedRun: string, error: Error) => failedRun === runId && failed(error);
        this.executionFailureListeners.add(onFailure);
        unfail = () => this.executionFailureListeners.delete(onFailure);
        undeny = this.ctx.access.onDenied(fail);
        unsubscribe = this.ctx.onLifecycleEvent((event) => {
          if (event.runId === runId && isRunEnd(event)) void this.getRun(runId).then((run) => run && resolve(run), reject);
        });
        void this.getRun(runId).then((run) => {
          if (run && run.status !== 'RUNNING') resolve(run);
        }, reject);
      });
    } finally {
      unsubscribe();
      undeny();
      unfail();
    }
  }

  /**
   * What the deployed functions metered (each invocation adds its usage to the run's cost record
   * when it ends: functions/lambda/aws-deps.ts), once the work is quiet; the Step Functions
   * transitions are the ones the executions made, counted from the engine (the functions meter
   * them from the plan: the same number when the state machine does what the plan says, which a
   * test holds).
   */
  async costOf(runId: string): Promise<CostCounters> {
    await this.ctx.settle();
    const metered = await this.ctx.store.getCost({ team: this.ctx.team, runId });
    return { ...metered, stepFunctionsTransitions: this.ctx.transitionsOfRun(this.ctx.team, runId) };
  }
}

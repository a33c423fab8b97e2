/**
 * FanOutOrchestrator in memory: what the fan-out state machine does, without an engine. The
 * memory tier (`run`, `dev` without a data folder) runs it, and so does the simulation. The
 * journal and engines tiers, the rehearsal and AWS run the ASL itself; one conformance suite
 * (test/adapters/fan-out-conformance.ts) holds the two equal.
 *
 * It reads what the ASL reads: the execution input (fanOutInput: BATCHED ranges or INLINE
 * children), MaxConcurrency (0 = no limit), the Retry fields of RecordChildFailure and
 * Aggregate (loaded from the same ASL file; each attempt gets its retry count, as the ASL passes
 * `$$.State.RetryCount` to the failed-iteration tasks and Aggregate), and DispatchChild's Catch: a child that times out
 * (`States.Timeout`) or cannot be sent is recorded with its error name and message. A
 * batch's iteration calls DispatchBatch with a token and waits for it (the batch's timeout);
 * its Catch is RecordBatchFailure, which failing for good fails the Map. A
 * RecordChildFailure that fails for good fails the inline Map (no further child is dispatched).
 * Aggregate runs once
 * at the end, unless the execution was stopped. The Catch of the Map and of Aggregate leads to
 * RecordFanOutFailure; only when that fails too does the execution fail (onError).
 *
 * Executions, task tokens, timeouts and stop are LocalExecutions', shared with the ASL adapter.
 */
import { childId } from '../../core/model';
import type { BatchFailureInput, ChildFailureInput, CostSink, FanOutRequest, FanOutTasks, StepQueue } from '../../core/ports';
import { fanOutInput, fanOutRetryPolicies, retryDelayMs, type FanOutRetryPolicies, type TaskRetry } from '../stepfunctions/fan-out-definition';
import { LocalExecutions, type LocalExecution } from '../stepfunctions/local-executions';

export class MemoryFanOut extends LocalExecutions {
  private readonly retries: FanOutRetryPolicies;

  constructor(
    queue: StepQueue,
    private readonly tasks: FanOutTasks,
    onError?: (error: unknown) => void,
    meter?: CostSink,
  ) {
    super(queue, onError, meter);
    this.retries = fanOutRetryPolicies();
  }

  /** The execution: the Map (of batches, or inline of children), then Aggregate. */
  protected async execute(request: FanOutRequest, execution: LocalExecution): Promise<void> {
    const input = fanOutInput(request);
    const { team, runId, parentId, seq } = request;
    try {
      if (input.mode === 'BATCHED') {
        await mapItems(execution, input.batchRanges ?? [], input.batchConcurrency ?? 0, (range) =>
          this.batch(request, execution, { ...range, window: input.window ?? range.count }, input.batchTimeoutSeconds),
        );
      } else {
        await mapItems(execution, input.children ?? [], input.maxConcurrency ?? 0, (index) => this.child(request, execution, index));
      }
      await retrying(this.retries.aggregate, execution, 'Aggregate', async (retryCount) => {
        if (!execution.stopped) await this.tasks.aggregate({ team, runId, parentId, seq, retryCount });
      });
    } catch (error) {
      // The Catch of the Map and of Aggregate: the parent fails instead of waiting forever.
      await retrying(this.retries.recordFanOutFailure, execution, 'RecordFanOutFailure', async () => {
        if (!execution.stopped) await this.tasks.recordFanOutFailure({ team, runId, parentId, seq, ...errorOutput(error) });
      });
    }
  }

  /** One batch's iteration: DispatchBatch (retried as its Retry says), and RecordBatchFailure when it fails (its Catch). */
  private async batch(
    request: FanOutRequest,
    execution: LocalExecution,
    batch: { first: number; count: number; window: number },
    timeoutSeconds: number | undefined,
  ): Promise<void> {
    const { team, runId, parentId, seq } = request;
    try {
      await retrying(this.retries.dispatchBatch, execution, `DispatchBatch batch-${batch.first}`, () =>
        this.dispatchBatch(execution, { team, runId, parentId, seq, ...batch }, timeoutSeconds, (input) => this.tasks.dispatchBatch(input)).then(() => undefined),
      );
      return;
    } catch (error) {
      const failure: BatchFailureInput = { team, runId, parentId, seq, first: batch.first, count: batch.count, ...errorOutput(error) };
      try {
        await retrying(this.retries.recordBatchFailure, execution, `RecordBatchFailure batch-${batch.first}`, async (retryCount) => {
          if (!execution.stopped && !execution.mapFailed) await this.tasks.recordBatchFailure({ ...failure, retryCount });
        });
      } catch (recordError) {
        // The Map fails; nothing more is dispatched, pending batches are released.
        this.failMap(execution, 'RecordBatchFailure failed');
        throw recordError;
      }
    }
  }

  /** One iteration: DispatchChild, and RecordChildFailure when it fails (its Catch). */
  private async child(request: FanOutRequest, execution: LocalExecution, index: number): Promise<void> {
    const { team, runId, parentId, seq } = request;
    const branchId = childId(parentId, index);
    try {
      await this.dispatchChild(execution, { team, runId, branchId, step: 0 }, request.timeoutSeconds);
      return;
    } catch (error) {
      const failure: ChildFailureInput = { team, runId, parentId, seq, branchId, ...errorOutput(error) };
      try {
        await retrying(this.retries.recordChildFailure, execution, `RecordChildFailure ${branchId}`, async (retryCount) => {
          if (!execution.stopped && !execution.mapFailed) await this.tasks.recordChildFailure({ ...failure, retryCount });
        });
      } catch (recordError) {
        // The Map fails; nothing more is dispatched, pending children are released.
        this.failMap(execution, 'RecordChildFailure failed');
        throw recordError;
      }
    }
  }
}

/**
 * A Task state's Retry: the same call again after the retrier's wait, until its attempts run out.
 * Each call gets its retry count (`$$.State.RetryCount`: 0 on the first attempt). While it
 * waits, the execution says so (`retrying`, for the description of stuck work).
 */
async function retrying(policy: TaskRetry, execution: LocalExecution, task: string, call: (retryCount: number) => Promise<void>): Promise<void> {
  const attempts = new Map<number, number>();
  for (let retryCount = 0; ; retryCount++) {
    try {
      return await call(retryCount);
    } catch (error) {
      const retrier = policy(error);
      const attempt = retrier ? (attempts.get(retrier.index) ?? 0) : 0;
      if (!retrier || attempt >= retrier.maxAttempts) throw error;
      attempts.set(retrier.index, attempt + 1);
      const ms = retryDelayMs(retrier, attempt);
      execution.retrying = `${task}: retry ${attempt + 1} of ${retrier.maxAttempts} in ${Math.round(ms)} ms after ${errorOutput(error).error}: ${errorOutput(error).cause.slice(0, 200)}`;
      await new Promise((resolve) => setTimeout(resolve, ms));
      execution.retrying = undefined;
    }
  }
}

/** What DispatchChild's Catch puts in `$.error`: the error's name and message. */
function errorOutput(error: unknown): { error: string; cause: string } {
  return error instanceof Error ? { error: error.name, cause: error.message } : { error: 'Error', cause: String(error) };
}

/**
 * A Map state over `items`: at most `maxConcurrency` at once (0: no limit), in order. The first
 * iteration that fails fails the Map: no further item starts.
 */
async function mapItems<T>(execution: LocalExecution, items: T[], maxConcurrency: number, iterate: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const slot = async (): Promise<void> => {
    // A stopped execution's queued iterations would do nothing (no dispatch, no task): skip them.
    while (!failed && !execution.stopped && !execution.mapFailed && next < items.length) {
      const item = items[next++];
      try {
        await iterate(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const slots = maxConcurrency > 0 ? Math.min(maxConcurrency, items.length) : items.length;
  // Every slot runs to its end before the Map fails, so nothing is left running unseen.
  const results = await Promise.allSettled(Array.from({ length: slots }, slot));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/**
 * FanOutOrchestrator in memory: what the fan-out state machine does, without an engine. The
 * memory tier (`run`, `dev` without a data folder) runs it, and so does the simulation. The
 * journal and engines tiers, the rehearsal and AWS run the ASL itself; one conformance suite
 * (test/adapters/fan-out-conformance.ts) holds the two equal.
 *
 * It reads what the ASL reads: the execution input (fanOutInput: INLINE children, or DISTRIBUTED
 * batches of them), MaxConcurrency (0 = no limit), the Retry fields of RecordChildFailure and
 * Aggregate (loaded from the same ASL file), and DispatchChild's Catch: a child that times out
 * (`States.Timeout`) or cannot be sent is recorded with its error name and message. A
 * RecordChildFailure that fails for good fails the Map (no further child is dispatched) and the
 * execution (onError). Aggregate runs once at the end, unless the execution was stopped.
 *
 * Tokens name their execution and branch, as the local ASL adapter's do, so a token made by an
 * earlier process reaches the same branch's pending child of the execution of that name.
 */
import { fanOutUsage } from '../../core/fan-out-plan';
import { BranchSpawnerError } from '../../core/errors';
import { childId } from '../../core/model';
import type {
  ChildFailureInput,
  ChildReport,
  CostSink,
  FanOutOrchestrator,
  FanOutRequest,
  FanOutTasks,
  StepQueue,
} from '../../core/ports';
import { MAX_TIMER_MS } from '../../core/script-directives';
import {
  LOCAL_TOKEN_PREFIX,
  StatesTimeoutError,
  assertFanOutRequest,
  fanOutInput,
  fanOutRetryPolicies,
  retryDelayMs,
  type RetryPolicy,
} from '../stepfunctions/fan-out-definition';

/** Rejects the dispatch of an execution that was stopped (nothing records it: the tasks are skipped). */
class FanOutStoppedError extends BranchSpawnerError {}

interface Execution {
  name: string;
  stopped: boolean;
  tokens: Set<string>;
  /** The pending token of each child waited on, by branch id (for tokens of an earlier process). */
  byBranch: Map<string, string>;
}

interface PendingChild {
  settle(outcome: { report: ChildReport } | { error: Error }): void;
}

export class MemoryFanOut implements FanOutOrchestrator {
  /** Every name ever started: start() is idempotent for running and finished executions alike. */
  private readonly started = new Set<string>();
  private readonly running = new Map<string, { execution: Execution; done: Promise<void> }>();
  private readonly pending = new Map<string, PendingChild>();
  private readonly retries: { recordChildFailure: RetryPolicy; aggregate: RetryPolicy };
  private tokenSeq = 0;

  constructor(
    private readonly queue: StepQueue,
    private readonly tasks: FanOutTasks,
    private readonly onError: (error: unknown) => void = (error) => console.error('fan-out execution failed:', error),
    private readonly meter?: CostSink,
  ) {
    this.retries = fanOutRetryPolicies();
  }

  async start(request: FanOutRequest): Promise<void> {
    assertFanOutRequest(request);
    if (this.started.has(request.executionName)) return;
    this.started.add(request.executionName);
    this.meter?.add(request, fanOutUsage(request.count, request.maxConcurrency));
    const execution: Execution = { name: request.executionName, stopped: false, tokens: new Set(), byBranch: new Map() };
    const done = this.run(request, execution).then(
      () => undefined,
      (error: unknown) => {
        try {
          this.onError(error);
        } catch {
          // A throwing error handler must not turn into an unhandled rejection either.
        }
      },
    );
    this.running.set(execution.name, { execution, done });
    void done.finally(() => {
      this.halt(execution, 'the execution ended');
      this.running.delete(execution.name);
    });
  }

  async childFinished(taskToken: string, report: ChildReport): Promise<void> {
    const pending = this.pending.get(taskToken) ?? this.pendingForEarlierToken(taskToken, report.branchId);
    pending?.settle({ report });
  }

  async stop(executionName: string, reason?: string): Promise<void> {
    const entry = this.running.get(executionName);
    if (entry) this.halt(entry.execution, reason ?? 'stopped');
  }

  /** Resolves when no execution is running (including ones started while waiting). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()].map((e) => e.done));
  }

  activeExecutions(): number {
    return this.running.size;
  }

  /** The execution: the Map (inline, or batches of inline Maps), then Aggregate. */
  private async run(request: FanOutRequest, execution: Execution): Promise<void> {
    const input = fanOutInput(request);
    const child = (index: number) => this.child(request, execution, index);
    if (input.mode === 'INLINE') {
      await mapItems(execution, input.children ?? [], input.maxConcurrency ?? 0, child);
    } else {
      await mapItems(execution, input.batches ?? [], input.batchConcurrency ?? 0, (batch) =>
        mapItems(execution, batch, input.batchSize ?? 0, child),
      );
    }
    const { team, runId, parentId, seq } = request;
    await this.retrying(this.retries.aggregate, async () => {
      if (!execution.stopped) await this.tasks.aggregate({ team, runId, parentId, seq });
    });
  }

  /** One iteration: DispatchChild, and RecordChildFailure when it fails (its Catch). */
  private async child(request: FanOutRequest, execution: Execution, index: number): Promise<void> {
    const { team, runId, parentId, seq } = request;
    const branchId = childId(parentId, index);
    try {
      await this.dispatchChild(execution, { team, runId, branchId }, request.timeoutSeconds);
      return;
    } catch (error) {
      const failure: ChildFailureInput = { team, runId, parentId, seq, branchId, ...errorOutput(error) };
      try {
        await this.retrying(this.retries.recordChildFailure, async () => {
          if (!execution.stopped) await this.tasks.recordChildFailure(failure);
        });
      } catch (recordError) {
        // The Map fails: nothing more is dispatched, pending children are released.
        this.halt(execution, 'RecordChildFailure failed');
        throw recordError;
      }
    }
  }

  private dispatchChild(execution: Execution, child: { team: string; runId: string; branchId: string }, timeoutSeconds: number): Promise<ChildReport> {
    if (execution.stopped) return Promise.reject(new FanOutStoppedError(`fan-out ${execution.name} stopped`));
    const { branchId } = child;
    const token = `${LOCAL_TOKEN_PREFIX}${execution.name}/${branchId}/${++this.tokenSeq}`;
    // Registered before the send: a fast worker may report the child before send() returns.
    const outcome = new Promise<ChildReport>((resolve, reject) => {
      // As in AWS, the task's clock starts when it is scheduled, before the message is sent.
      const timer = setTimeout(
        () => settle({ error: new StatesTimeoutError(`DispatchChild timed out after ${timeoutSeconds}s`) }),
        Math.min(timeoutSeconds * 1000, MAX_TIMER_MS),
      );
      const settle: PendingChild['settle'] = (result) => {
        if (!this.pending.delete(token)) return;
        clearTimeout(timer);
        execution.tokens.delete(token);
        if (execution.byBranch.get(branchId) === token) execution.byBranch.delete(branchId);
        if ('report' in result) resolve(result.report);
        else reject(result.error);
      };
      this.pending.set(token, { settle });
      execution.tokens.add(token);
      execution.byBranch.set(branchId, token);
    });
    // It may settle (stop, timeout) while the send is still in flight, before anyone awaits it.
    outcome.catch(() => undefined);
    this.queue.send([{ ...child, step: 0, taskToken: token }]).catch((error: unknown) => {
      this.pending.get(token)?.settle({ error: error instanceof Error ? error : new Error(String(error)) });
    });
    return outcome;
  }

  /** A token made by an earlier process for an execution running again here. */
  private pendingForEarlierToken(taskToken: string, branchId: string): PendingChild | undefined {
    if (!taskToken.startsWith(LOCAL_TOKEN_PREFIX)) return undefined;
    const [name, tokenBranch] = taskToken.slice(LOCAL_TOKEN_PREFIX.length).split('/');
    if (tokenBranch !== branchId) return undefined;
    const token = this.running.get(name)?.execution.byBranch.get(branchId);
    return token ? this.pending.get(token) : undefined;
  }

  /** A Task state's Retry: the same error again after the retrier's wait, until its attempts run out. */
  private async retrying(policy: RetryPolicy, task: () => Promise<void>): Promise<void> {
    const attempts = new Map<number, number>();
    for (;;) {
      try {
        return await task();
      } catch (error) {
        const retrier = policy(error);
        const attempt = retrier ? (attempts.get(retrier.index) ?? 0) : 0;
        if (!retrier || attempt >= retrier.maxAttempts) throw error;
        attempts.set(retrier.index, attempt + 1);
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(retrier, attempt)));
      }
    }
  }

  /** From now on the execution dispatches nothing and skips its tasks; its pending children are released. */
  private halt(execution: Execution, reason: string): void {
    if (execution.stopped) return;
    execution.stopped = true;
    const error = new FanOutStoppedError(`fan-out ${execution.name} stopped: ${reason}`);
    for (const token of [...execution.tokens]) this.pending.get(token)?.settle({ error });
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
async function mapItems<T>(execution: Execution, items: T[], maxConcurrency: number, iterate: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const slot = async (): Promise<void> => {
    // A stopped execution's queued iterations would do nothing (no dispatch, no task): skip them.
    while (!failed && !execution.stopped && next < items.length) {
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

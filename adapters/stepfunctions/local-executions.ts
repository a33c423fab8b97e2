/**
 * What both local fan-out orchestrators share (the ASL on aws-local-stepfunctions, and the
 * in-memory one): executions by name, started once; each dispatched child's task token and the
 * wait for its report, with the child's timeout; stop, which releases the pending children; and
 * idle. A subclass only runs an execution (`execute`), dispatching children with dispatchChild.
 *
 * Tokens name their execution and branch, so a token made by an earlier process (a run resumed
 * on the same data) reaches the same branch's pending child in the execution of that name now
 * running. No engine is imported here: the memory tier loads this module without the ASL engine.
 */
import { randomUUID } from 'node:crypto';
import { BranchSpawnerError } from '../../core/errors';
import { fanOutUsage } from '../../core/fan-out-plan';
import type { BatchDispatchInput, ChildReport, CostSink, FanOutOrchestrator, FanOutRequest, StepMessage, StepQueue } from '../../core/ports';
import { MAX_TIMER_MS } from '../../core/script-directives';
import { LOCAL_TOKEN_PREFIX, StatesTimeoutError, assertFanOutRequest } from './fan-out-definition';

/** Pending batches are keyed `batch-<first index>` (a branch id never starts so). */
const BATCH_KEY = 'batch-';

/** Rejects the dispatch of an execution that was stopped (nothing records it: the tasks are skipped). */
class FanOutStoppedError extends BranchSpawnerError {}

export interface LocalExecution {
  name: string;
  stopped: boolean;
  reason?: string;
  /** Its Map failed (an iteration failed for good): nothing more is dispatched, but the execution goes on to its Catch. */
  mapFailed: boolean;
  tokens: Set<string>;
  /** The pending token of each child waited on, by branch id (for tokens of an earlier process). */
  byBranch: Map<string, string>;
  /** What a task waits for before its retry, if one does (for the description of stuck work). */
  retrying?: string;
}

/** A running execution as described when work looks stuck (see LocalExecutions.describeRunning). */
export interface RunningExecution {
  request: FanOutRequest;
  stopped: boolean;
  reason?: string;
  mapFailed: boolean;
  /** The children (branch ids) and batches (`batch-<first>`) whose token it waits for, with that token. */
  waitingOn: { key: string; token: string }[];
  retrying?: string;
}

interface PendingChild {
  settle(outcome: { report: ChildReport } | { error: Error }): void;
}

export abstract class LocalExecutions implements FanOutOrchestrator {
  /** Every name ever started: start() is idempotent for running and finished executions alike. */
  private readonly started = new Set<string>();
  private readonly running = new Map<string, { execution: LocalExecution; request: FanOutRequest; done: Promise<void> }>();
  private readonly pending = new Map<string, PendingChild>();

  constructor(
    protected readonly queue: StepQueue,
    /** Where a failed execution's error goes. Never an unhandled rejection. */
    private readonly onExecutionError: (error: unknown) => void = (error) => console.error('fan-out execution failed:', error),
    /** Counts each started execution's transitions and DispatchChild sends (see core/fan-out-plan.ts). */
    private readonly meter?: CostSink,
  ) {}

  /** Runs one execution to its end (a rejection is the execution failing). */
  protected abstract execute(request: FanOutRequest, execution: LocalExecution): Promise<unknown>;

  async start(request: FanOutRequest): Promise<void> {
    assertFanOutRequest(request);
    if (this.started.has(request.executionName)) return;
    this.started.add(request.executionName);
    this.meter?.add(request, fanOutUsage(request.count, request.maxConcurrency, request.dispatch));
    const execution: LocalExecution = { name: request.executionName, stopped: false, mapFailed: false, tokens: new Set(), byBranch: new Map() };
    const done = this.execute(request, execution).then(
      () => undefined,
      (error: unknown) => {
        try {
          this.onExecutionError(error);
        } catch {
          // A throwing error handler must not turn into an unhandled rejection either.
        }
      },
    );
    this.running.set(execution.name, { execution, request, done });
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

  /** The executions still running, and what each waits for (to say what a run is stuck on). */
  describeRunning(): RunningExecution[] {
    return [...this.running.values()].map(({ execution, request }) => ({
      request,
      stopped: execution.stopped,
      ...(execution.reason ? { reason: execution.reason } : {}),
      mapFailed: execution.mapFailed,
      waitingOn: [...execution.byBranch].map(([key, token]) => ({ key, token })),
      ...(execution.retrying ? { retrying: execution.retrying } : {}),
    }));
  }

  /**
   * Sends a child's first step with a new task token and waits for its report, failing with
   * States.Timeout past `timeoutSeconds` (no limit when undefined), or with the send's error.
   */
  protected dispatchChild(execution: LocalExecution, message: Omit<StepMessage, 'taskToken'>, timeoutSeconds: number | undefined): Promise<ChildReport> {
    return this.waitForToken(execution, message.branchId, 'DispatchChild', timeoutSeconds, (taskToken) => this.queue.send([{ ...message, taskToken }]));
  }

  /**
   * A batch's iteration (DispatchBatch, a `lambda:invoke.waitForTaskToken` task): the task is
   * called with a new token, and the iteration waits for that token's release (the batch's
   * last child to end), failing with States.Timeout past the batch's timeout.
   */
  protected dispatchBatch(
    execution: LocalExecution,
    input: Omit<BatchDispatchInput, 'taskToken'>,
    timeoutSeconds: number | undefined,
    task: (input: BatchDispatchInput) => Promise<void>,
  ): Promise<ChildReport> {
    return this.waitForToken(execution, `${BATCH_KEY}${input.first}`, 'DispatchBatch', timeoutSeconds, (taskToken) => task({ ...input, taskToken }));
  }

  /** A task that waits for its token: `send` hands the token on; a failed send fails the task. */
  private waitForToken(
    execution: LocalExecution,
    key: string,
    state: string,
    timeoutSeconds: number | undefined,
    send: (token: string) => Promise<void>,
  ): Promise<ChildReport> {
    if (execution.stopped || execution.mapFailed) return Promise.reject(new FanOutStoppedError(`fan-out ${execution.name} stopped`));
    const branchId = key;
    const token = `${LOCAL_TOKEN_PREFIX}${execution.name}/${branchId}/${randomUUID()}`;
    // Registered before the send: a fast worker may report the child before send() returns.
    const outcome = new Promise<ChildReport>((resolve, reject) => {
      // As in AWS, the task's clock starts when it is scheduled, before the message is sent.
      const timer =
        timeoutSeconds === undefined
          ? undefined
          : setTimeout(
              () => settle({ error: new StatesTimeoutError(`${state} timed out after ${timeoutSeconds}s`) }),
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
    send(token).catch((error: unknown) => {
      this.pending.get(token)?.settle({ error: error instanceof Error ? error : new Error(String(error)) });
    });
    return outcome;
  }

  /** From now on the execution dispatches nothing and skips its tasks; its pending children are released. */
  protected halt(execution: LocalExecution, reason: string): void {
    if (execution.stopped) return;
    execution.stopped = true;
    execution.reason = reason;
    const error = new FanOutStoppedError(`fan-out ${execution.name} stopped: ${reason}`);
    for (const token of [...execution.tokens]) this.pending.get(token)?.settle({ error });
  }

  /**
   * The execution's Map failed: as in AWS, its iterations still in flight are abandoned (pending
   * children released, nothing more dispatched or recorded), and the execution goes on to the
   * Map's Catch (RecordFanOutFailure).
   */
  protected failMap(execution: LocalExecution, reason: string): void {
    if (execution.mapFailed) return;
    execution.mapFailed = true;
    const error = new FanOutStoppedError(`fan-out ${execution.name}: ${reason}`);
    for (const token of [...execution.tokens]) this.pending.get(token)?.settle({ error });
  }

  /** A token made by an earlier process for an execution running again here. */
  private pendingForEarlierToken(taskToken: string, branchId: string): PendingChild | undefined {
    if (!taskToken.startsWith(LOCAL_TOKEN_PREFIX)) return undefined;
    const [name, tokenBranch] = taskToken.slice(LOCAL_TOKEN_PREFIX.length).split('/');
    // A child's token reaches only that child's iteration; a batch's, that batch's.
    if (!tokenBranch || (tokenBranch !== branchId && !tokenBranch.startsWith(BATCH_KEY))) return undefined;
    const token = this.running.get(name)?.execution.byBranch.get(tokenBranch);
    return token ? this.pending.get(token) : undefined;
  }
}

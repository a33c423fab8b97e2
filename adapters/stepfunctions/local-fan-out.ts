/**
 * FanOutOrchestrator on the embedded engine (aws-local-stepfunctions): runs the same
 * fan-out.asl.json as AWS, with its three Task states replaced by local functions.
 *
 * Engine differences this adapter absorbs (see the tests):
 * - The engine has no task tokens and no `$$.Task.Token`: the context gets a placeholder so the
 *   Parameters resolve, and DispatchChild makes its own token and awaits childFinished().
 * - The engine resolves `TimeoutSecondsPath` against the task's input *after* Parameters (AWS uses
 *   the state input), where `$.timeoutSeconds` does not exist: an uncatchable States.Runtime. So
 *   the local copy of DispatchChild drops the path and the override enforces each child's timeout,
 *   failing with the error name AWS uses, `States.Timeout`. (A Task without TimeoutSeconds gets
 *   an engine default of 60 s, hence the explicit backstop below and 900 s on the Lambda tasks.)
 * - The engine's abort() does not stop a Map, nor does a failed iteration: queued iterations still
 *   start afterwards. stop() is therefore cooperative: pending children are released, later
 *   dispatches and both Lambda tasks become no-ops, and the execution runs out on its own (so
 *   idle() means really idle); a RecordChildFailure that fails for good halts dispatch the same way.
 * - Executions live in this process only: a process that dies takes them along (AWS keeps them).
 *   `branch-spawner resume` starts them again under the same names, and a child that was
 *   dispatched by the dead process reports with the token it got then. Tokens therefore name
 *   their execution and branch, and such a token reaches the same branch's pending iteration
 *   in the execution of that name now running.
 */
import { randomUUID } from 'node:crypto';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { BranchSpawnerError } from '../../core/errors';
import { fanOutUsage } from '../../core/fan-out-plan';
import type {
  ChildFailureInput,
  ChildReport,
  CostSink,
  FanOutOrchestrator,
  FanOutRequest,
  FanOutTasks,
  StepQueue,
  SyncPointTaskInput,
} from '../../core/ports';
import { MAX_TIMER_MS } from '../../core/script-directives';
import {
  FAN_OUT_STATES,
  LOCAL_TOKEN_PREFIX,
  StatesTimeoutError,
  assertFanOutRequest,
  fanOutInput,
  fanOutRetryPolicies,
  loadFanOutDefinition,
  type AslDefinition,
} from './fan-out-definition';

export { LOCAL_TOKEN_PREFIX, StatesTimeoutError };

export interface LocalFanOutOptions {
  queue: StepQueue;
  tasks: FanOutTasks;
  /** Counts each started execution's transitions and DispatchChild sends (see core/fan-out-plan.ts). */
  meter?: CostSink;
  /** Where a failed execution's error goes (default: console.error). Never an unhandled rejection. */
  onExecutionError?(error: unknown): void;
}

const PLACEHOLDER_TOKEN = 'replaced-by-the-local-DispatchChild';
/** Engine-side TimeoutSeconds of the local DispatchChild, a backstop above any child timeout. */
const ENGINE_DISPATCH_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** Rejects the dispatch of an execution that was stopped (nothing records it: the tasks are skipped). */
class FanOutStoppedError extends BranchSpawnerError {}

interface PendingChild {
  execution: Execution;
  settle(outcome: { report: ChildReport } | { error: Error }): void;
}

interface Execution {
  name: string;
  stopped: boolean;
  reason?: string;
  tokens: Set<string>;
  /** The pending token of each child waited on, by branch id (for tokens of an earlier process). */
  byBranch: Map<string, string>;
}

export class LocalFanOutOrchestrator implements FanOutOrchestrator {
  private readonly queue: StepQueue;
  private readonly tasks: FanOutTasks;
  private readonly meter: CostSink | undefined;
  private readonly onExecutionError: (error: unknown) => void;
  private readonly machine: StateMachine;
  private readonly retries: { recordChildFailure: (error: unknown) => number };
  /** Every name ever started: start() is idempotent for running and finished executions alike. */
  private readonly started = new Set<string>();
  private readonly running = new Map<string, { execution: Execution; done: Promise<void> }>();
  private readonly pending = new Map<string, PendingChild>();

  constructor(options: LocalFanOutOptions) {
    this.queue = options.queue;
    this.tasks = options.tasks;
    this.meter = options.meter;
    this.onExecutionError = options.onExecutionError ?? ((error) => console.error('fan-out execution failed:', error));
    const definition = localDefinition();
    // Not validated here: the definition is the shipped ASL file, which the tests validate with the
    // same validator (asl-validator) as it is substituted for AWS and as it is adjusted for this
    // engine (localDefinition). Validating at run time compiled the validator's JSON schemas in
    // every process: half a second of start-up CPU and some 20 MB of resident memory, each run.
    this.machine = new StateMachine(definition as StateMachineDefinition, { validationOptions: { noValidate: true } });
    const recordChildFailure = fanOutRetryPolicies().recordChildFailure;
    this.retries = { recordChildFailure: (error) => recordChildFailure(error)?.maxAttempts ?? 0 };
  }

  async start(request: FanOutRequest): Promise<void> {
    assertFanOutRequest(request);
    if (this.started.has(request.executionName)) return;
    this.started.add(request.executionName);
    this.meter?.add(request, fanOutUsage(request.count, request.maxConcurrency));
    const execution: Execution = { name: request.executionName, stopped: false, tokens: new Set(), byBranch: new Map() };
    const timeoutSeconds = request.timeoutSeconds;
    const failedAttempts = new Map<string, number>();
    // The report becomes the task's output, as SendTaskSuccess's output does in AWS.
    const dispatch = (input: unknown) => this.dispatchChild(execution, input as DispatchInput, timeoutSeconds) as Promise<any>;
    const recordChildFailure = async (input: unknown) => {
      if (execution.stopped) return {};
      const payload = payloadOf<ChildFailureInput>(input);
      try {
        await this.tasks.recordChildFailure(payload);
      } catch (error) {
        // Once no retrier takes it, this fails the Map and the execution. Stop dispatching
        // now: the engine would still start the Map's queued iterations (see the header).
        const attempt = (failedAttempts.get(payload.branchId) ?? 0) + 1;
        failedAttempts.set(payload.branchId, attempt);
        if (attempt > this.retries.recordChildFailure(error)) this.halt(execution, 'RecordChildFailure failed');
        throw error;
      }
      return {};
    };
    const run = this.machine.run(JSON.parse(JSON.stringify(fanOutInput(request))), {
      context: { Task: { Token: PLACEHOLDER_TOKEN } },
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchChild]: dispatch,
          [FAN_OUT_STATES.dispatchBatchedChild]: dispatch,
          [FAN_OUT_STATES.recordChildFailure]: recordChildFailure,
          [FAN_OUT_STATES.recordBatchedChildFailure]: recordChildFailure,
          [FAN_OUT_STATES.aggregate]: async (input) => {
            if (!execution.stopped) await this.tasks.aggregate(payloadOf<SyncPointTaskInput>(input));
            return {};
          },
        },
      },
    });
    const done = run.result.then(
      () => undefined,
      (error: unknown) => {
        try {
          this.onExecutionError(error);
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

  /** A token made by an earlier process for an execution running again here (see the header). */
  private pendingForEarlierToken(taskToken: string, branchId: string): PendingChild | undefined {
    if (!taskToken.startsWith(LOCAL_TOKEN_PREFIX)) return undefined;
    const [name, tokenBranch] = taskToken.slice(LOCAL_TOKEN_PREFIX.length).split('/');
    if (tokenBranch !== branchId) return undefined;
    const token = this.running.get(name)?.execution.byBranch.get(branchId);
    return token ? this.pending.get(token) : undefined;
  }

  async stop(executionName: string, reason: string): Promise<void> {
    const entry = this.running.get(executionName);
    if (entry) this.halt(entry.execution, reason);
  }

  /** Resolves when no execution is running (including ones started while waiting). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()].map((e) => e.done));
  }

  activeExecutions(): number {
    return this.running.size;
  }

  private async dispatchChild(
    execution: Execution,
    input: DispatchInput,
    timeoutSeconds: number | undefined,
  ): Promise<ChildReport> {
    if (execution.stopped) throw new FanOutStoppedError(`fan-out ${execution.name} stopped`);
    const { team, runId, branchId, step } = input.MessageBody;
    const token = `${LOCAL_TOKEN_PREFIX}${execution.name}/${branchId}/${randomUUID()}`;
    // Registered before the send: a fast worker may report the child before send() returns.
    const outcome = new Promise<ChildReport>((resolve, reject) => {
      // As in AWS, the task's clock starts when it is scheduled, before the message is sent.
      const timer =
        timeoutSeconds === undefined
          ? undefined
          : setTimeout(
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
      this.pending.set(token, { execution, settle });
      execution.tokens.add(token);
      execution.byBranch.set(branchId, token);
    });
    // It may settle (stop, timeout) while the send is still in flight, before anyone awaits it.
    outcome.catch(() => undefined);
    try {
      await this.queue.send([{ team, runId, branchId, step, taskToken: token }]);
    } catch (error) {
      this.pending.get(token)?.settle({ error: error instanceof Error ? error : new Error(String(error)) });
    }
    return outcome;
  }

  /** From now on the execution dispatches nothing and skips its tasks; its pending children are released. */
  private halt(execution: Execution, reason: string): void {
    if (execution.stopped) return;
    execution.stopped = true;
    execution.reason = reason;
    this.release(execution, new FanOutStoppedError(`fan-out ${execution.name} stopped: ${reason}`));
  }

  private release(execution: Execution, error: Error): void {
    for (const token of [...execution.tokens]) this.pending.get(token)?.settle({ error });
  }
}

interface DispatchInput {
  QueueUrl: string;
  MessageBody: { team: string; runId: string; branchId: string; step: number; taskToken: string };
}

function payloadOf<T>(input: unknown): T {
  return (input as { Payload: T }).Payload;
}

/**
 * The shared ASL, adjusted for the engine's TimeoutSecondsPath difference (see the header), in
 * both copies of DispatchChild (the inline Map's and the distributed batches'). The engine
 * runs the DISTRIBUTED Map as an inline one (see docs/performance.md for what that hides).
 */
export function localDefinition(): AslDefinition {
  const definition = loadFanOutDefinition({
    StepQueueUrl: 'local://branch-steps',
    RecordChildFailureFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local-record-child-failure',
    AggregateFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local-aggregate',
  });
  for (const processor of childProcessors(definition)) {
    const dispatch = processor.States?.[processor.StartAt];
    if (!dispatch || dispatch.TimeoutSecondsPath !== '$.timeoutSeconds') {
      throw new BranchSpawnerError('fan-out.asl.json changed: DispatchChild no longer has TimeoutSecondsPath $.timeoutSeconds');
    }
    delete dispatch.TimeoutSecondsPath;
    // Without a TimeoutSeconds the engine would apply its own 60 s default.
    dispatch.TimeoutSeconds = ENGINE_DISPATCH_TIMEOUT_SECONDS;
  }
  return definition;
}

/** The ItemProcessors that dispatch children: the inline Map's and the distributed batches'. */
export function childProcessors(definition: AslDefinition): AslDefinition[] {
  const states = definition.States ?? {};
  return [
    states[FAN_OUT_STATES.fanOut]?.ItemProcessor,
    states[FAN_OUT_STATES.fanOutDistributed]?.ItemProcessor?.States?.[FAN_OUT_STATES.fanOutBatch]?.ItemProcessor,
  ].filter((p): p is AslDefinition => p !== undefined);
}

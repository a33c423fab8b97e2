/**
 * FanOutOrchestrator on the embedded engine (aws-local-stepfunctions): runs the same
 * fan-out.asl.json as AWS, with its three Task states replaced by local functions.
 *
 * Engine differences this adapter absorbs (see the tests):
 * - The engine has no task tokens and no `$$.Task.Token`: the context gets a placeholder so the
 *   Parameters resolve, and DispatchChild makes its own token and awaits childFinished().
 * - Nor `$$.State.RetryCount`: the failed-iteration tasks get the count of their own failed
 *   attempts in its place (task-retry-count.ts).
 * - The engine resolves `TimeoutSecondsPath` against the task's input *after* Parameters (AWS uses
 *   the state input), where `$.timeoutSeconds` does not exist: an uncatchable States.Runtime. So
 *   the local copy of DispatchChild drops the path and the override enforces each child's timeout,
 *   failing with the error name AWS uses, `States.Timeout`. (A Task without TimeoutSeconds gets
 *   an engine default of 60 s, hence the explicit backstop below and 900 s on the Lambda tasks.)
 * - The engine's abort() does not stop a Map, nor does a failed iteration: queued iterations still
 *   start afterwards. stop() is therefore cooperative: pending children are released, later
 *   dispatches and both Lambda tasks become no-ops, and the execution runs out on its own (so
 *   idle() means really idle); a RecordChildFailure that fails for good stops dispatch the same way
 *   (failMap), and the Map's Catch then records the parent's failure.
 * - Executions live in this process only: a process that dies takes them along (AWS keeps them).
 *   `branch-spawner resume` starts them again under the same names, and a child that was
 *   dispatched by the dead process reports with the token it got then. Tokens therefore name
 *   their execution and branch, and such a token reaches the same branch's pending iteration
 *   in the execution of that name now running.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { BranchSpawnerError } from '../../core/errors';
import type {
  BatchDispatchInput,
  BatchFailureInput,
  ChildFailureInput,
  CostSink,
  FanOutFailureInput,
  FanOutRequest,
  FanOutTasks,
  StepQueue,
  SyncPointTaskInput,
} from '../../core/ports';
import { MAX_TIMER_MS } from '../../core/script-directives';
import {
  FAN_OUT_STATES,
  LOCAL_SUBSTITUTIONS,
  fanOutInput,
  fanOutRetryPolicies,
  loadFanOutDefinition,
  type AslDefinition,
} from './fan-out-definition';
import { LocalExecutions, type LocalExecution } from './local-executions';
import { ENGINE_CONTEXT_STATE, TaskRetryCounts } from './task-retry-count';

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

export class LocalFanOutOrchestrator extends LocalExecutions {
  private readonly tasks: FanOutTasks;
  private readonly machine: StateMachine;
  private readonly retries: { recordChildFailure: (error: unknown) => number; recordBatchFailure: (error: unknown) => number };

  constructor(options: LocalFanOutOptions) {
    super(options.queue, options.onExecutionError, options.meter);
    this.tasks = options.tasks;
    const definition = localDefinition();
    // Not validated here: the definition is the shipped ASL file, which the tests validate with the
    // same validator (asl-validator) as it is substituted for AWS and as it is adjusted for this
    // engine (localDefinition). Validating at run time compiled the validator's JSON schemas in
    // every process: half a second of start-up CPU and some 20 MB of resident memory, each run.
    this.machine = new StateMachine(definition as StateMachineDefinition, { validationOptions: { noValidate: true } });
    const { recordChildFailure, recordBatchFailure } = fanOutRetryPolicies();
    this.retries = {
      recordChildFailure: (error) => recordChildFailure(error)?.maxAttempts ?? 0,
      recordBatchFailure: (error) => recordBatchFailure(error)?.maxAttempts ?? 0,
    };
  }

  protected execute(request: FanOutRequest, execution: LocalExecution): Promise<unknown> {
    const timeoutSeconds = request.timeoutSeconds;
    const retryCounts = new TaskRetryCounts();
    // The report becomes the task's output, as SendTaskSuccess's output does in AWS.
    const dispatch = (input: unknown) => {
      const { team, runId, branchId, step } = (input as DispatchInput).MessageBody;
      return this.dispatchChild(execution, { team, runId, branchId, step }, timeoutSeconds) as Promise<any>;
    };
    // A failed iteration's task (RecordChildFailure, RecordBatchFailure), given its retry count.
    // Past its retries it fails the Map: dispatching stops now (the engine would still start the
    // Map's queued iterations: see the header); the Map's Catch records the parent's failure.
    const failureTask =
      <T>(state: string, call: (payload: T) => Promise<void>, maxAttempts: (error: unknown) => number) =>
      (input: unknown) =>
        retryCounts.attempt(state, input, async (filled, retryCount) => {
          if (execution.stopped || execution.mapFailed) return {};
          try {
            await call(payloadOf<T>(filled));
          } catch (error) {
            if (retryCount + 1 > maxAttempts(error)) this.failMap(execution, `${state} failed`);
            throw error;
          }
          return {};
        });
    const recordChildFailure = failureTask<ChildFailureInput>(FAN_OUT_STATES.recordChildFailure, (p) => this.tasks.recordChildFailure(p), this.retries.recordChildFailure);
    // DispatchBatch: the local task is called with a token of ours, and the iteration waits for it.
    const dispatchBatch = (input: unknown) => {
      const { taskToken: _placeholder, ...batch } = payloadOf<BatchDispatchInput>(input);
      return this.dispatchBatch(execution, batch, fanOutInput(request).batchTimeoutSeconds, (i) => this.tasks.dispatchBatch(i)) as Promise<any>;
    };
    const recordBatchFailure = failureTask<BatchFailureInput>(FAN_OUT_STATES.recordBatchFailure, (p) => this.tasks.recordBatchFailure(p), this.retries.recordBatchFailure);
    const run = this.machine.run(JSON.parse(JSON.stringify(fanOutInput(request))), {
      context: { Task: { Token: PLACEHOLDER_TOKEN }, State: ENGINE_CONTEXT_STATE },
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchChild]: dispatch,
          [FAN_OUT_STATES.recordChildFailure]: recordChildFailure,
          [FAN_OUT_STATES.dispatchBatch]: dispatchBatch,
          [FAN_OUT_STATES.recordBatchFailure]: recordBatchFailure,
          [FAN_OUT_STATES.aggregate]: async (input) => {
            if (!execution.stopped) await this.tasks.aggregate(payloadOf<SyncPointTaskInput>(input));
            return {};
          },
          [FAN_OUT_STATES.recordFanOutFailure]: async (input) => {
            if (!execution.stopped) await this.tasks.recordFanOutFailure(payloadOf<FanOutFailureInput>(input));
            return {};
          },
        },
      },
    });
    return run.result;
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
 * the Map iterations that dispatch children (DispatchChild's, and DispatchBatch's).
 */
export function localDefinition(): AslDefinition {
  const definition = loadFanOutDefinition(LOCAL_SUBSTITUTIONS);
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

/** The ItemProcessors that dispatch children: the batched path's and the inline Map's. */
export function childProcessors(definition: AslDefinition): AslDefinition[] {
  const states = definition.States ?? {};
  return [
    states[FAN_OUT_STATES.fanOutBatched]?.ItemProcessor,
    states[FAN_OUT_STATES.fanOut]?.ItemProcessor,
  ].filter((p): p is AslDefinition => p !== undefined);
}

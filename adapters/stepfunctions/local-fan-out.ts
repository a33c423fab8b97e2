/**
 * FanOutOrchestrator on the embedded engine (aws-local-stepfunctions): runs the same
 * fan-out.asl.json as AWS, with its three Task states replaced by local functions.
 *
 * The engine's differences from AWS are absorbed by engine-definition.ts (shared with the
 * rehearsal's state machines): no task tokens (DispatchChild and DispatchBatch make their own and
 * await childFinished()), no `$$.State.RetryCount` (task-retry-count.ts), TimeoutSecondsPath
 * moved into the Parameters and enforced here (failing with `States.Timeout`), a backstop on tasks
 * without a TimeoutSeconds. The engine's abort() does not stop a Map, nor does a failed
 * iteration: stop() is therefore cooperative: pending children are released, later dispatches
 * and both Lambda tasks become no-ops, and the execution runs out on its own (so idle() means
 * really idle); a RecordChildFailure that fails for good stops dispatch the same way (failMap),
 * and the Map's Catch then records the parent's failure.
 * - Executions live in this process only: a process that dies takes them along (AWS keeps them).
 *   `branch-spawner resume` starts them again under the same names, and a child that was
 *   dispatched by the dead process reports with the token it got then. Tokens therefore name
 *   their execution and branch, and such a token reaches the same branch's pending iteration
 *   in the execution of that name now running.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import type {
  BatchDispatchInput,
  BatchFailureInput,
  ChildFailureInput,
  CostSink,
  FanOutFailureInput,
  FanOutRequest,
  FanOutTasks,
  StepQueue,
  AggregateInput,
} from '../../core/ports';
import {
  FAN_OUT_STATES,
  LOCAL_SUBSTITUTIONS,
  fanOutInput,
  fanOutRetryPolicies,
  loadFanOutDefinition,
  type AslDefinition,
} from './fan-out-definition';
import { LocalExecutions, type LocalExecution } from './local-executions';
import { engineContext, engineDefinition, takeTimeoutSeconds } from './engine-definition';
import { TaskRetryCounts } from './task-retry-count';

export interface LocalFanOutOptions {
  queue: StepQueue;
  tasks: FanOutTasks;
  /** Counts each started execution's transitions and DispatchChild sends (see core/fan-out-plan.ts). */
  meter?: CostSink;
  /** Where a failed execution's error goes (default: console.error). Never an unhandled rejection. */
  onExecutionError?(error: unknown): void;
}

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
    const retryCounts = new TaskRetryCounts();
    // The report becomes the task's output, as SendTaskSuccess's output does in AWS. The child's
    // timeout is its iteration's (TimeoutSecondsPath), as AWS takes it.
    const dispatch = (input: unknown) => {
      const timeoutSeconds = takeTimeoutSeconds(input);
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
      const timeoutSeconds = takeTimeoutSeconds(input);
      const { taskToken: _placeholder, ...batch } = payloadOf<BatchDispatchInput>(input);
      return this.dispatchBatch(execution, batch, timeoutSeconds, (i) => this.tasks.dispatchBatch(i)) as Promise<any>;
    };
    const recordBatchFailure = failureTask<BatchFailureInput>(FAN_OUT_STATES.recordBatchFailure, (p) => this.tasks.recordBatchFailure(p), this.retries.recordBatchFailure);
    const run = this.machine.run(JSON.parse(JSON.stringify(fanOutInput(request))), {
      context: engineContext(),
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchChild]: dispatch,
          [FAN_OUT_STATES.recordChildFailure]: recordChildFailure,
          [FAN_OUT_STATES.dispatchBatch]: dispatchBatch,
          [FAN_OUT_STATES.recordBatchFailure]: recordBatchFailure,
          [FAN_OUT_STATES.aggregate]: (input) =>
            retryCounts.attempt(FAN_OUT_STATES.aggregate, input, async (filled) => {
              if (!execution.stopped) await this.tasks.aggregate(payloadOf<AggregateInput>(filled));
              return {};
            }),
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

/** The shared ASL as the engine runs it (engine-definition.ts). */
export function localDefinition(): AslDefinition {
  return engineDefinition(loadFanOutDefinition(LOCAL_SUBSTITUTIONS));
}

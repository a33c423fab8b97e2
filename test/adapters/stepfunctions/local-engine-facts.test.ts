/**
 * What aws-local-stepfunctions does with the unmodified fan-out ASL: the facts LocalFanOutOrchestrator
 * works around. If an engine upgrade changes one of them, this file says which workaround to revisit.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { loadFanOutDefinition, type AslDefinition } from '../../../adapters/stepfunctions/fan-out-definition';

const definition = (): AslDefinition =>
  loadFanOutDefinition({
    StepQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/steps',
    RecordChildFailureFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:record',
    AggregateFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:aggregate',
  });

const input = (children: number, maxConcurrency: number) => ({
  team: 't',
  runId: 'r',
  parentId: 'root',
  seq: 1,
  timeoutSeconds: 1,
  mode: 'INLINE',
  maxConcurrency,
  children: Array.from({ length: children }, (_, i) => i),
});

type Handler = (input: any) => Promise<any>;

function run(def: AslDefinition, handlers: Record<string, Handler>, context?: Record<string, unknown>) {
  return new StateMachine(def as StateMachineDefinition).run(input(2, 2), {
    ...(context ? { context } : {}),
    overrides: { taskResourceLocalHandlers: handlers },
  });
}

const never: Handler = () => new Promise(() => {});
const ok: Handler = async () => ({});

describe('aws-local-stepfunctions and the fan-out ASL', () => {
  it('has no $$.Task.Token: without a context value the execution fails (States.Runtime)', async () => {
    const execution = run(definition(), { DispatchChild: never, RecordChildFailure: ok, Aggregate: ok });
    await expect(execution.result).rejects.toThrow("Path expression '$$.Task.Token' does not point to a value");
  });

  it('resolves TimeoutSecondsPath against the input after Parameters, so $.timeoutSeconds fails (States.Runtime, not catchable)', async () => {
    const recorded: unknown[] = [];
    const execution = run(
      definition(),
      { DispatchChild: never, RecordChildFailure: async (i) => recorded.push(i), Aggregate: ok },
      { Task: { Token: 'placeholder' } },
    );
    await expect(execution.result).rejects.toThrow("Path expression '$.timeoutSeconds' does not point to a value");
    expect(recorded).toEqual([]); // the Catch never saw it
  });

  it('does apply a fixed TimeoutSeconds to an overridden task: States.Timeout reaches the Catch', async () => {
    const def = definition();
    const dispatch = def.States.FanOut.ItemProcessor.States.DispatchChild;
    delete dispatch.TimeoutSecondsPath;
    dispatch.TimeoutSeconds = 1;
    const recorded: any[] = [];
    const execution = run(
      def,
      { DispatchChild: never, RecordChildFailure: async (i) => recorded.push(i.Payload), Aggregate: ok },
      { Task: { Token: 'placeholder' }, State: { RetryCount: 0 } },
    );
    await execution.result;
    expect(recorded.map((r) => r.error)).toEqual(['States.Timeout', 'States.Timeout']);
  });

  it('has no $$.State.RetryCount: a failed iteration\'s task fails the execution without a context value (States.Runtime), and a retry sees the same value', async () => {
    const def = definition();
    const dispatch = def.States.FanOut.ItemProcessor.States.DispatchChild;
    delete dispatch.TimeoutSecondsPath;
    dispatch.TimeoutSeconds = 1;
    const missing = run(def, { DispatchChild: never, RecordChildFailure: ok, Aggregate: ok }, { Task: { Token: 'placeholder' } });
    await expect(missing.result).rejects.toThrow("Path expression '$$.State.RetryCount' does not point to a value");
    // With a context value, the engine resolves it anew for each retry, to the same value: the count is ours to keep.
    const seen: unknown[] = [];
    let failures = 0;
    const retried = new StateMachine(def as StateMachineDefinition).run(input(1, 1), {
      context: { Task: { Token: 'placeholder' }, State: { RetryCount: 'placeholder' } },
      overrides: {
        taskResourceLocalHandlers: {
          DispatchChild: never,
          RecordChildFailure: async (i: any) => {
            seen.push(i.Payload.retryCount);
            if (failures++ === 0) throw Object.assign(new Error('transient'), { name: 'TransientError' });
            return {};
          },
          Aggregate: ok,
        },
        retryIntervalOverrides: { RecordChildFailure: 0 },
      },
    });
    await retried.result;
    expect(seen).toEqual(['placeholder', 'placeholder']);
  });

  it('keeps starting queued Map iterations after abort()', async () => {
    // Aborted from the Map's first iteration, with MaxConcurrency 1: every child is still dispatched.
    const dispatched: string[] = [];
    const execution = new StateMachine(definition() as StateMachineDefinition).run(input(3, 1), {
      context: { Task: { Token: 'placeholder' } },
      overrides: {
        taskResourceLocalHandlers: {
          DispatchChild: (i: any) => {
            dispatched.push(i.MessageBody.branchId);
            if (dispatched.length === 1) execution.abort();
            return Promise.resolve({});
          },
          RecordChildFailure: ok,
          Aggregate: ok,
        },
      },
    });
    await expect(execution.result).rejects.toThrow('Execution aborted');
    // The engine schedules the rest with microtasks only: one macrotask turn lets them all run.
    await new Promise((resolve) => setImmediate(resolve));
    expect(dispatched).toEqual(['root.0', 'root.1', 'root.2']);
  });
});

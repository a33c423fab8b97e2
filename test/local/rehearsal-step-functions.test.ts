/**
 * The rehearsal's Step Functions (local/rehearsal/step-functions.ts) with the shipped fan-out
 * definition, its tasks served by this test: transitions counted as AWS bills them, and a failed
 * Map or Aggregate going where its Catch says. The failure cases also run the definition as it
 * was before the fixes (no Catch) and show what AWS would have done with it.
 */
import { describe, expect, it } from 'vitest';
import { fanOutInput, loadFanOutDefinition } from '../../adapters/stepfunctions/fan-out-definition';
import type { FanOutRequest } from '../../core/ports';
import { fanOutTransitions, planFanOut, type FanOutDispatch } from '../../core/fan-out-plan';
import { RehearsalStepFunctions } from '../../local/rehearsal/step-functions';

const MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:team-a-fan-out';
const RECORD = 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-record-child-failure';
const AGGREGATE = 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-aggregate';
const SHIPPED = loadFanOutDefinition({ StepQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/steps', RecordChildFailureFunctionArn: RECORD, AggregateFunctionArn: AGGREGATE });

/** The definition before the first-traffic fixes: no Catch, every output kept. */
function beforeTheFixes(definition: Record<string, any>): Record<string, any> {
  const copy = structuredClone(definition);
  // Every Catch that leads to RecordFanOutFailure (the Maps, Aggregate; the batched path's too).
  for (const state of Object.values(copy.States) as Record<string, any>[]) {
    if (state.Catch?.some((c: { Next?: string }) => c.Next === 'RecordFanOutFailure')) delete state.Catch;
  }
  delete copy.States.RecordFanOutFailure;
  JSON.stringify(copy, (_key, value) => {
    if (value && typeof value === 'object' && 'OutputPath' in value) delete value.OutputPath;
    return value;
  });
  return copy;
}

function request(count: number, maxConcurrency: number, dispatch: FanOutDispatch = 'per-child'): FanOutRequest {
  return { team: 'team-a', runId: 'run-1', parentId: 'root', seq: 1, executionName: 'run-1-root-1', maxConcurrency, firstIndex: 0, count, timeoutSeconds: 900, dispatch };
}

/** The stack around the machine: every child reports success at once, except the ones told to fail. */
function rehearse(definition: Record<string, any>, options: { undispatchable?: Set<string>; recordFails?: boolean } = {}) {
  const calls: { fn: string; payload: any }[] = [];
  const errors: unknown[] = [];
  const dispatched = new Set<string>();
  let sends = 0;
  const sfn: RehearsalStepFunctions = new RehearsalStepFunctions([{ arn: MACHINE, name: 'team-a-fan-out', definition, roleLogicalId: 'FanOutRole' }], {
    authorize: () => undefined,
    queueArnOf: () => 'arn:aws:sqs:eu-west-1:123456789012:steps',
    sendMessage: async (_url, body) => {
      const message = JSON.parse(body) as { branchId: string; taskToken: string };
      sends++;
      if (options.undispatchable?.has(message.branchId)) throw Object.assign(new Error('queue refused'), { name: 'SQS.QueueRefused' });
      dispatched.add(message.branchId);
      // The step worker's SendTaskSuccess, a little later.
      setImmediate(() => {
        try {
          sfn.sendTaskSuccess(message.taskToken, JSON.stringify({ branchId: message.branchId, status: 'COMPLETED' }));
        } catch {
          // The execution ended meanwhile (its tokens are gone), as a late worker finds in AWS.
        }
      });
    },
    invokeFunction: async (fn, payload) => {
      calls.push({ fn, payload });
      // DispatchBatch: the batch's children all end at once, and the last releases its token.
      const token = (payload as { taskToken?: string }).taskToken;
      if (token) {
        setImmediate(() => {
          try {
            sfn.sendTaskSuccess(token, JSON.stringify({ branchId: 'root.0', status: 'COMPLETED' }));
          } catch {
            // The execution ended meanwhile.
          }
        });
        return null;
      }
      if (fn === RECORD && 'branchId' in (payload as object) && options.recordFails) throw Object.assign(new Error('record-child-failure failed'), { name: 'Error' });
      return null;
    },
    onExecutionError: (error) => errors.push(error),
  });
  const start = async (req: FanOutRequest) => {
    const { executionArn } = sfn.startExecution({ stateMachineArn: MACHINE, name: req.executionName, input: JSON.stringify(fanOutInput(req)) });
    await sfn.idle();
    return { execution: sfn.describeExecution(executionArn) };
  };
  return { sfn, calls, errors, dispatched, start, sends: () => sends };
}

const tasksCalled = (calls: { fn: string; payload: any }[]) =>
  calls.map((c) => (c.fn === AGGREGATE ? 'Aggregate' : 'branchId' in c.payload ? `RecordChildFailure ${c.payload.branchId}` : 'RecordFanOutFailure'));

describe('state transitions, counted from the engine as AWS bills them', () => {
  it.each([
    [150, 10, 'batched', 4],
    [150, 10, 'per-child', 153],
    [1_000, 10, 'batched', 7],
    [1_000, 40, 'per-child', 1_003],
    // Per child past what one execution's inline Map holds: batched (5 batches of 250).
    [1_200, 5, 'per-child', 8],
  ] as const)('%i children at %i, %s: %i transitions, as the cost meter counts them', async (count, concurrency, dispatch, expected) => {
    const { sfn, calls, errors, start } = rehearse(SHIPPED);
    const { execution } = await start(request(count, concurrency, dispatch));
    expect(execution.status).toBe('SUCCEEDED');
    expect(sfn.transitionsOf(execution.executionArn)).toBe(expected);
    expect(fanOutTransitions(planFanOut(count, concurrency, dispatch), count)).toBe(expected);
    expect(calls.filter((c) => c.fn === AGGREGATE)).toHaveLength(1);
    expect(errors).toEqual([]);
  }, 120_000);
});

describe('a failed inline Map', () => {
  it('goes to RecordFanOutFailure (its Catch) with the error: the parent failure is recorded', async () => {
    const { calls, errors, start } = rehearse(SHIPPED, { undispatchable: new Set(['root.1']), recordFails: true });
    const { execution } = await start(request(3, 1));
    expect(execution.status).toBe('SUCCEEDED');
    const called = tasksCalled(calls);
    expect(called.at(-1)).toBe('RecordFanOutFailure');
    expect(called).not.toContain('Aggregate');
    expect(calls.at(-1)!.payload).toMatchObject({ team: 'team-a', runId: 'run-1', parentId: 'root', seq: 1, error: 'Error' });
    expect(errors).toEqual([]);
  }, 60_000);

  it('before the fix, fails the execution: nothing records the parent failure', async () => {
    const { calls, errors, start } = rehearse(beforeTheFixes(SHIPPED), { undispatchable: new Set(['root.1']), recordFails: true });
    const { execution } = await start(request(3, 1));
    expect(execution.status).toBe('FAILED');
    expect(tasksCalled(calls).filter((t) => !t.startsWith('RecordChildFailure'))).toEqual([]);
    expect(errors).toHaveLength(1);
  }, 60_000);
});

describe('$$.State.RetryCount (the engine has none: the rehearsal counts each task\'s attempts)', () => {
  it('is 0 on a failed iteration\'s first RecordChildFailure and counts up on each retry', async () => {
    const { calls, errors, start } = rehearse(SHIPPED, { undispatchable: new Set(['root.1']), recordFails: true });
    await start(request(3, 1));
    const records = calls.filter((c) => c.fn === RECORD && 'branchId' in c.payload);
    expect(records.map((c) => [c.payload.branchId, c.payload.retryCount])).toEqual([
      ['root.1', 0],
      ['root.1', 1],
      ['root.1', 2],
    ]);
    expect(errors).toEqual([]);
  }, 60_000);

  it('is 0 on a first attempt that succeeds', async () => {
    const { calls, errors, start } = rehearse(SHIPPED, { undispatchable: new Set(['root.0', 'root.2']) });
    await start(request(3, 3));
    const records = calls.filter((c) => c.fn === RECORD && 'branchId' in c.payload);
    expect(records.map((c) => [c.payload.branchId, c.payload.retryCount]).sort()).toEqual([
      ['root.0', 0],
      ['root.2', 0],
    ]);
    expect(errors).toEqual([]);
  }, 60_000);
});

describe('a Distributed Map', () => {
  it('is refused: the stack has none, and the engine would run it inline without child executions', () => {
    const distributed = {
      StartAt: 'Each',
      States: {
        Each: {
          Type: 'Map',
          ItemsPath: '$.items',
          ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'Done', States: { Done: { Type: 'Succeed' } } },
          End: true,
        },
      },
    };
    const services = { authorize: () => undefined, queueArnOf: () => '', sendMessage: async () => undefined, invokeFunction: async () => null, onExecutionError: () => undefined };
    expect(() => new RehearsalStepFunctions([{ arn: MACHINE, name: 'team-a-fan-out', definition: distributed, roleLogicalId: 'Role' }], services)).toThrow(
      /Each is a Distributed Map, which the local engine does not run/,
    );
  });
});

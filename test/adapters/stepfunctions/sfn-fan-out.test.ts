/** SfnFanOutOrchestrator: request shapes and error mapping, on a mocked SFN client. */
import { fanOutInput } from '../../../adapters/stepfunctions/fan-out-definition';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidArn,
  InvalidOutput,
  InvalidToken,
  SFNClient,
  SFNServiceException,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  StopExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BranchSpawnerError, ConflictError, TransientError, ValidationError } from '../../../core/errors';
import type { FanOutRequest } from '../../../core/ports';
import { STOPPED_ERROR, SfnFanOutOrchestrator } from '../../../adapters/stepfunctions/sfn-fan-out';

const sfn = mockClient(SFNClient);
// The mock replaces the client class's send for the whole worker: put it back for the files after this one.
afterAll(() => sfn.restore());
const client = new SFNClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const stateMachineArn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:team-a-fan-out';
const executionArn = 'arn:aws:states:eu-west-1:123456789012:execution:team-a-fan-out:run1-root-s1';
const orchestrator = () => new SfnFanOutOrchestrator({ client, stateMachineArn });
const meta = { $metadata: {} };

const request: FanOutRequest = {
  team: 'team-a',
  runId: 'run1',
  parentId: 'root',
  seq: 1,
  executionName: 'run1-root-s1',
  maxConcurrency: 4,
  firstIndex: 0,
  count: 2,
  timeoutSeconds: 900,
};

const serviceError = (name: string, status: number) =>
  new SFNServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: `${name}!` });

beforeEach(() => sfn.reset());

describe('start', () => {
  it('starts an execution named after the request, with the children as indices in its input', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn, startDate: new Date() });
    await orchestrator().start(request);
    const [call] = sfn.commandCalls(StartExecutionCommand);
    expect(call.args[0].input).toEqual({ stateMachineArn, name: 'run1-root-s1', input: JSON.stringify(fanOutInput(request)) });
    expect(JSON.parse(call.args[0].input.input ?? '')).toEqual({
      team: 'team-a', runId: 'run1', parentId: 'root', seq: 1, timeoutSeconds: 900, mode: 'BATCHED',
      batchRanges: [{ first: 0, count: 2 }], batchConcurrency: 1, window: 2, batchTimeoutSeconds: 1800,
    });
  });

  it('sends only the fields the state machine reads', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn, startDate: new Date() });
    await orchestrator().start({ ...request, extra: 'ignored' } as FanOutRequest);
    expect(JSON.parse(sfn.commandCalls(StartExecutionCommand)[0].args[0].input.input ?? '')).toEqual(fanOutInput(request));
  });

  it('treats ExecutionAlreadyExists with the same input as success (idempotent spawn)', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', ...meta }));
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn,
      stateMachineArn,
      status: 'SUCCEEDED',
      startDate: new Date(),
      input: JSON.stringify(fanOutInput(request)),
    });
    await expect(orchestrator().start(request)).resolves.toBeUndefined();
    expect(sfn.commandCalls(DescribeExecutionCommand)[0].args[0].input).toEqual({ executionArn });
  });

  it('refuses ExecutionAlreadyExists with a different input as a ConflictError', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', ...meta }));
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn,
      stateMachineArn,
      status: 'RUNNING',
      startDate: new Date(),
      input: JSON.stringify(fanOutInput({ ...request, maxConcurrency: 1 })),
    });
    const error = await orchestrator().start(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).cause).toBeInstanceOf(ExecutionAlreadyExists);
  });

  it('validates the request before calling AWS', async () => {
    await expect(
      orchestrator().start({ ...request, timeoutSeconds: 0 }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(sfn.calls()).toHaveLength(0);
  });

  it.each([
    ['ThrottlingException', 400, TransientError],
    ['ServiceUnavailable', 503, TransientError],
    ['InternalFailure', 500, TransientError],
    ['ExecutionLimitExceeded', 400, BranchSpawnerError],
    ['StateMachineDoesNotExist', 400, BranchSpawnerError],
    ['AccessDeniedException', 400, BranchSpawnerError],
  ])('maps %s (%i) to %s', async (name, status, type) => {
    const original = serviceError(name, status);
    sfn.on(StartExecutionCommand).rejects(original);
    const error = await orchestrator().start(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    if (type === BranchSpawnerError) expect(error).not.toBeInstanceOf(TransientError);
    expect((error as Error).cause).toBe(original);
    expect((error as Error).message).toContain(name);
  });

  it('maps a network failure to TransientError', async () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    sfn.on(StartExecutionCommand).rejects(reset);
    await expect(orchestrator().start(request)).rejects.toBeInstanceOf(TransientError);
  });
});

describe('childFinished', () => {
  it('sends SendTaskSuccess with the report as output', async () => {
    sfn.on(SendTaskSuccessCommand).resolves({});
    await orchestrator().childFinished('token-1', { branchId: 'root.0', status: 'COMPLETED' });
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input).toEqual({
      taskToken: 'token-1',
      output: JSON.stringify({ branchId: 'root.0', status: 'COMPLETED' }),
    });
  });

  it.each([
    ['TaskTimedOut', () => new TaskTimedOut({ message: 'timed out', ...meta })],
    ['TaskDoesNotExist', () => new TaskDoesNotExist({ message: 'gone', ...meta })],
    ['InvalidToken', () => new InvalidToken({ message: 'invalid', ...meta })],
  ])('treats %s (an already-closed token) as done', async (_name, make) => {
    sfn.on(SendTaskSuccessCommand).rejects(make());
    await expect(orchestrator().childFinished('token-1', { branchId: 'root.0', status: 'FAILED' })).resolves.toBeUndefined();
  });

  it('maps InvalidOutput to a BranchSpawnerError and throttling to a TransientError', async () => {
    sfn.on(SendTaskSuccessCommand).rejectsOnce(new InvalidOutput({ message: 'bad', ...meta })).rejectsOnce(serviceError('ThrottlingException', 400));
    const first = await orchestrator().childFinished('t', { branchId: 'b', status: 'COMPLETED' }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(BranchSpawnerError);
    expect(first).not.toBeInstanceOf(TransientError);
    await expect(orchestrator().childFinished('t', { branchId: 'b', status: 'COMPLETED' })).rejects.toBeInstanceOf(TransientError);
  });
});

describe('stop', () => {
  it('stops the execution whose ARN derives from the state machine ARN and the name', async () => {
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    await orchestrator().stop('run1-root-s1', 'quorum reached');
    expect(sfn.commandCalls(StopExecutionCommand)[0].args[0].input).toEqual({
      executionArn,
      error: STOPPED_ERROR,
      cause: 'quorum reached',
    });
  });

  it('derives execution ARNs in other partitions too', () => {
    const cn = new SfnFanOutOrchestrator({ client, stateMachineArn: 'arn:aws-cn:states:cn-north-1:123456789012:stateMachine:sm' });
    expect(cn.executionArn('x')).toBe('arn:aws-cn:states:cn-north-1:123456789012:execution:sm:x');
    expect(() => new SfnFanOutOrchestrator({ client, stateMachineArn: 'nonsense' }).executionArn('x')).toThrow(BranchSpawnerError);
  });

  it('treats ExecutionDoesNotExist as already stopped', async () => {
    sfn.on(StopExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no such execution', ...meta }));
    await expect(orchestrator().stop('run1-root-s1', 'cancel')).resolves.toBeUndefined();
  });

  it('maps other errors', async () => {
    sfn.on(StopExecutionCommand).rejectsOnce(new InvalidArn({ message: 'bad arn', ...meta })).rejectsOnce(serviceError('InternalFailure', 500));
    const first = await orchestrator().stop('x', 'r').catch((e: unknown) => e);
    expect(first).toBeInstanceOf(BranchSpawnerError);
    expect(first).not.toBeInstanceOf(TransientError);
    await expect(orchestrator().stop('x', 'r')).rejects.toBeInstanceOf(TransientError);
  });

  it('keeps the cause within the API limit', async () => {
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    await orchestrator().stop('x', 'y'.repeat(40_000));
    expect(sfn.commandCalls(StopExecutionCommand)[0].args[0].input.cause).toHaveLength(32_768);
  });
});

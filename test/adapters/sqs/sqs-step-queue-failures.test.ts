/**
 * Partial batch failures and SDK error mapping. fauxqs only ever fails an entry for the sender's
 * fault, so the service-side partial failures that must be retried are scripted with a client mock.
 */
import {
  DeleteMessageBatchCommand,
  SQSClient,
  SendMessageBatchCommand,
  SQSServiceException,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BranchSpawnerError, TransientError } from '../../../core/errors';
import { toCoreError } from '../../../adapters/aws-errors';
import { SqsStepQueue } from '../../../adapters/sqs/sqs-step-queue';
import { SqsQueueConsumer } from '../../../local/sqs/queue-consumer';

const sqs = mockClient(SQSClient);
// The mock replaces the client class's send for the whole worker: put it back for the files after this one.
afterAll(() => sqs.restore());
const client = new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const queueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/steps';
const msg = (i: number) => ({ team: 't', runId: 'r', branchId: `b${i}`, step: 0 });

beforeEach(() => sqs.reset());

describe('SqsStepQueue partial batch failures', () => {
  it('retries only the entries the service failed, then succeeds', async () => {
    sqs
      .on(SendMessageBatchCommand)
      .resolvesOnce({ Successful: [], Failed: [{ Id: 'm1', Code: 'InternalError', SenderFault: false }] })
      .resolves({ Successful: [], Failed: [] });
    await new SqsStepQueue({ client, queueUrl }).send([msg(0), msg(1), msg(2)]);
    const calls = sqs.commandCalls(SendMessageBatchCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0].args[0].input.Entries?.map((e) => e.Id)).toEqual(['m0', 'm1', 'm2']);
    expect(calls[1].args[0].input.Entries?.map((e) => JSON.parse(e.MessageBody ?? '').branchId)).toEqual(['b1']);
  });

  it('gives up after maxAttempts with a TransientError naming the failed entries', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [{ Id: 'm0', Code: 'InternalError', SenderFault: false }] });
    const error = await new SqsStepQueue({ client, queueUrl, maxAttempts: 3 }).send([msg(0)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain('InternalError');
    expect((error as Error).cause).toEqual([{ Id: 'm0', Code: 'InternalError', SenderFault: false }]);
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(3);
  });

  it('does not retry a sender fault', async () => {
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [],
      Failed: [{ Id: 'm0', Code: 'InvalidMessageContents', SenderFault: true }],
    });
    const error = await new SqsStepQueue({ client, queueUrl }).send([msg(0)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BranchSpawnerError);
    expect(error).not.toBeInstanceOf(TransientError);
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(1);
  });

  it('splits 23 messages into batches of 10, 10 and 3', async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await new SqsStepQueue({ client, queueUrl }).send(Array.from({ length: 23 }, (_, i) => msg(i)));
    expect(sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input.Entries?.length)).toEqual([10, 10, 3]);
  });

  it('sends nothing for an empty list', async () => {
    await new SqsStepQueue({ client, queueUrl }).send([]);
    expect(sqs.calls()).toHaveLength(0);
  });
});

describe('SqsQueueConsumer.delete partial failures', () => {
  it('retries service-side failures and reports sender faults', async () => {
    sqs
      .on(DeleteMessageBatchCommand)
      .resolvesOnce({ Successful: [], Failed: [{ Id: 'd0', Code: 'InternalError', SenderFault: false }] })
      .resolves({ Successful: [], Failed: [{ Id: 'd0', Code: 'ReceiptHandleIsInvalid', SenderFault: true }] });
    const consumer = new SqsQueueConsumer({ client, queueUrl, queueArn: 'arn:aws:sqs:us-east-1:123456789012:steps' });
    const error = await consumer.delete(['h0', 'h1']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BranchSpawnerError);
    expect(error).not.toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain('ReceiptHandleIsInvalid');
    const calls = sqs.commandCalls(DeleteMessageBatchCommand);
    expect(calls[1].args[0].input.Entries).toEqual([{ Id: 'd0', ReceiptHandle: 'h0' }]);
  });
});

describe('toCoreError', () => {
  const sdkError = (name: string, status: number) =>
    new SQSServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });

  it.each([
    ['RequestThrottled', 400],
    ['ThrottlingException', 400],
    ['InternalError', 500],
    ['ServiceUnavailable', 503],
  ])('%s (%i) is transient', (name, status) => {
    const mapped = toCoreError(sdkError(name, status), 'ctx');
    expect(mapped).toBeInstanceOf(TransientError);
    expect((mapped.cause as Error).name).toBe(name);
  });

  it.each([
    ['QueueDoesNotExist', 400],
    ['AccessDenied', 403],
    ['InvalidParameterValue', 400],
  ])('%s (%i) is not transient', (name, status) => {
    const mapped = toCoreError(sdkError(name, status), 'ctx');
    expect(mapped).toBeInstanceOf(BranchSpawnerError);
    expect(mapped).not.toBeInstanceOf(TransientError);
    expect(mapped.message).toContain(name);
  });

  it('leaves core errors alone', () => {
    const original = new BranchSpawnerError('x');
    expect(toCoreError(original, 'ctx')).toBe(original);
  });
});

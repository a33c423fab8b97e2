/** SqsStepQueue and SqsQueueConsumer against fauxqs (a real SQS engine, in-process). */
import { createHash, randomUUID } from 'node:crypto';
import { GetQueueAttributesCommand, SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BranchSpawnerError, PayloadTooLargeError, TransientError, ValidationError } from '../../../core/errors';
import type { StepMessage } from '../../../core/ports';
import { SqsStepQueue } from '../../../adapters/sqs/sqs-step-queue';
import { createQueues, type CreatedQueues } from '../../../local/sqs/create-queues';
import { SqsQueueConsumer } from '../../../local/sqs/queue-consumer';
import { startFauxqs, type FauxqsEngine } from '../../../local/engines/fauxqs-engine';

let engine: FauxqsEngine;

beforeAll(async () => {
  engine = await startFauxqs();
});

afterAll(async () => {
  await engine.close();
});

async function freshQueues(options: { maxReceiveCount?: number; visibilityTimeoutSeconds?: number } = {}): Promise<CreatedQueues> {
  return createQueues(engine.client, {
    name: `steps-${randomUUID().slice(0, 8)}`,
    maxReceiveCount: options.maxReceiveCount ?? 5,
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 30,
  });
}

function setup(queues: CreatedQueues) {
  return {
    queue: new SqsStepQueue({ client: engine.client, queueUrl: queues.queueUrl }),
    consumer: new SqsQueueConsumer({ client: engine.client, queueUrl: queues.queueUrl }),
  };
}

async function depth(queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const result = await engine.client.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(result.Attributes?.ApproximateNumberOfMessages),
    inFlight: Number(result.Attributes?.ApproximateNumberOfMessagesNotVisible),
  };
}

const step = (i: number, extra: Partial<StepMessage> = {}): StepMessage => ({
  team: 'blue',
  runId: 'run-1',
  branchId: `root.${i}`,
  step: i % 3,
  ...extra,
});

describe('createQueues', () => {
  it('creates the step queue and a DLQ wired by a RedrivePolicy', async () => {
    const queues = await freshQueues({ maxReceiveCount: 4, visibilityTimeoutSeconds: 45 });
    expect(queues.queueArn).toMatch(/^arn:aws:sqs:us-east-1:\d{12}:steps-/);
    expect(queues.dlqArn).toBe(`${queues.queueArn}-dlq`);
    const { Attributes } = await engine.client.send(
      new GetQueueAttributesCommand({ QueueUrl: queues.queueUrl, AttributeNames: ['All'] }),
    );
    expect(Attributes?.VisibilityTimeout).toBe('45');
    expect(Attributes?.MaximumMessageSize).toBe(String(256 * 1024));
    expect(JSON.parse(Attributes?.RedrivePolicy ?? '{}')).toEqual({ deadLetterTargetArn: queues.dlqArn, maxReceiveCount: 4 });
  });
});

describe('SqsStepQueue + SqsQueueConsumer on fauxqs', () => {
  it('sends 25 messages in batches; all arrive with their attributes, shaped like Lambda SQSRecords', async () => {
    const queues = await freshQueues();
    const { queue, consumer } = setup(queues);
    const sent = Array.from({ length: 25 }, (_, i) => step(i, i === 0 ? { taskToken: 'tok-0' } : {}));
    await queue.send(sent);

    const records = [];
    for (let polls = 0; records.length < 25 && polls < 20; polls++) {
      records.push(...(await consumer.receive({ max: 10, waitSeconds: 1 })));
    }
    expect(records).toHaveLength(25);
    const bodies = records.map((r) => JSON.parse(r.body) as StepMessage);
    expect(bodies.sort((a, b) => a.branchId.localeCompare(b.branchId))).toEqual(
      [...sent].sort((a, b) => a.branchId.localeCompare(b.branchId)),
    );
    for (const record of records) {
      const body = JSON.parse(record.body) as StepMessage;
      expect(record).toMatchObject({
        eventSource: 'aws:sqs',
        eventSourceARN: queues.queueArn,
        awsRegion: 'us-east-1',
        md5OfBody: createHash('md5').update(record.body).digest('hex'),
        messageAttributes: {
          team: { stringValue: 'blue', stringListValues: [], binaryListValues: [], dataType: 'String' },
          runId: { stringValue: 'run-1', stringListValues: [], binaryListValues: [], dataType: 'String' },
          branchId: { stringValue: body.branchId, stringListValues: [], binaryListValues: [], dataType: 'String' },
        },
      });
      expect(record.messageId).toEqual(expect.any(String));
      expect(record.receiptHandle).toEqual(expect.any(String));
      expect(record.md5OfMessageAttributes).toMatch(/^[0-9a-f]{32}$/);
      expect(record.attributes.ApproximateReceiveCount).toBe('1');
      expect(Number(record.attributes.SentTimestamp)).toBeGreaterThan(0);
      expect(Number(record.attributes.ApproximateFirstReceiveTimestamp)).toBeGreaterThan(0);
      expect(record.attributes.SenderId).not.toBe('');
    }

    // Deleting 25 handles takes three DeleteMessageBatch calls; nothing is left behind.
    await consumer.delete(records.map((r) => r.receiptHandle));
    expect(await depth(queues.queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  it('long-polls: a receive waiting on an empty queue gets a message sent meanwhile', async () => {
    const queues = await freshQueues();
    const { queue, consumer } = setup(queues);
    expect(await consumer.receive({ max: 1, waitSeconds: 0 })).toEqual([]);
    const waiting = consumer.receive({ max: 10, waitSeconds: 10 });
    await queue.send([step(7)]);
    const records = await waiting;
    expect(records.map((r) => JSON.parse(r.body))).toEqual([step(7)]);
  });

  it('redelivers a message whose visibility timeout expired without a delete', async () => {
    const queues = await freshQueues();
    const { queue, consumer } = setup(queues);
    await queue.send([step(1)]);
    const [first] = await consumer.receive({ max: 1, waitSeconds: 5, visibilityTimeout: 1 });
    expect(first.attributes.ApproximateReceiveCount).toBe('1');
    // The engine's own long poll waits for the message to become visible again.
    const [again] = await consumer.receive({ max: 1, waitSeconds: 10 });
    expect(again.messageId).toBe(first.messageId);
    expect(again.receiptHandle).not.toBe(first.receiptHandle);
    expect(again.attributes.ApproximateReceiveCount).toBe('2');
    await consumer.delete([again.receiptHandle]);
    expect(await depth(queues.queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  it('changeVisibility(0) makes a received message visible at once', async () => {
    const queues = await freshQueues();
    const { queue, consumer } = setup(queues);
    await queue.send([step(2)]);
    const [first] = await consumer.receive({ max: 1, waitSeconds: 5 });
    expect(await depth(queues.queueUrl)).toEqual({ visible: 0, inFlight: 1 });
    await consumer.changeVisibility(first.receiptHandle, 0);
    const [again] = await consumer.receive({ max: 1, waitSeconds: 5 });
    expect(again.messageId).toBe(first.messageId);
    await expect(consumer.changeVisibility(again.receiptHandle, 50_000)).rejects.toBeInstanceOf(ValidationError);
  });

  it('moves a message to the DLQ after maxReceiveCount receives without a delete', async () => {
    const queues = await freshQueues({ maxReceiveCount: 2, visibilityTimeoutSeconds: 1 });
    const { queue, consumer } = setup(queues);
    const dlq = new SqsQueueConsumer({ client: engine.client, queueUrl: queues.dlqUrl, queueArn: queues.dlqArn });
    await queue.send([step(3)]);
    const [first] = await consumer.receive({ max: 1, waitSeconds: 5 });
    const [second] = await consumer.receive({ max: 1, waitSeconds: 10 });
    expect(second.messageId).toBe(first.messageId);
    expect(second.attributes.ApproximateReceiveCount).toBe('2');
    // The third receive finds the count exhausted: the message goes to the DLQ instead of to us.
    expect(await consumer.receive({ max: 1, waitSeconds: 10 })).toEqual([]);
    const [dead] = await dlq.receive({ max: 1, waitSeconds: 5 });
    expect(dead.messageId).toBe(first.messageId);
    expect(JSON.parse(dead.body)).toEqual(step(3));
    expect(dead.eventSourceARN).toBe(queues.dlqArn);
    expect(dead.messageAttributes.branchId.stringValue).toBe('root.3');
    expect(await depth(queues.queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  it('refuses an oversized message before sending anything', async () => {
    const queues = await freshQueues();
    const { queue } = setup(queues);
    const huge = step(1, { branchId: 'x'.repeat(256 * 1024) });
    const error = await queue.send([step(0), huge]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as PayloadTooLargeError).max).toBe(256 * 1024);
    expect((error as PayloadTooLargeError).size).toBeGreaterThan(256 * 1024);
    expect(await depth(queues.queueUrl)).toEqual({ visible: 0, inFlight: 0 });
  });

  it('the queue made by createQueues refuses what the adapter would refuse', async () => {
    const queues = await freshQueues();
    const error = await engine.client
      .send(new SendMessageCommand({ QueueUrl: queues.queueUrl, MessageBody: 'x'.repeat(256 * 1024 + 1) }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
  });

  it('maps a missing queue to a non-transient core error keeping the SDK error as cause', async () => {
    const queues = await freshQueues();
    const queue = new SqsStepQueue({ client: engine.client, queueUrl: `${queues.queueUrl}-missing` });
    const error = await queue.send([step(0)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BranchSpawnerError);
    expect(error).not.toBeInstanceOf(TransientError);
    expect(((error as Error).cause as Error).name).toMatch(/QueueDoesNotExist|NonExistentQueue/);
  });

  it('maps a refused connection to a TransientError', async () => {
    const gone = await startFauxqs();
    const queues = await createQueues(gone.client, { name: 'gone', maxReceiveCount: 3, visibilityTimeoutSeconds: 5 });
    await gone.close();
    // Same queue, but now nobody listens on that port.
    const deadClient = new SQSClient({
      endpoint: gone.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    try {
      const consumer = new SqsQueueConsumer({ client: deadClient, queueUrl: queues.queueUrl, queueArn: queues.queueArn });
      const error = await consumer.receive({ max: 1, waitSeconds: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransientError);
      expect((error as Error).cause).toBeInstanceOf(Error);
    } finally {
      deadClient.destroy();
    }
  });

  it('validates receive arguments', async () => {
    const queues = await freshQueues();
    const { consumer } = setup(queues);
    await expect(consumer.receive({ max: 11, waitSeconds: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(consumer.receive({ max: 1, waitSeconds: 21 })).rejects.toBeInstanceOf(ValidationError);
  });
});

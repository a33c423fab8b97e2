/**
 * SQS implementation of the StepQueue port (producer side) plus the consumer used by the local
 * poller, which hands the step worker the same `SQSRecord`s Lambda's event source mapping would.
 */
import { toCoreError as awsError } from '../aws-errors';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type BatchResultErrorEntry,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes, SQSRecord, SQSRecordAttributes } from 'aws-lambda';
import { BranchSpawnerError, PayloadTooLargeError, TransientError, ValidationError } from '../../core/errors';
import type { StepMessage, StepQueue } from '../../core/ports';

/** The queue default (and the size the DLQ/Lambda path is sized for); SQS itself allows up to 1 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
const BATCH_SIZE = 10;
const DEFAULT_SEND_ATTEMPTS = 3;

export interface SqsStepQueueOptions {
  client: SQSClient;
  queueUrl: string;
  /** Largest message (body + attributes) accepted, in bytes. Default 256 KiB. */
  maxMessageBytes?: number;
  /** Attempts for entries a batch reports as failed by the service (not the sender). Default 3. */
  maxAttempts?: number;
}

export class SqsStepQueue implements StepQueue {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly maxMessageBytes: number;
  private readonly maxAttempts: number;

  constructor(options: SqsStepQueueOptions) {
    this.client = options.client;
    this.queueUrl = options.queueUrl;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_SEND_ATTEMPTS);
  }

  async send(messages: StepMessage[]): Promise<void> {
    // Check every size first so an oversized message never leaves half of a send behind.
    const entries = messages.map((message) => {
      const entry = toEntry(message);
      const size = messageSize(entry.MessageBody ?? '', entry.MessageAttributes ?? {});
      if (size > this.maxMessageBytes) {
        throw new PayloadTooLargeError(
          `step message for branch ${message.branchId} is ${size} bytes, over the queue's ${this.maxMessageBytes}`,
          size,
          this.maxMessageBytes,
        );
      }
      return { entry, size };
    });
    for (const batch of chunkBySize(entries, BATCH_SIZE, this.maxMessageBytes)) {
      await this.sendBatch(batch.map((item, i) => ({ ...item.entry, Id: `m${i}` })));
    }
  }

  private async sendBatch(batch: SendMessageBatchRequestEntry[]): Promise<void> {
    let pending = batch;
    let failed: BatchResultErrorEntry[] = [];
    for (let attempt = 1; attempt <= this.maxAttempts && pending.length; attempt++) {
      if (attempt > 1) await backoff(attempt);
      const result = await call('SendMessageBatch', () =>
        this.client.send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending })),
      );
      failed = result.Failed ?? [];
      if (!failed.length) return;
      // A sender fault (bad content, too big) fails the same way every time: no point retrying.
      if (failed.some((f) => f.SenderFault)) break;
      const retry = new Set(failed.map((f) => f.Id));
      pending = pending.filter((e) => retry.has(e.Id));
    }
    const summary = failed.map((f) => `${f.Id}: ${f.Code}${f.Message ? ` (${f.Message})` : ''}`).join('; ');
    const message = `SendMessageBatch left ${failed.length} message(s) unsent: ${summary}`;
    if (failed.every((f) => !f.SenderFault)) throw new TransientError(message, { cause: failed });
    throw new BranchSpawnerError(message, { cause: failed });
  }
}

export interface ReceiveOptions {
  /** 1..10 messages. */
  max: number;
  /** Long-poll wait, 0..20 seconds. */
  waitSeconds: number;
  /** Overrides the queue's visibility timeout for these messages. */
  visibilityTimeout?: number;
}

export interface SqsQueueConsumerOptions {
  client: SQSClient;
  queueUrl: string;
  /** Used as `eventSourceARN`; looked up once with GetQueueAttributes when absent. */
  queueArn?: string;
}

/** Receives like Lambda's SQS event source: records shaped exactly as in an `SQSEvent`. */
export class SqsQueueConsumer {
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private arn: Promise<string> | undefined;

  constructor(options: SqsQueueConsumerOptions) {
    this.client = options.client;
    this.queueUrl = options.queueUrl;
    if (options.queueArn) this.arn = Promise.resolve(options.queueArn);
  }

  async receive(options: ReceiveOptions): Promise<SQSRecord[]> {
    const { max, waitSeconds, visibilityTimeout } = options;
    if (!Number.isInteger(max) || max < 1 || max > 10) throw new ValidationError(`max must be 1..10, got ${max}`, 'max');
    if (!(waitSeconds >= 0 && waitSeconds <= 20)) {
      throw new ValidationError(`waitSeconds must be 0..20, got ${waitSeconds}`, 'waitSeconds');
    }
    const queueArn = await this.queueArn();
    const result = await call('ReceiveMessage', () =>
      this.client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.queueUrl,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: waitSeconds,
          VisibilityTimeout: visibilityTimeout,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
      ),
    );
    return (result.Messages ?? []).map((m) => toRecord(m, queueArn));
  }

  /** Deletes in batches of 10; throws a core error naming the handles that could not be deleted. */
  async delete(receiptHandles: string[]): Promise<void> {
    const failures: BatchResultErrorEntry[] = [];
    for (let start = 0; start < receiptHandles.length; start += BATCH_SIZE) {
      let pending = receiptHandles
        .slice(start, start + BATCH_SIZE)
        .map((ReceiptHandle, i) => ({ Id: `d${i}`, ReceiptHandle }));
      for (let attempt = 1; pending.length; attempt++) {
        if (attempt > 1) await backoff(attempt);
        const result = await call('DeleteMessageBatch', () =>
          this.client.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending })),
        );
        const failed = result.Failed ?? [];
        const retryable = failed.filter((f) => !f.SenderFault);
        if (attempt >= DEFAULT_SEND_ATTEMPTS || retryable.length < failed.length) {
          failures.push(...failed);
          break;
        }
        const retry = new Set(retryable.map((f) => f.Id));
        pending = pending.filter((e) => retry.has(e.Id));
      }
    }
    if (failures.length) {
      const summary = failures.map((f) => `${f.Code}${f.Message ? ` (${f.Message})` : ''}`).join('; ');
      const message = `DeleteMessageBatch could not delete ${failures.length} message(s): ${summary}`;
      if (failures.every((f) => !f.SenderFault)) throw new TransientError(message, { cause: failures });
      throw new BranchSpawnerError(message, { cause: failures });
    }
  }

  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 43_200) {
      throw new ValidationError(`visibility timeout must be 0..43200 seconds, got ${seconds}`, 'seconds');
    }
    await call('ChangeMessageVisibility', () =>
      this.client.send(
        new ChangeMessageVisibilityCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }),
      ),
    );
  }

  private queueArn(): Promise<string> {
    this.arn ??= call('GetQueueAttributes', () =>
      this.client.send(new GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['QueueArn'] })),
    ).then((r) => {
      const arn = r.Attributes?.QueueArn;
      if (!arn) throw new BranchSpawnerError(`queue ${this.queueUrl} reported no QueueArn`);
      return arn;
    });
    // A failed lookup is retried on the next receive rather than cached.
    this.arn.catch(() => (this.arn = undefined));
    return this.arn;
  }
}

export interface CreateQueuesOptions {
  name: string;
  /** Receives without delete before a message moves to the DLQ. */
  maxReceiveCount: number;
  visibilityTimeoutSeconds: number;
  maxMessageBytes?: number;
}

export interface CreatedQueues {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
}

/** Creates (idempotently, as CreateQueue is) the step queue and its DLQ with a RedrivePolicy. */
export async function createQueues(client: SQSClient, options: CreateQueuesOptions): Promise<CreatedQueues> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const dlq = await call('CreateQueue', () =>
    client.send(
      new CreateQueueCommand({
        QueueName: `${options.name}-dlq`,
        Attributes: { MessageRetentionPeriod: String(14 * 24 * 3600), MaximumMessageSize: String(maxMessageBytes) },
      }),
    ),
  );
  const dlqUrl = required(dlq.QueueUrl, 'DLQ url');
  const dlqArn = await queueArnOf(client, dlqUrl);
  const queue = await call('CreateQueue', () =>
    client.send(
      new CreateQueueCommand({
        QueueName: options.name,
        Attributes: {
          VisibilityTimeout: String(options.visibilityTimeoutSeconds),
          MaximumMessageSize: String(maxMessageBytes),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount }),
        },
      }),
    ),
  );
  const queueUrl = required(queue.QueueUrl, 'queue url');
  return { queueUrl, queueArn: await queueArnOf(client, queueUrl), dlqUrl, dlqArn };
}

/** Bytes SQS counts against MaximumMessageSize: body plus each attribute's name, type and value. */
export function messageSize(body: string, attributes: Record<string, MessageAttributeValue>): number {
  let size = Buffer.byteLength(body, 'utf8');
  for (const [name, value] of Object.entries(attributes)) {
    size += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value.DataType ?? '', 'utf8');
    if (value.StringValue !== undefined) size += Buffer.byteLength(value.StringValue, 'utf8');
    if (value.BinaryValue !== undefined) size += value.BinaryValue.byteLength;
  }
  return size;
}

/** Maps an SDK error to a core error: throttling, 5xx and network failures are transient. */
/** Throttling, 5xx and network failures are TransientError; anything else a BranchSpawnerError. */
export function toCoreError(error: unknown, context: string): BranchSpawnerError {
  if (error instanceof BranchSpawnerError) return error;
  return awsError(error, context);
}

function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  return fn().catch((error: unknown) => {
    throw toCoreError(error, `SQS ${operation} failed`);
  });
}

async function queueArnOf(client: SQSClient, queueUrl: string): Promise<string> {
  const result = await call('GetQueueAttributes', () =>
    client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] })),
  );
  return required(result.Attributes?.QueueArn, `QueueArn of ${queueUrl}`);
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new BranchSpawnerError(`SQS returned no ${what}`);
  return value;
}

function toEntry(message: StepMessage): Omit<SendMessageBatchRequestEntry, 'Id'> {
  return {
    MessageBody: JSON.stringify(message),
    MessageAttributes: {
      team: { DataType: 'String', StringValue: message.team },
      runId: { DataType: 'String', StringValue: message.runId },
      branchId: { DataType: 'String', StringValue: message.branchId },
    },
  };
}

/** Groups of at most `count` items whose sizes add up to at most `maxBytes` (the batch payload limit). */
function chunkBySize<T extends { size: number }>(items: T[], count: number, maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length && (current.length === count || bytes + item.size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.size;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

function backoff(attempt: number): Promise<void> {
  // Retry spacing for throttled batch entries, not synchronization.
  return new Promise((resolve) => setTimeout(resolve, 50 * 2 ** (attempt - 2)));
}

function toRecord(message: Message, queueArn: string): SQSRecord {
  const system = message.Attributes ?? {};
  const attributes: SQSRecordAttributes = {
    ApproximateReceiveCount: system.ApproximateReceiveCount ?? '',
    SentTimestamp: system.SentTimestamp ?? '',
    SenderId: system.SenderId ?? '',
    ApproximateFirstReceiveTimestamp: system.ApproximateFirstReceiveTimestamp ?? '',
  };
  for (const key of ['AWSTraceHeader', 'SequenceNumber', 'MessageGroupId', 'MessageDeduplicationId', 'DeadLetterQueueSourceArn'] as const) {
    const value = (system as Record<string, string | undefined>)[key];
    if (value !== undefined) attributes[key] = value;
  }
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') } : {}),
      stringListValues: value.StringListValues ?? [],
      binaryListValues: (value.BinaryListValues ?? []).map((b) => Buffer.from(b).toString('base64')),
      dataType: value.DataType ?? 'String',
    };
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes,
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: queueArn.split(':')[3] ?? '',
  };
}

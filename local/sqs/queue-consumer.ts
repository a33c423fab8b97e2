/**
 * The local poller's side of SQS: receives like Lambda's event source mapping (records shaped
 * exactly as in an `SQSEvent`), deletes what succeeded and extends the visibility of slow steps.
 * In AWS the event source mapping does this; nothing here runs in Lambda.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type BatchResultErrorEntry,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes, SQSRecord, SQSRecordAttributes } from 'aws-lambda';
import { again, withRetries } from '../../adapters/retry';
import { BATCH_SIZE, batchError, DEFAULT_SEND_ATTEMPTS, RETRY_BASE_MS, RETRY_MAX_MS, sqsCall } from '../../adapters/sqs/sqs-step-queue';
import { BranchSpawnerError, ValidationError } from '../../core/errors';

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
    const result = await sqsCall('ReceiveMessage', () =>
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
      await withRetries({ attempts: DEFAULT_SEND_ATTEMPTS, baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS }, async (_attempt, last) => {
        const result = await sqsCall('DeleteMessageBatch', () =>
          this.client.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending })),
        );
        const failed = result.Failed ?? [];
        if (!failed.length) return;
        const retryable = failed.filter((f) => !f.SenderFault);
        if (last || retryable.length < failed.length) {
          failures.push(...failed);
          return;
        }
        const retry = new Set(retryable.map((f) => f.Id));
        pending = pending.filter((e) => retry.has(e.Id));
        return again();
      });
    }
    if (failures.length) throw batchError('DeleteMessageBatch could not delete', '', failures);
  }

  /**
   * Messages not yet deleted, waiting or in flight. Delayed ones are not counted: they are the
   * wake-ups of suspended branches (a wait, a callback's timeout), which may come back long after
   * their run has ended and have nothing to do then.
   */
  async pending(): Promise<number> {
    const { Attributes } = await this.client.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return Object.values(Attributes ?? {}).reduce((n, v) => n + (Number(v) || 0), 0);
  }

  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 43_200) {
      throw new ValidationError(`visibility timeout must be 0..43200 seconds, got ${seconds}`, 'seconds');
    }
    await sqsCall('ChangeMessageVisibility', () =>
      this.client.send(
        new ChangeMessageVisibilityCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }),
      ),
    );
  }

  private queueArn(): Promise<string> {
    this.arn ??= sqsCall('GetQueueAttributes', () =>
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

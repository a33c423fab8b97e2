/**
 * SQS implementation of the StepQueue port: the producer side, the only SQS code that runs in
 * Lambda (there the event source mapping consumes; the local poller's consumer is in local/sqs/).
 */
import {
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  type BatchResultErrorEntry,
  type MessageAttributeValue,
  type SQSClient,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs';
import { BranchSpawnerError, PayloadTooLargeError, TransientError } from '../../core/errors';
import { delaySecondsOf, type SendOptions, type StepMessage, type StepQueue, type StepReceipt } from '../../core/ports';
import { toCoreError } from '../aws-errors';
import { again, withRetries } from '../retry';

/** The queue default (and the size the DLQ/Lambda path is sized for); SQS itself allows up to 1 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
export const BATCH_SIZE = 10;
export const DEFAULT_SEND_ATTEMPTS = 3;
/** Backoff between attempts for entries the service failed (throttling), not synchronization. */
export const RETRY_BASE_MS = 50;
export const RETRY_MAX_MS = 1_000;

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

  async send(messages: StepMessage[], options: SendOptions = {}): Promise<void> {
    const delay = delaySecondsOf(options);
    // Check every size first so an oversized message never leaves half of a send behind.
    const entries = messages.map((message) => {
      const entry = { ...toEntry(message), ...(delay ? { DelaySeconds: delay } : {}) };
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

  async redeliverAfter(receipt: StepReceipt, seconds: number): Promise<void> {
    try {
      await sqsCall('ChangeMessageVisibility', () =>
        this.client.send(
          new ChangeMessageVisibilityCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receipt.receiptHandle, VisibilityTimeout: seconds }),
        ),
      );
    } catch (error) {
      // Visible again already (its timeout ran out): what the caller wanted anyway.
      if (!isNotInFlight(error)) throw error;
    }
  }

  private async sendBatch(batch: SendMessageBatchRequestEntry[]): Promise<void> {
    let pending = batch;
    await withRetries({ attempts: this.maxAttempts, baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS }, async (_attempt, last) => {
      const result = await sqsCall('SendMessageBatch', () =>
        this.client.send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending })),
      );
      const failed = result.Failed ?? [];
      if (!failed.length) return;
      // A sender fault (bad content, too big) fails the same way every time: no point retrying.
      if (last || failed.some((f) => f.SenderFault)) throw batchError('SendMessageBatch left', 'unsent', failed, true);
      const retry = new Set(failed.map((f) => f.Id));
      pending = pending.filter((e) => retry.has(e.Id));
      return again();
    });
  }
}

/** SQS's answer to a visibility change of a message that is not in flight. */
export function isNotInFlight(error: unknown): boolean {
  return String((error as Error)?.message).includes('MessageNotInflight');
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

/** Runs one SQS call; an SDK error becomes a core error (throttling, 5xx, network: transient). */
export function sqsCall<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  return fn().catch((error: unknown) => {
    throw toCoreError(error, `SQS ${operation} failed`);
  });
}

/** The error for batch entries still failed: transient unless the sender is at fault. */
export function batchError(what: string, outcome: string, failed: BatchResultErrorEntry[], withIds = false): BranchSpawnerError {
  const summary = failed.map((f) => `${withIds ? `${f.Id}: ` : ''}${f.Code}${f.Message ? ` (${f.Message})` : ''}`).join('; ');
  const message = `${what} ${failed.length} message(s)${outcome ? ` ${outcome}` : ''}: ${summary}`;
  if (failed.every((f) => !f.SenderFault)) return new TransientError(message, { cause: failed });
  return new BranchSpawnerError(message, { cause: failed });
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

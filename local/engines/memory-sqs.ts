/**
 * An in-memory queue pair (step queue + dead-letter queue) with the SQS semantics the local
 * runtime relies on, for the in-memory engine tier: at-least-once delivery, a visibility timeout
 * per received message (extended by ChangeMessageVisibility, 0 makes it visible at once),
 * `ApproximateReceiveCount`, per-send DelaySeconds (a delayed message is not counted as pending,
 * as SQS counts it apart; a journal's replay makes it visible at once), a redrive to the dead-letter queue after `maxReceiveCount`
 * receives, and long polls that answer as soon as a message arrives. Records are shaped as the
 * Lambda event source hands them to the step worker (the same `SQSRecord` fields the SQS consumer
 * fills), so the worker, the DLQ handler and the runtime's poller run unchanged on it.
 *
 * No HTTP, no signing, no serialization besides the message body's JSON: what SQS costs to the
 * CPU of one process is gone. Nothing outlives the process unless a journal is given (see
 * QueueJournal and local/engines/journaled-state.ts): then every change that must survive a
 * restart (send, receive count, delete, dead-lettering) is told to it before the call returns.
 */
import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { BranchSpawnerError, PayloadTooLargeError, ValidationError } from '../../core/errors';
import { delaySecondsOf, type SendOptions, type StepMessage, type StepQueue, type StepReceipt } from '../../core/ports';
import { isNotInFlight } from '../../adapters/sqs/sqs-step-queue';
import type { ReceiveOptions, StepConsumer } from './step-consumer';

/** The same ceiling as the SQS step queue's default. */
const MAX_MESSAGE_BYTES = 256 * 1024;
const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

/** A message as a journal keeps it: what survives a restart (in flight or not, it comes back visible). */
export interface KeptMessage {
  messageId: string;
  body: string;
  team: string;
  runId: string;
  branchId: string;
  sentAt: number;
  receiveCount: number;
  firstReceivedAt?: number;
}

interface Stored extends KeptMessage {
  /** Set while in flight: the handle of the last receive and when the message is visible again. */
  receiptHandle?: string;
  visibleAt?: number;
}

export interface MemorySqsQueueOptions {
  name: string;
  visibilityTimeoutSeconds: number;
  /** Receives without delete before the message moves to `deadLetter` (none: kept forever). */
  maxReceiveCount?: number;
  deadLetter?: MemorySqsQueue;
  /** Told of every change that must survive a restart, before it takes effect. */
  journal?: QueueJournal;
}

/**
 * What a journal hears from a queue. Visibility is not told: after a restart every message is
 * visible again, as an in-flight message of a dead consumer is once its timeout runs out.
 */
export interface QueueJournal {
  sent(queue: string, messages: KeptMessage[]): void;
  received(queue: string, messageId: string, receiveCount: number, firstReceivedAt: number): void;
  deleted(queue: string, messageId: string): void;
  /** Moved to `deadLetterQueue` by a receive, which it counts (its receive count goes on there). */
  deadLettered(queue: string, messageId: string, deadLetterQueue: string): void;
}

/** One queue: producer (the StepQueue port) and consumer (as Lambda's event source would read it). */
export class MemorySqsQueue implements StepQueue, StepConsumer {
  readonly arn: string;
  private readonly ready: Stored[] = [];
  private readyHead = 0;
  private readonly inFlight = new Map<string, Stored>();
  /** Sent with a delay, not visible yet (`visibleAt`). */
  private readonly delayed = new Set<Stored>();
  private readonly waiters = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(private readonly options: MemorySqsQueueOptions) {
    this.arn = `arn:aws:sqs:${REGION}:${ACCOUNT}:${options.name}`;
  }

  get name(): string {
    return this.options.name;
  }

  /** Puts kept messages back, visible (a journal's replay): nothing is told to the journal. */
  restore(messages: Iterable<KeptMessage>): void {
    for (const message of messages) this.ready.push({ ...message });
  }

  /** Every message not deleted, waiting or in flight (what a journal's snapshot keeps). */
  *messages(): IterableIterator<KeptMessage> {
    for (let i = this.readyHead; i < this.ready.length; i++) yield kept(this.ready[i]);
    for (const message of this.inFlight.values()) yield kept(message);
    for (const message of this.delayed) yield kept(message);
  }

  async pending(): Promise<number> {
    return this.depth + this.inFlight.size;
  }

  /** Its messages by state, and when the first one in flight or delayed comes back (to say what a run is stuck on). */
  describe(now = Date.now()): string {
    const soonest = Math.min(...[...this.inFlight.values(), ...this.delayed].map((m) => m.visibleAt ?? Infinity));
    const next = soonest === Infinity ? '' : `, the next back in ${Math.max(0, Math.round((soonest - now) / 1000))} s`;
    const steps = (messages: Iterable<Stored>) => [...messages].slice(0, 10).map((m) => `${m.branchId}@${stepOf(m.body)} (received ${m.receiveCount}x)`).join(', ');
    const ready = this.ready.slice(this.readyHead);
    return `${this.options.name}: ${ready.length} ready${ready.length ? ` [${steps(ready)}]` : ''}, ${this.inFlight.size} in flight${this.inFlight.size ? ` [${steps(this.inFlight.values())}]` : ''}, ${this.delayed.size} delayed${next}`;
  }

  /** Messages waiting to be received (not in flight). */
  get depth(): number {
    return this.ready.length - this.readyHead;
  }

  async send(messages: StepMessage[], options: SendOptions = {}): Promise<void> {
    const delay = delaySecondsOf(options);
    // Check every size first so an oversized message never leaves half of a send behind.
    const bodies = messages.map((message) => {
      const body = JSON.stringify(message);
      const size = Buffer.byteLength(body, 'utf8') + 60;
      if (size > MAX_MESSAGE_BYTES) {
        throw new PayloadTooLargeError(
          `step message for branch ${message.branchId} is ${size} bytes, over the queue's ${MAX_MESSAGE_BYTES}`,
          size,
          MAX_MESSAGE_BYTES,
        );
      }
      return body;
    });
    const now = Date.now();
    const stored: Stored[] = messages.map((m, i) => ({
      messageId: randomUUID(),
      body: bodies[i],
      team: m.team,
      runId: m.runId,
      branchId: m.branchId,
      sentAt: now,
      receiveCount: 0,
    }));
    this.options.journal?.sent(this.options.name, stored);
    if (!delay) {
      for (const message of stored) this.enqueue(message);
      return;
    }
    for (const message of stored) {
      message.visibleAt = now + delay * 1000;
      this.delayed.add(message);
    }
    this.schedule(now + delay * 1000);
  }

  async receive(options: ReceiveOptions): Promise<SQSRecord[]> {
    const { max, waitSeconds, visibilityTimeout } = options;
    if (!Number.isInteger(max) || max < 1 || max > 10) throw new ValidationError(`max must be 1..10, got ${max}`, 'max');
    if (!(waitSeconds >= 0 && waitSeconds <= 20)) {
      throw new ValidationError(`waitSeconds must be 0..20, got ${waitSeconds}`, 'waitSeconds');
    }
    let records = this.take(max, visibilityTimeout);
    if (records.length || waitSeconds === 0) return records;
    const deadline = Date.now() + waitSeconds * 1000;
    while (!records.length && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timeout);
          this.waiters.delete(wake);
          resolve();
        };
        const timeout = setTimeout(wake, Math.max(1, deadline - Date.now()));
        this.waiters.add(wake);
      });
      records = this.take(max, visibilityTimeout);
    }
    return records;
  }

  async delete(receiptHandles: string[]): Promise<void> {
    for (const handle of receiptHandles) {
      // A stale handle (the message came back and was received again) is ignored, as in SQS.
      const message = this.inFlight.get(handle);
      if (!message) continue;
      this.options.journal?.deleted(this.options.name, message.messageId);
      this.inFlight.delete(handle);
    }
  }

  async changeVisibility(receiptHandle: string, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 43_200) {
      throw new ValidationError(`visibility timeout must be 0..43200 seconds, got ${seconds}`, 'seconds');
    }
    const message = this.inFlight.get(receiptHandle);
    // The same error text as SQS (the runtime recognises it: the message was visible already).
    if (!message) throw new BranchSpawnerError('SQS ChangeMessageVisibility failed: MessageNotInflight');
    if (seconds === 0) {
      this.inFlight.delete(receiptHandle);
      this.makeVisible(message);
      return;
    }
    message.visibleAt = Date.now() + seconds * 1000;
    this.schedule(message.visibleAt);
  }

  async redeliverAfter(receipt: StepReceipt, seconds: number): Promise<void> {
    await this.changeVisibility(receipt.receiptHandle, seconds).catch((error: unknown) => {
      if (!isNotInFlight(error)) throw error;
    });
  }

  /**
   * Gives every waiting message that failed deliveries its deliveries back (`redrive` after a
   * fix: a message on its last allowed delivery would otherwise be dead-lettered by the next
   * receive, for failures the fix removed). Not an SQS call: only the local tiers do it.
   * Answers how many it reset.
   */
  restartReceiveCounts(): number {
    let reset = 0;
    for (let i = this.readyHead; i < this.ready.length; i++) {
      const message = this.ready[i];
      if (message.receiveCount === 0) continue;
      this.options.journal?.received(this.options.name, message.messageId, 0, message.firstReceivedAt ?? message.sentAt);
      message.receiveCount = 0;
      reset++;
    }
    return reset;
  }

  /** Ends pending long polls (they answer "no messages") and stops the timer. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const wake of [...this.waiters]) wake();
  }

  private enqueue(message: Stored): void {
    this.ready.push(message);
    const wake = this.waiters.values().next().value;
    if (wake) wake();
  }

  private take(max: number, visibilityTimeout: number | undefined): SQSRecord[] {
    this.expire(Date.now());
    const records: SQSRecord[] = [];
    const now = Date.now();
    const seconds = visibilityTimeout ?? this.options.visibilityTimeoutSeconds;
    while (records.length < max && this.readyHead < this.ready.length) {
      // Taken off the queue only once the journal (if any) has it: a failed write loses nothing.
      const message = this.ready[this.readyHead];
      const { maxReceiveCount, deadLetter } = this.options;
      if (deadLetter && maxReceiveCount !== undefined && message.receiveCount >= maxReceiveCount) {
        // As SQS does: the receive that would exceed the count moves the message instead, and
        // counts (the message keeps its receive count in the DLQ, as on SQS and fauxqs).
        this.options.journal?.deadLettered(this.options.name, message.messageId, deadLetter.name);
        this.readyHead++;
        deadLetter.enqueue({ ...message, receiveCount: message.receiveCount + 1, firstReceivedAt: message.firstReceivedAt ?? now, receiptHandle: undefined, visibleAt: undefined });
        continue;
      }
      this.options.journal?.received(this.options.name, message.messageId, message.receiveCount + 1, message.firstReceivedAt ?? now);
      this.readyHead++;
      message.receiveCount++;
      message.firstReceivedAt ??= now;
      message.receiptHandle = randomUUID();
      message.visibleAt = now + seconds * 1000;
      this.inFlight.set(message.receiptHandle, message);
      this.schedule(message.visibleAt);
      records.push(this.record(message));
    }
    this.compact();
    return records;
  }

  /** In-flight messages past their visibility deadline, and delayed ones past their delay, become visible. */
  private expire(now: number): void {
    if (this.timerAt > now) return;
    let next = Infinity;
    for (const [handle, message] of this.inFlight) {
      if (message.visibleAt! <= now) {
        this.inFlight.delete(handle);
        this.makeVisible(message);
      } else {
        next = Math.min(next, message.visibleAt!);
      }
    }
    for (const message of this.delayed) {
      if (message.visibleAt! <= now) {
        this.delayed.delete(message);
        this.makeVisible(message);
      } else {
        next = Math.min(next, message.visibleAt!);
      }
    }
    this.timerAt = Infinity;
    if (next < Infinity) this.schedule(next);
  }

  private makeVisible(message: Stored): void {
    message.receiptHandle = undefined;
    message.visibleAt = undefined;
    this.enqueue(message);
  }

  /** One timer, at the earliest visibility deadline: it wakes a long poll to take what came back. */
  private schedule(at: number): void {
    if (this.closed || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timerAt = 0;
      this.expire(Date.now());
      const wake = this.waiters.values().next().value;
      if (wake && this.depth) wake();
    }, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private compact(): void {
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready.splice(0, this.readyHead);
      this.readyHead = 0;
    }
  }

  private record(message: Stored): SQSRecord {
    return {
      messageId: message.messageId,
      receiptHandle: message.receiptHandle!,
      body: message.body,
      attributes: {
        ApproximateReceiveCount: String(message.receiveCount),
        SentTimestamp: String(message.sentAt),
        SenderId: ACCOUNT,
        ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt),
      },
      messageAttributes: {
        team: attribute(message.team),
        runId: attribute(message.runId),
        branchId: attribute(message.branchId),
      },
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.arn,
      awsRegion: REGION,
    };
  }
}

function kept(message: Stored): KeptMessage {
  const { messageId, body, team, runId, branchId, sentAt, receiveCount, firstReceivedAt } = message;
  return { messageId, body, team, runId, branchId, sentAt, receiveCount, ...(firstReceivedAt === undefined ? {} : { firstReceivedAt }) };
}

function attribute(value: string) {
  return { stringValue: value, stringListValues: [], binaryListValues: [], dataType: 'String' };
}

/** The step number in a message body (for descriptions; `?` if unreadable). */
function stepOf(body: string): string {
  try {
    return String((JSON.parse(body) as { step?: unknown }).step ?? '?');
  } catch {
    return '?';
  }
}

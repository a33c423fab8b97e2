/**
 * In-memory StepQueue with at-least-once delivery: the reference for the queue contract.
 * With `duplicate`, every message is delivered twice under the same message id, as SQS does
 * when it redelivers a message.
 */
import { delaySecondsOf, type SendOptions, type StepMessage, type StepQueue, type StepReceipt } from '../../core/ports';

export interface QueuedMessage {
  messageId: string;
  body: StepMessage;
}

export class MemoryQueue implements StepQueue {
  private readonly items: QueuedMessage[] = [];
  private readonly waiters: ((m: QueuedMessage) => void)[] = [];
  private nextId = 0;
  sent = 0;
  /** Messages sent with a delay that has not run out yet. */
  delayed = 0;
  readonly redeliveries: { messageId: string; seconds: number }[] = [];

  constructor(private readonly options: { duplicate?: boolean } = {}) {}

  async send(messages: StepMessage[], options: SendOptions = {}): Promise<void> {
    const delay = delaySecondsOf(options);
    for (const body of messages) {
      const message = { messageId: `m${++this.nextId}`, body: structuredClone(body) };
      this.sent++;
      const deliver = () => {
        this.push(message);
        if (this.options.duplicate) this.push({ ...message, body: structuredClone(body) });
      };
      if (!delay) {
        deliver();
        continue;
      }
      this.delayed++;
      setTimeout(() => {
        this.delayed--;
        deliver();
      }, delay * 1000).unref();
    }
  }

  /** Offers a received message again under its id (it was not acknowledged: a crash, a timeout). */
  async redeliver(message: QueuedMessage): Promise<void> {
    this.push({ ...message, body: structuredClone(message.body) });
  }

  /**
   * The message received under `receipt.receiptHandle` (its message id here: this queue has no
   * receipts) comes back after `seconds`. The delays asked for are kept in `redeliveries`.
   */
  async redeliverAfter(receipt: StepReceipt, seconds: number): Promise<void> {
    this.redeliveries.push({ messageId: receipt.receiptHandle, seconds });
    const message = { messageId: receipt.receiptHandle, body: structuredClone(receipt.message) };
    setTimeout(() => this.push(message), seconds * 1000).unref();
  }

  /** The next message, waiting for one if the queue is empty. */
  receive(): Promise<QueuedMessage> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  get depth(): number {
    return this.items.length;
  }

  private push(message: QueuedMessage): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(message);
    else this.items.push(message);
  }
}

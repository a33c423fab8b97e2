/**
 * Lambda's SQS event source, the one emulation of it: the local runtime's step and DLQ pollers and
 * the rehearsal's event source mappings all deliver through here. Its rules are AWS's:
 * - a batch is one invocation with `{ Records }`; what succeeded is deleted, what failed is left
 *   for its visibility to end (the queue's timeout, or a backoff the function set) and comes back;
 * - with ReportBatchItemFailures the answer's `batchItemFailures` names the failed records; an
 *   answer naming a record that is not in the batch (or naming none by id) fails the whole batch;
 * - an invocation that throws fails the whole batch;
 * - a receive that fails is tried again, later and later, not at once.
 * Each caller keeps its own parts: how a held message stays invisible (the runtime's heartbeat,
 * the rehearsal's queue clock), how many invocations run at once, and who may poll (IAM).
 */
import type { SQSRecord } from 'aws-lambda';

/** An invocation's answer, as a function with ReportBatchItemFailures gives it. */
export interface BatchResponse {
  batchItemFailures?: { itemIdentifier?: string }[];
}

/**
 * The message ids of `records` that failed, by the function's answer: those it names with
 * ReportBatchItemFailures, all when it names one not in the batch, none without the setting.
 */
export function failedMessageIds(records: SQSRecord[], response: unknown, reportFailures = true): Set<string> {
  const failures = (response as BatchResponse | null | undefined)?.batchItemFailures;
  if (!reportFailures || !Array.isArray(failures)) return new Set();
  const failed = new Set<string>();
  for (const f of failures) {
    // An invalid item identifier fails the whole batch, as with Lambda.
    if (!f?.itemIdentifier || !records.some((r) => r.messageId === f.itemIdentifier)) return new Set(records.map((r) => r.messageId));
    failed.add(f.itemIdentifier);
  }
  return failed;
}

export interface Delivery {
  records: SQSRecord[];
  /** Runs the function on the batch; its answer says which records failed (failedMessageIds). */
  invoke(event: { Records: SQSRecord[] }): Promise<unknown>;
  /** Whether the function reports item failures (ReportBatchItemFailures); without it, success is the whole batch's. Default true. */
  reportFailures?: boolean;
  /** Told when the invocation threw (the whole batch failed then). */
  onInvokeError(error: unknown): void;
  /** Keeps the batch invisible while it runs; released when the invocation ends, told the receipts that failed. */
  hold?: { release(failedReceiptHandles: string[]): Promise<void> | void };
  /** Deletes what succeeded (the event source mapping's DeleteMessageBatch). */
  delete(receiptHandles: string[]): Promise<void>;
  /** Told when the delete failed (those messages come back: the step's writes are idempotent). */
  onDeleteError(error: unknown): void;
}

/** One invocation of a received batch, then its successes deleted. Answers the records that failed (left to come back). */
export async function deliver(delivery: Delivery): Promise<SQSRecord[]> {
  const { records } = delivery;
  let failed: Set<string>;
  try {
    failed = failedMessageIds(records, await delivery.invoke({ Records: records }), delivery.reportFailures ?? true);
  } catch (error) {
    delivery.onInvokeError(error);
    failed = new Set(records.map((r) => r.messageId));
  }
  const left = records.filter((r) => failed.has(r.messageId));
  await delivery.hold?.release(left.map((r) => r.receiptHandle));
  const done = records.filter((r) => !failed.has(r.messageId)).map((r) => r.receiptHandle);
  if (done.length) await delivery.delete(done).catch(delivery.onDeleteError);
  return left;
}

export interface Poller {
  /** True once the poller should stop (closing, or a failure nothing can fix). */
  stopped(): boolean;
  /** Waits until another receive may be made (room for more invocations, a turn of the event loop). */
  ready?(): Promise<void>;
  receive(): Promise<SQSRecord[]>;
  /**
   * A receive failed: told, then tried again after a backoff. Answers false to stop polling (a
   * denied poll would repeat forever: AWS disables such a mapping).
   */
  onReceiveError(error: unknown): boolean | void;
  /** Hands on a received batch (never empty); awaited before the next receive. */
  handle(records: SQSRecord[]): Promise<void> | void;
}

/** Receives and hands on batches until stopped (a long poll each time: an empty receive waits). */
export async function poll(poller: Poller): Promise<void> {
  const backoff = new Backoff();
  while (!poller.stopped()) {
    await poller.ready?.();
    if (poller.stopped()) break;
    let records: SQSRecord[];
    try {
      records = await poller.receive();
      backoff.reset();
    } catch (error) {
      if (poller.stopped()) break;
      if (poller.onReceiveError(error) === false) return;
      await backoff.wait();
      continue;
    }
    // Closing: leave them, they come back (to the next process, with a kept data folder).
    if (poller.stopped()) break;
    if (records.length) await poller.handle(records);
  }
}

/** Waits 50 ms, then twice as long each time, up to 2 s, until reset. */
class Backoff {
  private ms = 0;

  reset(): void {
    this.ms = 0;
  }

  wait(): Promise<void> {
    this.ms = Math.min(2000, this.ms ? this.ms * 2 : 50);
    return new Promise((resolve) => setTimeout(resolve, this.ms));
  }
}

/**
 * The rehearsal's clock for SQS timers. Queue times are AWS's (the step queue's visibility
 * timeout is 1,800 s in the template) but run `scale` times as fast, so that every queue timer
 * keeps its ratio to the others: a failed step left to the visibility timeout waits 30 (scaled)
 * minutes, where a backoff set with ChangeMessageVisibility waits its few (scaled) seconds. SQS
 * takes whole seconds: a timer above 0 lasts at least 1 s.
 *
 * The functions run in real time, though, and AWS requires a queue's visibility timeout to be at
 * least the timeout of the function its event source mapping invokes: a message cannot come back
 * while the invocation holding it runs. `hold` keeps that true here: while an invocation runs,
 * its messages stay invisible in real time; a visibility the function set itself (a backoff)
 * stands on the queue clock.
 */

/** A minute of queue time in a second: the step queue's 1,800 s visibility lasts 30 s. */
export const DEFAULT_QUEUE_TIME_SCALE = 1 / 60;

/** Queue attributes and request fields that are durations in seconds. */
const ATTRIBUTES = ['VisibilityTimeout', 'DelaySeconds'] as const;

/** Messages an invocation holds (`QueueClock.hold`), until it ends and its failures are known. */
export interface VisibilityHold {
  /** The invocation ended: failed messages get what AWS would leave of their visibility (see release). */
  release(failedReceiptHandles: string[]): Promise<void>;
}

export class QueueClock {
  /** Receipt handles whose visibility a function changed (ChangeMessageVisibility) while held. */
  private readonly changedByFunction = new Set<string>();
  private readonly held = new Set<string>();

  constructor(readonly scale = DEFAULT_QUEUE_TIME_SCALE) {}

  /**
   * Keeps messages just received with `visibilitySeconds` (queue-clock seconds) invisible while
   * the invocation holding them runs: each half visibility, `change` extends those whose
   * visibility the function has not set itself.
   */
  hold(
    receiptHandles: string[],
    visibilitySeconds: number,
    change: (receiptHandle: string, seconds: number) => Promise<void>,
    onError: (error: unknown) => void,
  ): VisibilityHold {
    for (const h of receiptHandles) this.held.add(h);
    const started = Date.now();
    const extend = (h: string, seconds: number) => change(h, seconds).catch(onError);
    const timer = setInterval(() => {
      for (const h of receiptHandles) if (!this.changedByFunction.has(h)) void extend(h, visibilitySeconds);
    }, Math.max(1, visibilitySeconds) * 500);
    return {
      release: async (failed) => {
        clearInterval(timer);
        // What AWS leaves of the visibility from receipt: the invocation ran in real (AWS) seconds,
        // the visibility is AWS's; the rest goes on the queue clock. (Of the scaled visibility a
        // long invocation would have used it all up: the message came back at once.)
        const left = this.seconds(visibilitySeconds / this.scale - (Date.now() - started) / 1000);
        await Promise.all(failed.filter((h) => !this.changedByFunction.has(h)).map((h) => extend(h, left)));
        for (const h of receiptHandles) {
          this.held.delete(h);
          this.changedByFunction.delete(h);
        }
      },
    };
  }

  /** The rehearsal's seconds for `seconds` of AWS queue time. */
  seconds(seconds: number): number {
    if (!(seconds > 0)) return 0;
    return Math.max(1, Math.round(seconds * this.scale));
  }

  /** A queue's attributes (CreateQueue, SetQueueAttributes) with their durations scaled. */
  attributes(attributes: Record<string, string>): Record<string, string> {
    const scaled = { ...attributes };
    for (const key of ATTRIBUTES) if (scaled[key] !== undefined) scaled[key] = String(this.seconds(Number(scaled[key])));
    return scaled;
  }

  /** An SQS JSON request from a function with its durations scaled (the rest as is). */
  request(operation: string, doc: Record<string, any>): Record<string, any> {
    if (operation === 'ChangeMessageVisibility' && this.held.has(doc.ReceiptHandle)) this.changedByFunction.add(doc.ReceiptHandle);
    const scaled = { ...doc };
    for (const key of ATTRIBUTES) if (typeof scaled[key] === 'number') scaled[key] = this.seconds(scaled[key]);
    if (scaled.Attributes && typeof scaled.Attributes === 'object') scaled.Attributes = this.attributes(scaled.Attributes);
    if (Array.isArray(scaled.Entries) && operation.endsWith('Batch')) {
      scaled.Entries = scaled.Entries.map((entry: Record<string, any>) => this.request(operation.replace(/Batch$/, ''), entry));
    }
    return scaled;
  }
}

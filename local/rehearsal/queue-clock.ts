/**
 * The rehearsal's clock for SQS timers. Queue times are AWS's (the step queue's visibility
 * timeout is 1,800 s in the template) but run `scale` times as fast, so that every queue timer
 * keeps its ratio to the others: a failed step left to the visibility timeout waits 30 (scaled)
 * minutes, where a backoff set with ChangeMessageVisibility waits its few (scaled) seconds. SQS
 * takes whole seconds: a timer above 0 lasts at least 1 s.
 */

/** A minute of queue time in a second: the step queue's 1,800 s visibility lasts 30 s. */
export const DEFAULT_QUEUE_TIME_SCALE = 1 / 60;

/** Queue attributes and request fields that are durations in seconds. */
const ATTRIBUTES = ['VisibilityTimeout', 'DelaySeconds'] as const;

export class QueueClock {
  constructor(readonly scale = DEFAULT_QUEUE_TIME_SCALE) {}

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
    const scaled = { ...doc };
    for (const key of ATTRIBUTES) if (typeof scaled[key] === 'number') scaled[key] = this.seconds(scaled[key]);
    if (scaled.Attributes && typeof scaled.Attributes === 'object') scaled.Attributes = this.attributes(scaled.Attributes);
    if (Array.isArray(scaled.Entries) && operation.endsWith('Batch')) {
      scaled.Entries = scaled.Entries.map((entry: Record<string, any>) => this.request(operation.replace(/Batch$/, ''), entry));
    }
    return scaled;
  }
}

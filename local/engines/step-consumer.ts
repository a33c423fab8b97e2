/**
 * What the local poller needs from a queue: receive records shaped as Lambda's SQS event source
 * hands them, delete them, change their visibility. The SQS consumer (over fauxqs) and the
 * in-memory queue both provide it.
 */
import type { SQSRecord } from 'aws-lambda';
import type { ReceiveOptions } from '../sqs/queue-consumer';

export type { ReceiveOptions };

export interface StepConsumer {
  receive(options: ReceiveOptions): Promise<SQSRecord[]>;
  delete(receiptHandles: string[]): Promise<void>;
  changeVisibility(receiptHandle: string, seconds: number): Promise<void>;
  /** Messages not yet deleted, waiting or in flight (the runtime's quiescence); delayed wake-ups are not counted. */
  pending(): Promise<number>;
  /** Its messages by state, in one line (the in-memory queue says more than a count). */
  describe?(): string;
}

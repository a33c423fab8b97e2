/**
 * StepQueue.redeliverAfter (a failed step's backoff) on every queue the step worker runs on:
 * the in-memory SQS of the memory and journal tiers, and SQS itself (fauxqs) through the SQS
 * adapter. Each queue's visibility timeout is 30 s: a message back within the test's time came
 * back because of the backoff.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsStepQueue } from '../../../adapters/sqs/sqs-step-queue';
import type { StepMessage, StepQueue } from '../../../core/ports';
import { MemorySqsQueue } from '../../../local/engines/memory-sqs';
import { startFauxqs, type FauxqsEngine } from '../../../local/engines/fauxqs-engine';
import type { StepConsumer } from '../../../local/engines/step-consumer';
import { createQueues } from '../../../local/sqs/create-queues';
import { SqsQueueConsumer } from '../../../local/sqs/queue-consumer';

const VISIBILITY = 30;
let fauxqs: FauxqsEngine;

beforeAll(async () => {
  fauxqs = await startFauxqs();
});

afterAll(async () => {
  await fauxqs.close();
});

type Pair = { queue: StepQueue; consumer: StepConsumer; close(): void };

const kinds: [string, () => Promise<Pair>][] = [
  [
    'in-memory SQS (memory and journal tiers)',
    async () => {
      const queue = new MemorySqsQueue({ name: `q-${randomUUID()}`, visibilityTimeoutSeconds: VISIBILITY });
      return { queue, consumer: queue, close: () => queue.close() };
    },
  ],
  [
    'SQS (fauxqs) through the SQS adapter',
    async () => {
      const created = await createQueues(fauxqs.client, { name: `q-${randomUUID().slice(0, 8)}`, maxReceiveCount: 5, visibilityTimeoutSeconds: VISIBILITY });
      return {
        queue: new SqsStepQueue({ client: fauxqs.client, queueUrl: created.queueUrl }),
        consumer: new SqsQueueConsumer({ client: fauxqs.client, queueUrl: created.queueUrl }),
        close: () => undefined,
      };
    },
  ],
];

const message: StepMessage = { team: 't', runId: 'r', branchId: 'root.1', step: 0 };

describe.each(kinds)('redeliverAfter on %s', (_name, make) => {
  it('a received message comes back after the backoff, not after the visibility timeout', async () => {
    const { queue, consumer, close } = await make();
    try {
      await queue.send([message]);
      const [first] = await consumer.receive({ max: 1, waitSeconds: 5 });
      await queue.redeliverAfter({ message, receiptHandle: first.receiptHandle }, 1);
      const [again] = await consumer.receive({ max: 1, waitSeconds: 10 });
      expect(again?.messageId).toBe(first.messageId);
      expect(again.attributes.ApproximateReceiveCount).toBe('2');
      await consumer.delete([again.receiptHandle]);
      // A handle whose message is gone (deleted, or visible again) is left as it is.
      await expect(queue.redeliverAfter({ message, receiptHandle: again.receiptHandle }, 1)).resolves.toBeUndefined();
      expect(await consumer.pending()).toBe(0);
    } finally {
      close();
    }
  });
});

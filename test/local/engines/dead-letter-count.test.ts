/**
 * A message moved to the dead-letter queue keeps its receive count there, as SQS does (fauxqs,
 * the reference, counts the receive that moved it too): the in-memory SQS of the memory and
 * journal tiers restarted it at 0, so the DLQ's consumer read "1 delivery" for a message that
 * had failed every one (the journal tier keeps it across a restart: journal.test.ts).
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

const MAX_RECEIVES = 2;
let fauxqs: FauxqsEngine;

beforeAll(async () => {
  fauxqs = await startFauxqs();
});

afterAll(async () => {
  await fauxqs.close();
});

type Pair = { queue: StepQueue; consumer: StepConsumer; dlq: StepConsumer; close(): void };

const kinds: [string, () => Promise<Pair>][] = [
  [
    'in-memory SQS (memory and journal tiers)',
    async () => {
      const dlq = new MemorySqsQueue({ name: `dlq-${randomUUID()}`, visibilityTimeoutSeconds: 30 });
      const queue = new MemorySqsQueue({ name: `q-${randomUUID()}`, visibilityTimeoutSeconds: 30, maxReceiveCount: MAX_RECEIVES, deadLetter: dlq });
      return { queue, consumer: queue, dlq, close: () => [queue, dlq].forEach((q) => q.close()) };
    },
  ],
  [
    'SQS (fauxqs) through the SQS adapter',
    async () => {
      const created = await createQueues(fauxqs.client, { name: `q-${randomUUID().slice(0, 8)}`, maxReceiveCount: MAX_RECEIVES, visibilityTimeoutSeconds: 30 });
      return {
        queue: new SqsStepQueue({ client: fauxqs.client, queueUrl: created.queueUrl }),
        consumer: new SqsQueueConsumer({ client: fauxqs.client, queueUrl: created.queueUrl }),
        dlq: new SqsQueueConsumer({ client: fauxqs.client, queueUrl: created.dlqUrl }),
        close: () => undefined,
      };
    },
  ],
];

const message: StepMessage = { team: 't', runId: 'r', branchId: 'root.1', step: 0 };

/** Fails every allowed delivery (visible again at once), then reads the message from the DLQ. */
async function deadLettered(queue: StepQueue, consumer: StepConsumer, dlq: StepConsumer) {
  await queue.send([message]);
  for (let i = 0; i < MAX_RECEIVES; i++) {
    const [record] = await consumer.receive({ max: 1, waitSeconds: 5 });
    await consumer.changeVisibility(record.receiptHandle, 0);
  }
  expect(await consumer.receive({ max: 1, waitSeconds: 0 })).toEqual([]);
  const [dead] = await dlq.receive({ max: 1, waitSeconds: 5 });
  return dead;
}

describe.each(kinds)('dead-lettering on %s', (_name, make) => {
  it('the message keeps its receive count in the DLQ (the receive that moved it counts)', async () => {
    const { queue, consumer, dlq, close } = await make();
    try {
      const dead = await deadLettered(queue, consumer, dlq);
      // maxReceiveCount failed receives, the one that moved it, and the DLQ's own.
      expect(dead.attributes.ApproximateReceiveCount).toBe(String(MAX_RECEIVES + 2));
    } finally {
      close();
    }
  });
});

/**
 * The local step pollers over SQS (fauxqs, the engines tier's queue) when a message in progress
 * comes back: its visibility lapsed while its step still ran (a process starved past its
 * heartbeat: fauxqs runs in the same process and expires the message before the late heartbeat
 * can renew it). Lambda never runs one message twice at once (its timeout is below the
 * visibility timeout), and a step told twice tells its lifecycle events twice. The lapse is made
 * here, not waited for: the test makes the message visible again (ChangeMessageVisibility 0)
 * while its step runs, and the queue's visibility timeout (30 s) never runs out.
 */
import { randomUUID } from 'node:crypto';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqsStepQueue } from '../../../adapters/sqs/sqs-step-queue';
import { CostMeter } from '../../../core/cost-meter';
import type { StepMessage } from '../../../core/ports';
import { startFauxqs, type FauxqsEngine } from '../../../local/engines/fauxqs-engine';
import type { StepConsumer } from '../../../local/engines/step-consumer';
import { InvocationMeter } from '../../../local/invocation-meter';
import { createQueues } from '../../../local/sqs/create-queues';
import { SqsQueueConsumer } from '../../../local/sqs/queue-consumer';
import { StepPollers } from '../../../local/sqs/step-pollers';

const VISIBILITY = 30;
const message: StepMessage = { team: 't', runId: 'r', branchId: 'root.1', step: 0 };

let fauxqs: FauxqsEngine;
beforeAll(async () => {
  fauxqs = await startFauxqs();
});
afterAll(async () => {
  await fauxqs.close();
});

/** A deferred: a promise and its resolve. */
function deferred<T = void>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * The start lane's consumer, watched: `receivedAgain` resolves at the first receive after one
 * that brought the message back (ApproximateReceiveCount 2), when the poller has handed that
 * delivery on (a poller hands on a batch before it receives again).
 */
function watched(consumer: StepConsumer): StepConsumer & { receivedAgain: Promise<void> } {
  const again = deferred();
  let seen = false;
  return {
    receivedAgain: again.promise,
    async receive(options) {
      if (seen) again.resolve();
      const records = await consumer.receive(options);
      if (records.some((r) => r.attributes.ApproximateReceiveCount === '2')) seen = true;
      return records;
    },
    delete: (handles) => consumer.delete(handles),
    changeVisibility: (handle, seconds) => consumer.changeVisibility(handle, seconds),
    pending: () => consumer.pending(),
  };
}

interface Harness {
  pollers: StepPollers;
  start: ReturnType<typeof watched>;
  queue: SqsStepQueue;
  errors: unknown[];
}

describe('a step message back while (or after) this process ran its step', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  /** Pollers on two fresh fauxqs queues, calling `worker` for each delivery. */
  async function pollersWith(worker: (record: SQSRecord) => Promise<boolean>): Promise<Harness> {
    const lane = async () => {
      const created = await createQueues(fauxqs.client, { name: `q-${randomUUID().slice(0, 8)}`, maxReceiveCount: 5, visibilityTimeoutSeconds: VISIBILITY });
      return { queue: new SqsStepQueue({ client: fauxqs.client, queueUrl: created.queueUrl }), consumer: new SqsQueueConsumer({ client: fauxqs.client, queueUrl: created.queueUrl }) };
    };
    const [started, continued] = await Promise.all([lane(), lane()]);
    const start = watched(started.consumer);
    const errors: unknown[] = [];
    let stopped = false;
    const pollers = new StepPollers({
      consumers: { start, continue: continued.consumer },
      tier: 'engines',
      // One record per invocation: failed when `worker` says so.
      worker: async (event: SQSEvent) => {
        const [record] = event.Records;
        return { batchItemFailures: (await worker(record)) ? [] : [{ itemIdentifier: record.messageId }] };
      },
      invocations: new InvocationMeter(new CostMeter()),
      stopped: () => stopped,
      report: (error) => errors.push(error),
      visibilityTimeoutSeconds: VISIBILITY,
      retryFailedAfterSeconds: 0,
    });
    pollers.start(1);
    stop = async () => {
      stopped = true;
      await pollers.closed();
    };
    return { pollers, start, queue: started.queue, errors };
  }

  /** The step ran once (a first delivery), the delivery back was deleted, the queue is empty. */
  async function expectRunOnce({ pollers, start, errors }: Harness, runs: string[]): Promise<void> {
    await Promise.all([...pollers.handling]);
    expect(runs).toEqual(['1']);
    expect(pollers.deliveries).toEqual({ handled: 1, failed: 0, repeated: 1 });
    expect(await start.pending()).toBe(0);
    expect(errors).toEqual([]);
  }

  it('while its step runs: not run again, and deleted once the step succeeds', async () => {
    const running = deferred<SQSRecord>();
    const finish = deferred();
    const runs: string[] = [];
    const harness = await pollersWith(async (record) => {
      runs.push(record.attributes.ApproximateReceiveCount);
      if (runs.length === 1) {
        running.resolve(record);
        await finish.promise;
      }
      return true;
    });
    const { start, queue } = harness;
    await queue.send([message]);
    // The message lapses while its step runs: it is received again (receive count 2).
    const first = await running.promise;
    await start.changeVisibility(first.receiptHandle, 0);
    await start.receivedAgain;
    finish.resolve();
    await expectRunOnce(harness, runs);
  });

  it('after its step succeeded (the delete came too late): deleted, not run again', async () => {
    const runs: string[] = [];
    const harness = await pollersWith(async (record) => {
      runs.push(record.attributes.ApproximateReceiveCount);
      // It lapses as its step ends: the delete that follows finds a stale receipt.
      if (runs.length === 1) await harness.start.changeVisibility(record.receiptHandle, 0);
      return true;
    });
    const { start, queue } = harness;
    await queue.send([message]);
    await start.receivedAgain;
    await expectRunOnce(harness, runs);
  });

  it('while its step runs and then fails: the delivery back is the retry, run once the first run ended', async () => {
    const running = deferred<SQSRecord>();
    const finish = deferred();
    const runs: string[] = [];
    let concurrent = 0;
    let most = 0;
    const retried = deferred();
    const { pollers, start, queue, errors } = await pollersWith(async (record) => {
      runs.push(record.attributes.ApproximateReceiveCount);
      most = Math.max(most, ++concurrent);
      try {
        if (runs.length === 1) {
          running.resolve(record);
          await finish.promise;
          return false;
        }
        retried.resolve();
        return true;
      } finally {
        concurrent--;
      }
    });
    await queue.send([message]);
    const first = await running.promise;
    await start.changeVisibility(first.receiptHandle, 0);
    await start.receivedAgain;
    finish.resolve();
    await retried.promise;
    await Promise.all([...pollers.handling]);
    expect(runs).toEqual(['1', '2']);
    expect(most).toBe(1);
    expect(pollers.deliveries).toEqual({ handled: 2, failed: 1, repeated: 0 });
    expect(await start.pending()).toBe(0);
    expect(errors).toEqual([]);
  });
});

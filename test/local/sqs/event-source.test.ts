/**
 * The one emulation of Lambda's SQS event source (local/sqs/event-source.ts), on the memory
 * tier's SQS: what a batch's answer leaves failed, what is deleted, what comes back.
 */
import { describe, expect, it } from 'vitest';
import type { SQSRecord } from 'aws-lambda';
import { MemorySqsQueue } from '../../../local/engines/memory-sqs';
import { deliver, failedMessageIds, poll } from '../../../local/sqs/event-source';

/** A queue whose unacknowledged messages come back at once, holding `count` step messages. */
async function queueOf(count: number): Promise<MemorySqsQueue> {
  const queue = new MemorySqsQueue({ name: 'steps', visibilityTimeoutSeconds: 0 });
  await queue.send(Array.from({ length: count }, (_, i) => ({ team: 't', runId: 'r', branchId: `b${i}`, step: 0 })));
  return queue;
}

async function deliverWith(queue: MemorySqsQueue, answer: (records: SQSRecord[]) => unknown, reportFailures = true) {
  const records = await queue.receive({ max: 10, waitSeconds: 0 });
  const errors: unknown[] = [];
  const released: string[][] = [];
  const failed = await deliver({
    records,
    invoke: async (event) => answer(event.Records),
    reportFailures,
    onInvokeError: (error) => void errors.push(error),
    hold: { release: (handles) => void released.push(handles) },
    delete: (handles) => queue.delete(handles),
    onDeleteError: (error) => void errors.push(error),
  });
  const again = await queue.receive({ max: 10, waitSeconds: 0 });
  return { records, failed, errors, released, again };
}

describe('a batch delivered as Lambda delivers it', () => {
  it('deletes what succeeded; the records the answer names come back, received once more', async () => {
    const queue = await queueOf(3);
    const { records, failed, released, again } = await deliverWith(queue, (r) => ({ batchItemFailures: [{ itemIdentifier: r[1].messageId }] }));
    expect(failed.map((r) => r.messageId)).toEqual([records[1].messageId]);
    expect(released).toEqual([[records[1].receiptHandle]]);
    expect(again.map((r) => [r.messageId, r.attributes.ApproximateReceiveCount])).toEqual([[records[1].messageId, '2']]);
  });

  it('fails the whole batch when the answer names a record not in it', async () => {
    const queue = await queueOf(2);
    const { failed, again } = await deliverWith(queue, () => ({ batchItemFailures: [{ itemIdentifier: 'not-in-the-batch' }] }));
    expect(failed).toHaveLength(2);
    expect(again).toHaveLength(2);
  });

  it('fails the whole batch when the invocation throws, and tells the error', async () => {
    const queue = await queueOf(2);
    const { failed, errors, again } = await deliverWith(queue, () => {
      throw new Error('the function crashed');
    });
    expect([failed.length, again.length]).toEqual([2, 2]);
    expect(errors).toEqual([new Error('the function crashed')]);
  });

  it('without ReportBatchItemFailures a successful invocation succeeds for the whole batch', async () => {
    const queue = await queueOf(2);
    const { failed, again } = await deliverWith(queue, (r) => ({ batchItemFailures: [{ itemIdentifier: r[0].messageId }] }), false);
    expect([failed.length, again.length]).toEqual([0, 0]);
    expect(await queue.pending()).toBe(0);
  });

  it('reads an empty or missing list as success', () => {
    const records = [{ messageId: 'a' }] as SQSRecord[];
    expect([...failedMessageIds(records, { batchItemFailures: [] })]).toEqual([]);
    expect([...failedMessageIds(records, null)]).toEqual([]);
    expect([...failedMessageIds(records, { batchItemFailures: [{}] })]).toEqual(['a']);
  });
});

describe('polling', () => {
  it('tells a failed receive and tries again; stops when told to', async () => {
    const queue = await queueOf(1);
    let receives = 0;
    const told: unknown[] = [];
    const handled: string[] = [];
    await poll({
      stopped: () => handled.length > 0,
      receive: async () => {
        if (++receives === 1) throw new Error('receive refused');
        return queue.receive({ max: 10, waitSeconds: 0 });
      },
      onReceiveError: (error) => void told.push(error),
      handle: (records) => void handled.push(...records.map((r) => JSON.parse(r.body).branchId)),
    });
    expect([told, handled]).toEqual([[new Error('receive refused')], ['b0']]);
  });

  it('ends when a failed receive answers false (a poll that would be refused forever)', async () => {
    let receives = 0;
    await poll({
      stopped: () => false,
      receive: async () => {
        receives++;
        throw new Error('AccessDenied');
      },
      onReceiveError: () => false,
      handle: () => undefined,
    });
    expect(receives).toBe(1);
  });
});

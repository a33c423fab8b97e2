/** The local fan-out dispatching through SQS (fauxqs), as the embedded runtime wires it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepMessage } from '../../../core/ports';
import { SqsStepQueue } from '../../../adapters/sqs/sqs-step-queue';
import { createQueues } from '../../../local/sqs/create-queues';
import { SqsQueueConsumer } from '../../../local/sqs/queue-consumer';
import type { AggregateInput } from '../../../core/ports';
import { LocalFanOutOrchestrator } from '../../../adapters/stepfunctions/local-fan-out';
import { startFauxqs, type FauxqsEngine } from '../../../local/engines/fauxqs-engine';

let engine: FauxqsEngine;

beforeAll(async () => {
  engine = await startFauxqs();
});

afterAll(async () => {
  await engine.close();
});

describe('LocalFanOutOrchestrator over SqsStepQueue', () => {
  it('dispatches every child as an SQS step message carrying its token, then aggregates', async () => {
    const queues = await createQueues(engine.client, { name: 'fan-out-steps', maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    const queue = new SqsStepQueue({ client: engine.client, queueUrl: queues.queueUrl });
    const consumer = new SqsQueueConsumer({ client: engine.client, queueUrl: queues.queueUrl });
    const aggregates: AggregateInput[] = [];
    const errors: unknown[] = [];
    const fanOut = new LocalFanOutOrchestrator({
      queue,
      tasks: {
        recordChildFailure: async () => {
          throw new Error('no child should fail');
        },
        aggregate: async (input) => {
          aggregates.push(input);
        },
        recordFanOutFailure: async () => {
          throw new Error('the fan-out should not fail');
        },
        dispatchBatch: async () => {
          throw new Error('this fan-out dispatches per child');
        },
        recordBatchFailure: async () => {
          throw new Error('this fan-out dispatches per child');
        },
      },
      onExecutionError: (error) => errors.push(error),
    });

    await fanOut.start({
      team: 'green',
      runId: 'run9',
      parentId: 'root.2',
      seq: 3,
      executionName: 'run9-root_2-s3',
      maxConcurrency: 2,
      firstIndex: 0,
      count: 3,
      timeoutSeconds: 30,
      dispatch: 'per-child',
    });

    const seen: string[] = [];
    while (seen.length < 3) {
      for (const record of await consumer.receive({ max: 10, waitSeconds: 5 })) {
        const message = JSON.parse(record.body) as StepMessage;
        expect(record.messageAttributes.branchId.stringValue).toBe(message.branchId);
        expect(record.messageAttributes.team.stringValue).toBe('green');
        expect(message).toMatchObject({ team: 'green', runId: 'run9', step: 0 });
        seen.push(message.branchId);
        await consumer.delete([record.receiptHandle]);
        await fanOut.childFinished(message.taskToken as string, { branchId: message.branchId, status: 'COMPLETED' });
      }
    }
    await fanOut.idle();

    expect(seen.sort()).toEqual(['root.2.0', 'root.2.1', 'root.2.2']);
    expect(aggregates).toEqual([{ team: 'green', runId: 'run9', parentId: 'root.2', seq: 3, retryCount: 0 }]);
    expect(errors).toEqual([]);
  });
});

/**
 * Starts the embedded engines in-process on random loopback ports (dynalite for DynamoDB,
 * fauxqs for SQS), creates the table and queues, and hands back the adapters that run on them.
 * The fan-out runs the shared ASL file in aws-local-stepfunctions.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { createTableIfMissing, DynamoBranchStore } from '../adapters/dynamodb';
import { createQueues, SqsQueueConsumer, SqsStepQueue, type CreatedQueues } from '../adapters/sqs/sqs-step-queue';
import { LocalFanOutOrchestrator } from '../adapters/stepfunctions/local-fan-out';
import type { FanOutTasks } from '../adapters/memory/memory-fan-out';
import type { StepQueue } from '../core/ports';
import { startDynalite, type DynamoEngine } from './engines/dynalite-engine';
import { startFauxqs, type FauxqsEngine } from './engines/fauxqs-engine';

export const TABLE_NAME = 'branch-spawner';
export const QUEUE_NAME = 'branch-steps';

export interface EmbeddedEngines {
  dynamo: DynamoEngine;
  sqs: FauxqsEngine;
  queues: CreatedQueues;
  store: DynamoBranchStore;
  queue: SqsStepQueue;
  consumer: SqsQueueConsumer;
  dlqConsumer: SqsQueueConsumer;
  createFanOut(queue: StepQueue, tasks: FanOutTasks, onError: (error: unknown) => void): LocalFanOutOrchestrator;
  close(): Promise<void>;
}

export interface EngineOptions {
  /** Keep the DynamoDB data on disk under this folder. */
  dataDir?: string;
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
}

export async function startEmbeddedEngines(options: EngineOptions = {}): Promise<EmbeddedEngines> {
  let dynamoPath: string | undefined;
  if (options.dataDir) {
    dynamoPath = join(options.dataDir, 'dynamodb');
    mkdirSync(dynamoPath, { recursive: true });
  }
  const [dynamo, sqs] = await Promise.all([startDynalite({ path: dynamoPath }), startFauxqs()]);
  try {
    await createTableIfMissing(dynamo.client, TABLE_NAME);
    const queues = await createQueues(sqs.client, {
      name: QUEUE_NAME,
      maxReceiveCount: options.maxReceiveCount ?? 5,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 5,
    });
    const store = new DynamoBranchStore({ client: dynamo.doc, tableName: TABLE_NAME });
    return {
      dynamo,
      sqs,
      queues,
      store,
      queue: new SqsStepQueue({ client: sqs.client, queueUrl: queues.queueUrl }),
      consumer: new SqsQueueConsumer({ client: sqs.client, queueUrl: queues.queueUrl, queueArn: queues.queueArn }),
      dlqConsumer: new SqsQueueConsumer({ client: sqs.client, queueUrl: queues.dlqUrl, queueArn: queues.dlqArn }),
      createFanOut(queue, tasks, onError) {
        return new LocalFanOutOrchestrator({ queue, tasks, onExecutionError: onError });
      },
      async close() {
        await Promise.all([dynamo.close(), sqs.close()]);
      },
    };
  } catch (error) {
    await Promise.all([dynamo.close(), sqs.close()]);
    throw error;
  }
}

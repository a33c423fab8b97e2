/**
 * Starts the embedded engines in-process on random loopback ports (dynalite for DynamoDB,
 * fauxqs for SQS), creates the table and queues, and hands back the adapters that run on them.
 * The fan-out runs the shared ASL file in aws-local-stepfunctions.
 *
 * With `dataDir`, the table (dynalite's LevelDB, `<dataDir>/dynamodb`) and the queues with their
 * messages (fauxqs' SQLite, `<dataDir>/sqs`) survive the process: a run interrupted by a crash can
 * be resumed on the same data. Fan-out executions are not kept (the engine is in memory);
 * `resumeRun` starts them again.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { createTableIfMissing, DynamoBranchStore } from '../adapters/dynamodb';
import { SqsStepQueue } from '../adapters/sqs/sqs-step-queue';
import { createQueues, type CreatedQueues, type CreateQueuesOptions } from './sqs/create-queues';
import { SqsQueueConsumer } from './sqs/queue-consumer';
import { LocalFanOutOrchestrator } from '../adapters/stepfunctions/local-fan-out';
import type { FanOutTasks } from '../adapters/memory/memory-fan-out';
import type { StepQueue } from '../core/ports';
import { startDynalite, type DynamoEngine } from './engines/dynalite-engine';
import { startFauxqs, type FauxqsEngine } from './engines/fauxqs-engine';

export const TABLE_NAME = 'branch-spawner';
export const QUEUE_NAME = 'branch-steps';
export const DEFAULT_MAX_RECEIVE_COUNT = 5;

export interface EmbeddedEngines {
  dynamo: DynamoEngine;
  sqs: FauxqsEngine;
  queues: CreatedQueues;
  store: DynamoBranchStore;
  queue: SqsStepQueue;
  consumer: SqsQueueConsumer;
  /** Sends to the dead-letter queue (tests park messages there). */
  dlqQueue: SqsStepQueue;
  dlqConsumer: SqsQueueConsumer;
  createFanOut(queue: StepQueue, tasks: FanOutTasks, onError: (error: unknown) => void): LocalFanOutOrchestrator;
  close(): Promise<void>;
}

export interface EngineOptions {
  /** Keep the table and the queues on disk under this folder. */
  dataDir?: string;
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
}

export async function startEmbeddedEngines(options: EngineOptions = {}): Promise<EmbeddedEngines> {
  let dynamoPath: string | undefined;
  let sqsPath: string | undefined;
  if (options.dataDir) {
    dynamoPath = join(options.dataDir, 'dynamodb');
    sqsPath = join(options.dataDir, 'sqs');
    mkdirSync(dynamoPath, { recursive: true });
  }
  const [dynamo, sqs] = await Promise.all([startDynalite({ path: dynamoPath }), startFauxqs({ dataDir: sqsPath })]);
  try {
    await createTableIfMissing(dynamo.client, TABLE_NAME);
    const queues = await ensureQueues(sqs.client, {
      name: QUEUE_NAME,
      maxReceiveCount: options.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT,
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
      dlqQueue: new SqsStepQueue({ client: sqs.client, queueUrl: queues.dlqUrl }),
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

/**
 * createQueues, for queues that may exist already (a kept data folder) with other settings:
 * CreateQueue refuses a changed attribute (QueueNameExists), so the settings asked for now are
 * applied to the existing queue instead.
 */
async function ensureQueues(client: SQSClient, options: CreateQueuesOptions): Promise<CreatedQueues> {
  try {
    return await createQueues(client, options);
  } catch (error) {
    if (!String((error as Error)?.message).includes('QueueNameExists')) throw error;
  }
  const urlOf = async (name: string) => (await client.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
  const arnOf = async (url: string) =>
    (await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  const dlqUrl = await urlOf(`${options.name}-dlq`);
  const queueUrl = await urlOf(options.name);
  const dlqArn = await arnOf(dlqUrl);
  await client.send(
    new SetQueueAttributesCommand({
      QueueUrl: queueUrl,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount }),
      },
    }),
  );
  return { queueUrl, queueArn: await arnOf(queueUrl), dlqUrl, dlqArn };
}

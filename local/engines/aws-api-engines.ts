/**
 * The `engines` tier (see local/embedded-engines): dynalite and fauxqs in this process, reached by
 * the real SDK clients and the DynamoDB/SQS adapters. Its own module so that the SDK clients and
 * both engines are loaded only when this tier is asked for: the memory and journal tiers (every
 * `run` and `dev`) start without them.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, SetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { createTableIfMissing, DynamoBranchStore } from '../../adapters/dynamodb';
import { MemoryBlobStore } from '../../adapters/blobs/memory-blob-store';
import { BLOBS_FOLDER, DiskBlobStore } from './disk-blob-store';
import { SqsStepQueue } from '../../adapters/sqs/sqs-step-queue';
import { createQueues, type CreatedQueues, type CreateQueuesOptions } from '../sqs/create-queues';
import { SqsQueueConsumer } from '../sqs/queue-consumer';
import { CostMeter } from '../../core/cost-meter';
import { LanedStepQueue, MAX_RECEIVE_COUNT } from '../../core/step-lanes';
import { lockDataFolder } from '../data-folder';
import { CONTINUE_QUEUE_NAME, loadAslFanOut, QUEUE_NAME, TABLE_NAME, type EmbeddedEngines, type EngineOptions } from '../embedded-engines';
import { startDynalite, type DynamoEngine } from './dynalite-engine';
import { startFauxqs, type FauxqsEngine } from './fauxqs-engine';

/** Starts the engines tier (see the header). */
export async function startAwsApiEngines(options: Omit<EngineOptions, 'tier'> = {}): Promise<EmbeddedEngines> {
  let dynamoPath: string | undefined;
  let sqsPath: string | undefined;
  // One process per data folder (refused with the holder's pid): taken before any engine opens it.
  const lock = options.dataDir ? lockDataFolder(options.dataDir) : undefined;
  if (options.dataDir) {
    dynamoPath = join(options.dataDir, 'dynamodb');
    sqsPath = join(options.dataDir, 'sqs');
    mkdirSync(dynamoPath, { recursive: true });
  }
  let dynamo: DynamoEngine;
  let sqs: FauxqsEngine;
  try {
    [dynamo, sqs] = await Promise.all([startDynalite({ path: dynamoPath }), startFauxqs({ dataDir: sqsPath })]);
  } catch (error) {
    lock?.release();
    throw error;
  }
  try {
    await createTableIfMissing(dynamo.client, TABLE_NAME);
    const queueOptions = {
      maxReceiveCount: options.maxReceiveCount ?? MAX_RECEIVE_COUNT,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 5,
    };
    const queues = await ensureQueues(sqs.client, { name: QUEUE_NAME, ...queueOptions });
    const continued = await ensureLaneQueue(sqs.client, CONTINUE_QUEUE_NAME, queues.dlqArn, queueOptions);
    const meter = new CostMeter();
    // Large values: files in the data folder (kept with the table), in memory without one.
    const blobs = options.dataDir ? new DiskBlobStore(join(options.dataDir, BLOBS_FOLDER)) : new MemoryBlobStore();
    const store = new DynamoBranchStore({ client: dynamo.doc, tableName: TABLE_NAME, meter, blobs });
    const consumer = (queueUrl: string, queueArn: string) => new SqsQueueConsumer({ client: sqs.client, queueUrl, queueArn });
    return {
      tier: 'engines',
      meter,
      blobs,
      dynamo,
      sqs,
      queues: { ...queues, continueUrl: continued.queueUrl, continueArn: continued.queueArn },
      store,
      queue: new LanedStepQueue({
        start: new SqsStepQueue({ client: sqs.client, queueUrl: queues.queueUrl }),
        continue: new SqsStepQueue({ client: sqs.client, queueUrl: continued.queueUrl }),
      }),
      consumers: { start: consumer(queues.queueUrl, queues.queueArn), continue: consumer(continued.queueUrl, continued.queueArn) },
      dlqQueue: new SqsStepQueue({ client: sqs.client, queueUrl: queues.dlqUrl }),
      dlqConsumer: consumer(queues.dlqUrl, queues.dlqArn),
      createFanOut: (await loadAslFanOut())(meter),
      async close() {
        try {
          await Promise.all([dynamo.close(), sqs.close()]);
        } finally {
          lock?.release();
        }
      },
    };
  } catch (error) {
    await Promise.all([dynamo.close(), sqs.close()]);
    lock?.release();
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
  await applyStepQueueSettings(client, queueUrl, dlqArn, options);
  return { queueUrl, queueArn: await arnOf(queueUrl), dlqUrl, dlqArn };
}

/** A step queue's settings: its visibility timeout and its redrive to the shared DLQ. */
async function applyStepQueueSettings(
  client: SQSClient,
  queueUrl: string,
  dlqArn: string,
  options: Pick<CreateQueuesOptions, 'visibilityTimeoutSeconds' | 'maxReceiveCount'>,
): Promise<void> {
  await client.send(
    new SetQueueAttributesCommand({
      QueueUrl: queueUrl,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount }),
      },
    }),
  );
}

/** Another step queue with the same settings, redriving to the same DLQ (created or updated). */
async function ensureLaneQueue(
  client: SQSClient,
  name: string,
  dlqArn: string,
  options: Pick<CreateQueuesOptions, 'visibilityTimeoutSeconds' | 'maxReceiveCount'>,
): Promise<{ queueUrl: string; queueArn: string }> {
  // Without attributes CreateQueue answers an existing queue's URL whatever its settings.
  const queueUrl = (await client.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
  await applyStepQueueSettings(client, queueUrl, dlqArn, options);
  const attributes = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  return { queueUrl, queueArn: attributes.Attributes!.QueueArn! };
}

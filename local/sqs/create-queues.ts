/** Creates the local step queue and its dead-letter queue (in AWS the stack does). */
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DEFAULT_MAX_MESSAGE_BYTES, sqsCall } from '../../adapters/sqs/sqs-step-queue';
import { BranchSpawnerError } from '../../core/errors';

export interface CreateQueuesOptions {
  name: string;
  /** Receives without delete before a message moves to the DLQ. */
  maxReceiveCount: number;
  visibilityTimeoutSeconds: number;
  maxMessageBytes?: number;
}

export interface CreatedQueues {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
}

/** Creates (idempotently, as CreateQueue is) the step queue and its DLQ with a RedrivePolicy. */
export async function createQueues(client: SQSClient, options: CreateQueuesOptions): Promise<CreatedQueues> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const dlq = await sqsCall('CreateQueue', () =>
    client.send(
      new CreateQueueCommand({
        QueueName: `${options.name}-dlq`,
        Attributes: { MessageRetentionPeriod: String(14 * 24 * 3600), MaximumMessageSize: String(maxMessageBytes) },
      }),
    ),
  );
  const dlqUrl = required(dlq.QueueUrl, 'DLQ url');
  const dlqArn = await queueArnOf(client, dlqUrl);
  const queue = await sqsCall('CreateQueue', () =>
    client.send(
      new CreateQueueCommand({
        QueueName: options.name,
        Attributes: {
          VisibilityTimeout: String(options.visibilityTimeoutSeconds),
          MaximumMessageSize: String(maxMessageBytes),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount }),
        },
      }),
    ),
  );
  const queueUrl = required(queue.QueueUrl, 'queue url');
  return { queueUrl, queueArn: await queueArnOf(client, queueUrl), dlqUrl, dlqArn };
}

async function queueArnOf(client: SQSClient, queueUrl: string): Promise<string> {
  const result = await sqsCall('GetQueueAttributes', () =>
    client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] })),
  );
  return required(result.Attributes?.QueueArn, `QueueArn of ${queueUrl}`);
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new BranchSpawnerError(`SQS returned no ${what}`);
  return value;
}

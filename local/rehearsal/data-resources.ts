/**
 * The stack's data resources, created from the template on the engines: DynamoDB tables (keys,
 * GSIs) on dynalite, SQS queues (visibility, retention, redrive, on the queue clock) and S3
 * buckets on fauxqs. The functions reach them through the endpoint; the rehearsal itself reads
 * runs as the functions wrote them, large values from the team's bucket.
 */
import { CreateTableCommand, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoBranchStore } from '../../adapters/dynamodb';
import { S3BlobStore } from '../../adapters/s3/s3-blob-store';
import type { DynaliteEngine } from '../engines/dynalite-engine';
import type { FauxqsEngine } from '../engines/fauxqs-engine';
import { AWS_QUOTAS } from './aws-quotas';
import type { QueueClock } from './queue-clock';
import type { RehearsalTemplate } from './template';

export class RehearsalData {
  private constructor(
    private readonly template: RehearsalTemplate,
    private readonly tableArns: Map<string, string>,
    private readonly queueArns: Map<string, string>,
    /** fauxqs' S3, for the rehearsal's own reads of large values (the functions go through the endpoint). */
    private readonly s3: S3Client | undefined,
    /** The runs as the functions wrote them (the stack's first table; large values from its bucket). */
    readonly store: DynamoBranchStore,
  ) {}

  /** `endpointUrl`: the host of the functions' queue URLs, as a real queue URL has the SQS endpoint's. */
  static async create(t: RehearsalTemplate, engines: { dynamo: DynaliteEngine; sqs: FauxqsEngine }, queueClock: QueueClock, endpointUrl: string): Promise<RehearsalData> {
    const tableArns = await createTables(t, engines.dynamo);
    const queueArns = await createQueues(t, engines.sqs, queueClock, endpointUrl);
    const buckets = await createBuckets(t, engines.sqs);
    const store = new DynamoBranchStore({ client: engines.dynamo.doc, tableName: [...tableArns.keys()][0], ...(buckets ? { blobs: buckets.blobs } : {}) });
    return new RehearsalData(t, tableArns, queueArns, buckets?.s3, store);
  }

  tableArnOf(name: string): string {
    return this.tableArns.get(name) ?? this.template.arn('dynamodb', `table/${name}`);
  }

  queueArnOf(url: string): string {
    const name = url.split('/').pop() ?? url;
    return this.queueArns.get(name) ?? this.template.arn('sqs', name);
  }

  close(): void {
    this.s3?.destroy();
  }
}

async function createTables(t: RehearsalTemplate, dynamo: DynaliteEngine): Promise<Map<string, string>> {
  const tableArns = new Map<string, string>();
  for (const [id, r] of t.ofType('AWS::DynamoDB::Table')) {
    const p = r.Properties ?? {};
    const name = String(p.TableName ?? t.generatedName(id, 255));
    const input: CreateTableCommandInput = {
      TableName: name,
      KeySchema: p.KeySchema,
      AttributeDefinitions: p.AttributeDefinitions,
      BillingMode: p.BillingMode ?? 'PROVISIONED',
      ...(p.ProvisionedThroughput ? { ProvisionedThroughput: p.ProvisionedThroughput } : {}),
      ...(p.GlobalSecondaryIndexes
        ? {
            GlobalSecondaryIndexes: p.GlobalSecondaryIndexes.map((g: Record<string, any>) => ({
              IndexName: g.IndexName,
              KeySchema: g.KeySchema,
              Projection: g.Projection,
              ...(g.ProvisionedThroughput ? { ProvisionedThroughput: g.ProvisionedThroughput } : {}),
            })),
          }
        : {}),
    };
    await dynamo.client.send(new CreateTableCommand(input));
    const arn = t.arn('dynamodb', `table/${name}`);
    t.setPhysical(id, { ref: name, attributes: { Arn: arn } });
    tableArns.set(name, arn);
  }
  // dynalite creates tables asynchronously: wait until each is ACTIVE.
  const { waitUntilTableExists } = await import('@aws-sdk/client-dynamodb');
  for (const name of tableArns.keys()) {
    await waitUntilTableExists({ client: dynamo.client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 }, { TableName: name });
  }
  return tableArns;
}

async function createQueues(t: RehearsalTemplate, sqs: FauxqsEngine, queueClock: QueueClock, endpointUrl: string): Promise<Map<string, string>> {
  const queueArns = new Map<string, string>();
  const queues = t.ofType('AWS::SQS::Queue');
  const fauxqsArns = new Map<string, string>();
  // Dead-letter queues first: a RedrivePolicy names its target's ARN.
  const ordered = [...queues.filter(([, q]) => !q.Properties?.RedrivePolicy), ...queues.filter(([, q]) => q.Properties?.RedrivePolicy)];
  for (const [id, r] of ordered) {
    const p = r.Properties ?? {};
    const name = String(p.QueueName ?? t.generatedName(id, 80));
    const attributes: Record<string, string> = {};
    for (const key of ['VisibilityTimeout', 'MessageRetentionPeriod', 'DelaySeconds', 'MaximumMessageSize', 'ReceiveMessageWaitTimeSeconds']) {
      if (p[key] !== undefined) attributes[key] = String(p[key]);
    }
    // A queue whose template names no size takes the SQS default the product is held to (fauxqs's is 1 MiB).
    attributes.MaximumMessageSize ??= String(AWS_QUOTAS.sqsDefaultMessageBytes);
    if (p.RedrivePolicy) {
      const policy = t.resolve(p.RedrivePolicy) as { deadLetterTargetArn: string; maxReceiveCount: number };
      attributes.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: fauxqsArns.get(policy.deadLetterTargetArn) ?? policy.deadLetterTargetArn,
        maxReceiveCount: policy.maxReceiveCount,
      });
    }
    const created = await sqs.client.send(new CreateQueueCommand({ QueueName: name, Attributes: queueClock.attributes(attributes) }));
    const url = `${endpointUrl}/${t.env.account}/${name}`;
    const own = await sqs.client.send(new GetQueueAttributesCommand({ QueueUrl: created.QueueUrl!, AttributeNames: ['QueueArn'] }));
    const arn = t.arn('sqs', name);
    fauxqsArns.set(arn, own.Attributes!.QueueArn!);
    t.setPhysical(id, { ref: url, attributes: { Arn: arn, QueueName: name, QueueUrl: url } });
    queueArns.set(name, arn);
  }
  return queueArns;
}

/**
 * The template's buckets, in fauxqs' S3 (which the functions reach through the endpoint, IAM
 * checked per call). Answers the blob store on the first one (the stack has one: the claim check's).
 */
async function createBuckets(t: RehearsalTemplate, sqs: FauxqsEngine): Promise<{ s3: S3Client; blobs: S3BlobStore } | undefined> {
  const buckets = t.ofType('AWS::S3::Bucket');
  if (buckets.length === 0) return undefined;
  const s3 = new S3Client({
    endpoint: sqs.endpoint,
    region: t.env.region,
    forcePathStyle: true,
    credentials: { accessKeyId: 'rehearsal', secretAccessKey: 'rehearsal' },
  });
  let first: string | undefined;
  try {
    for (const [id, r] of buckets) {
      const name = String(r.Properties?.BucketName ?? t.generatedName(id, 63)).toLowerCase();
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      t.setPhysical(id, { ref: name, attributes: { Arn: `arn:${t.env.partition}:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } });
      first ??= name;
    }
  } catch (error) {
    s3.destroy();
    throw error;
  }
  return { s3, blobs: new S3BlobStore({ client: s3, bucket: first! }) };
}

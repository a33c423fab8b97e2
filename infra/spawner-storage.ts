/**
 * The team's records: the DynamoDB table (the same definition the local engines create,
 * adapters/dynamodb/table.ts), the bucket of its large values, and the team's own key when it asks
 * for one. Each is kept on teardown. Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { TTL_ATTRIBUTE, tableSchema } from '../adapters/dynamodb';
import { S3_BLOB_PREFIX } from '../adapters/blobs/blob-keys';
import type { TeamConfig } from '../functions/team-config';

export interface SpawnerStorage {
  table: dynamodb.Table;
  /** The team's key (tableEncryption: customer-managed), for the table and the bucket. */
  tableKey?: kms.Key;
  blobBucket: s3.Bucket;
}

export function createStorage(scope: Construct, config: TeamConfig): SpawnerStorage {
  const tableKey =
    config.tableEncryption === 'customer-managed'
      ? new kms.Key(scope, 'TableKey', {
          description: `branch-spawner ${config.team} table`,
          enableKeyRotation: true,
          removalPolicy: RemovalPolicy.RETAIN,
        })
      : undefined;
  const table = createTable(scope, tableKey);
  const blobBucket = createBlobBucket(scope, config, tableKey);
  return { table, ...(tableKey ? { tableKey } : {}), blobBucket };
}

/**
 * The bucket of the team's large values. Encrypted (with the table's key when the team has one),
 * no public access, SSL only. Contents expire with the runs: an item expires `runTtlDays` after it
 * was written, and a content lives that long after its last put (the S3 blob store puts again on
 * every write that refers to it), so no item outlives what it refers to. Kept on teardown, as the table is.
 */
function createBlobBucket(scope: Construct, config: TeamConfig, key: kms.Key | undefined): s3.Bucket {
  return new s3.Bucket(scope, 'BlobBucket', {
    ...(key ? { encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true } : { encryption: s3.BucketEncryption.S3_MANAGED }),
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy: RemovalPolicy.RETAIN,
    lifecycleRules: [
      {
        id: 'expire-with-runs',
        prefix: S3_BLOB_PREFIX,
        abortIncompleteMultipartUploadAfter: Duration.days(1),
        ...(config.runTtlDays ? { expiration: Duration.days(config.runTtlDays) } : {}),
      },
    ],
  });
}

function createTable(scope: Construct, key: kms.Key | undefined): dynamodb.Table {
  const schema = tableSchema('branch-spawner');
  const attributeType = (name: string): dynamodb.AttributeType => {
    const type = schema.AttributeDefinitions?.find((a) => a.AttributeName === name)?.AttributeType;
    if (type === 'S') return dynamodb.AttributeType.STRING;
    if (type === 'N') return dynamodb.AttributeType.NUMBER;
    if (type === 'B') return dynamodb.AttributeType.BINARY;
    throw new Error(`tableSchema: attribute ${name} has no definition`);
  };
  const keyAttr = (keys: { AttributeName?: string; KeyType?: string }[] | undefined, keyType: 'HASH' | 'RANGE') => {
    const name = keys?.find((k) => k.KeyType === keyType)?.AttributeName;
    return name ? { name, type: attributeType(name) } : undefined;
  };
  const partitionKey = keyAttr(schema.KeySchema, 'HASH');
  if (!partitionKey) throw new Error('tableSchema: no HASH key');
  const table = new dynamodb.Table(scope, 'Table', {
    partitionKey,
    sortKey: keyAttr(schema.KeySchema, 'RANGE'),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    timeToLiveAttribute: TTL_ATTRIBUTE,
    ...(key
      ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: key }
      : { encryption: dynamodb.TableEncryption.AWS_MANAGED }),
    // Runs are the team's records: a stack teardown keeps them.
    removalPolicy: RemovalPolicy.RETAIN,
    // Nor can a stack update or a console click delete the table.
    deletionProtection: true,
  });
  for (const gsi of schema.GlobalSecondaryIndexes ?? []) {
    const pk = keyAttr(gsi.KeySchema, 'HASH');
    if (!gsi.IndexName || !pk) throw new Error('tableSchema: a GSI needs a name and a HASH key');
    const projection = gsi.Projection?.ProjectionType ?? 'ALL';
    table.addGlobalSecondaryIndex({
      indexName: gsi.IndexName,
      partitionKey: pk,
      sortKey: keyAttr(gsi.KeySchema, 'RANGE'),
      projectionType:
        projection === 'KEYS_ONLY'
          ? dynamodb.ProjectionType.KEYS_ONLY
          : projection === 'INCLUDE'
            ? dynamodb.ProjectionType.INCLUDE
            : dynamodb.ProjectionType.ALL,
      ...(projection === 'INCLUDE' ? { nonKeyAttributes: gsi.Projection?.NonKeyAttributes ?? [] } : {}),
    });
  }
  return table;
}

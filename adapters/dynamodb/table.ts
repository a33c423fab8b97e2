/**
 * The table definition, shared by the local engines and the CDK stack so they never drift.
 * See docs/dynamodb-schema.md for the key schema and the access patterns.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  waitUntilTableExists,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { GSI1, TTL_ATTRIBUTE } from './item-codec';
import { mapDynamoError } from './map-dynamo-error';

export { GSI1, TTL_ATTRIBUTE };

/** CreateTable input: on-demand billing, PK/SK, and GSI1 (children of a parent, sparse). */
export function tableSchema(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'PK', AttributeType: 'S' },
      { AttributeName: 'SK', AttributeType: 'S' },
      { AttributeName: 'GSI1PK', AttributeType: 'S' },
      { AttributeName: 'GSI1SK', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'PK', KeyType: 'HASH' },
      { AttributeName: 'SK', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI1,
        KeySchema: [
          { AttributeName: 'GSI1PK', KeyType: 'HASH' },
          { AttributeName: 'GSI1SK', KeyType: 'RANGE' },
        ],
        // Views read whole branch records from the index.
        // Keys only: a child's many updates then cost no index writes; listChildren reads the items.
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
  };
}

/**
 * Creates the table unless it exists, and waits until it is ACTIVE. TTL (`expiresAt`) is
 * enabled by the CDK stack; dynalite has no UpdateTimeToLive, so it is not done here.
 * Returns true when this call created the table.
 */
export async function createTableIfMissing(client: DynamoDBClient, tableName: string): Promise<boolean> {
  let created = false;
  try {
    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (described.Table?.TableStatus === 'ACTIVE') return false;
  } catch (error) {
    if ((error as Error)?.name !== 'ResourceNotFoundException') throw mapDynamoError(error, `describe table ${tableName}`);
    try {
      await client.send(new CreateTableCommand(tableSchema(tableName)));
      created = true;
    } catch (createError) {
      // Someone else created it in between: fine.
      if ((createError as Error)?.name !== 'ResourceInUseException') {
        throw mapDynamoError(createError, `create table ${tableName}`);
      }
    }
  }
  try {
    await waitUntilTableExists({ client, maxWaitTime: 120, minDelay: 1, maxDelay: 5 }, { TableName: tableName });
  } catch (error) {
    throw mapDynamoError(error, `wait for table ${tableName}`);
  }
  return created;
}

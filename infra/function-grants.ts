/**
 * Least privilege, per function: what each function's code path can reach (FUNCTION_NEEDS), and
 * the statements each need grants on the team's resources.
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { GSI1 } from '../adapters/dynamodb';
import { S3_BLOB_PREFIX } from '../adapters/blobs/blob-keys';
import type { TeamConfig } from '../functions/team-config';
import { bedrockGrants, lambdaAgentArns, type BedrockGrants } from './agent-grants';
import type { SpawnerFunction, SpawnerFunctionName } from './spawner-function';

/**
 * The DynamoDB actions the store (adapters/dynamodb/dynamo-branch-store.ts) calls: no Scan, no
 * deletes, no table management. test/infra/iam.test.ts fails when the store starts calling more.
 */
export const TABLE_DATA_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];

export type Need = 'table' | 'blobs' | 'sendSteps' | 'startExecution' | 'taskResponse' | 'stopExecutions' | 'putEvents' | 'agents';

/** What each function's code path can reach (core/use-cases), and nothing more. */
export const FUNCTION_NEEDS: Record<SpawnerFunctionName, Need[]> = {
  // startRun, queries, cancelRun (stops open fan-outs).
  // Every function reads and writes records, and with them the large values kept apart ('blobs').
  api: ['table', 'blobs', 'sendSteps', 'stopExecutions', 'putEvents'],
  // startRun only.
  trigger: ['table', 'blobs', 'sendSteps', 'putEvents'],
  // executeStep: spawn (StartExecution), complete (SendTask*), early exit (StopExecution), agents.
  'step-worker': ['table', 'blobs', 'sendSteps', 'startExecution', 'taskResponse', 'stopExecutions', 'putEvents', 'agents'],
  // Fan-in: may resume the parent (queue), open its next group (StartExecution), end it (SendTask*, Stop*).
  'record-child-failure': ['table', 'blobs', 'sendSteps', 'startExecution', 'taskResponse', 'stopExecutions', 'putEvents'],
  aggregate: ['table', 'blobs', 'sendSteps', 'startExecution', 'taskResponse', 'stopExecutions', 'putEvents'],
  // A poisoned step fails its branch and tells the parent: the same fan-in reach.
  'dlq-handler': ['table', 'blobs', 'sendSteps', 'startExecution', 'taskResponse', 'stopExecutions', 'putEvents'],
};

/** The team's resources the needs are granted on. */
export interface GrantedResources {
  config: TeamConfig;
  table: dynamodb.ITable;
  tableKey?: kms.IKey;
  blobBucket: s3.IBucket;
  stepQueue: sqs.IQueue;
  continueQueue: sqs.IQueue;
  eventBus: events.IEventBus;
  stateMachineArn: string;
  executionsArn: string;
}

/** Adds to each function's role the statements of its needs (FUNCTION_NEEDS). */
export function grantFunctionNeeds(stack: Stack, functions: Record<SpawnerFunctionName, SpawnerFunction>, resources: GrantedResources): void {
  const agents = { agentLambdaArns: lambdaAgentArns(stack, resources.config.agents), agentModels: bedrockGrants(stack, resources.config.agents) };
  for (const [name, f] of Object.entries(functions) as [SpawnerFunctionName, SpawnerFunction][]) {
    for (const need of FUNCTION_NEEDS[name]) {
      for (const statement of statementsFor(stack, need, resources, agents)) f.addToRolePolicy(statement);
    }
  }
}

function statementsFor(
  stack: Stack,
  need: Need,
  r: GrantedResources,
  agents: { agentLambdaArns: string[]; agentModels: BedrockGrants },
): iam.PolicyStatement[] {
  switch (need) {
    case 'table': {
      const statements = [
        new iam.PolicyStatement({ actions: TABLE_DATA_ACTIONS, resources: [r.table.tableArn] }),
        new iam.PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${r.table.tableArn}/index/${GSI1}`] }),
      ];
      if (r.tableKey) {
        statements.push(
          new iam.PolicyStatement({
            // Spelled out (no GenerateDataKey*/ReEncrypt*) and only through DynamoDB.
            actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:DescribeKey', 'kms:GenerateDataKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
            resources: [r.tableKey.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${stack.region}.amazonaws.com` } },
          }),
        );
      }
      return statements;
    }
    case 'blobs': {
      // Objects under the blob prefix only: get and put (content-addressed, never listed or deleted).
      const statements = [new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [r.blobBucket.arnForObjects(`${S3_BLOB_PREFIX}*`)] })];
      if (r.tableKey) {
        statements.push(
          new iam.PolicyStatement({
            actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
            resources: [r.tableKey.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
          }),
        );
      }
      return statements;
    }
    case 'sendSteps':
      // Both lanes (core/step-lanes.ts picks one per message). SendMessageBatch is authorized by sqs:SendMessage.
      return [new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [r.stepQueue.queueArn, r.continueQueue.queueArn] })];
    case 'startExecution':
      return [
        new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [r.stateMachineArn] }),
        // A repeated start (same execution name) compares inputs with DescribeExecution.
        new iam.PolicyStatement({ actions: ['states:DescribeExecution'], resources: [r.executionsArn] }),
      ];
    case 'taskResponse':
      // Authorized against the state machine that issued the token (as CDK's grantTaskResponse does);
      // the code only ever reports success (a child's outcome is in DynamoDB, not in the token).
      return [new iam.PolicyStatement({ actions: ['states:SendTaskSuccess'], resources: [r.stateMachineArn] })];
    case 'stopExecutions':
      // Execution names are per sync point (made at run time): only this machine's executions.
      return [new iam.PolicyStatement({ actions: ['states:StopExecution'], resources: [r.executionsArn] })];
    case 'putEvents':
      return [new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [r.eventBus.eventBusArn] })];
    case 'agents': {
      const statements: iam.PolicyStatement[] = secretStatements(stack, r.config.secrets);
      if (agents.agentLambdaArns.length) {
        statements.push(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: agents.agentLambdaArns }));
      }
      if (agents.agentModels.resources.length) {
        statements.push(new iam.PolicyStatement({ actions: ['bedrock:InvokeModel'], resources: agents.agentModels.resources }));
      }
      for (const { profileArn, modelArn } of agents.agentModels.throughProfiles) {
        statements.push(
          new iam.PolicyStatement({
            actions: ['bedrock:InvokeModel'],
            resources: [modelArn],
            conditions: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
          }),
        );
      }
      return statements;
    }
  }
}

/** Read access to exactly the team's named secrets (agents' API keys), for the step-worker. */
function secretStatements(stack: Stack, secrets: TeamConfig['secrets']): iam.PolicyStatement[] {
  const secretArns: string[] = [];
  const parameterArns: string[] = [];
  for (const source of Object.values(secrets)) {
    if ('secretsManager' in source) {
      const name = source.secretsManager;
      // A secret's ARN ends with a random 6-character suffix after its name.
      secretArns.push(
        name.startsWith('arn:')
          ? name
          : stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: `${name}-??????`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      );
    } else {
      const name = source.ssmParameter;
      parameterArns.push(
        name.startsWith('arn:')
          ? name
          : stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, ''), arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
      );
    }
  }
  const statements: iam.PolicyStatement[] = [];
  if (secretArns.length) statements.push(new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: secretArns }));
  if (parameterArns.length) statements.push(new iam.PolicyStatement({ actions: ['ssm:GetParameter'], resources: parameterArns }));
  return statements;
}

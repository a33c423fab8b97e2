/**
 * cdk-nag (AwsSolutions) findings we accept, each on the narrowest construct and with its reason.
 * cdk-nag 3 reads these through CDK's `Validations.of(construct).acknowledge()`.
 */
import { Stack, Token, Validations, type CfnElement } from 'aws-cdk-lib';
import { S3_BLOB_PREFIX } from '../adapters/blobs/blob-keys';
import type { IConstruct } from 'constructs';
import { bedrockGrants } from './agent-grants';
import type { BranchSpawner } from './branch-spawner';

export interface NagAcknowledgement {
  construct: IConstruct;
  id: string;
  reason: string;
}

/** How cdk-nag spells an ARN built from pseudo-parameters in a finding id. */
function nagArn(stack: Stack, arn: { service: string; resource: string }): string {
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  return `arn:<AWS::Partition>:${arn.service}:${region}:${account}:${arn.resource}`;
}

export function nagAcknowledgements(spawner: BranchSpawner): NagAcknowledgement[] {
  const stack = Stack.of(spawner);
  const acks: NagAcknowledgement[] = [];
  const executions = nagArn(stack, { service: 'states', resource: `execution:${spawner.stateMachineName}:*` });

  for (const fn of Object.values(spawner.functions)) {
    acks.push(
      {
        construct: fn.role!,
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Only the X-Ray actions (xray:PutTraceSegments, xray:PutTelemetryRecords) added by active tracing use "*": X-Ray has no resource-level permissions.',
      },
      {
        construct: fn,
        id: 'AwsSolutions-L1',
        reason: 'The runtime is pinned to NODEJS_22_X on purpose (the product supports Node 22); moving to a newer runtime is a tested upgrade, not a synth-time default.',
      },
    );
    const needs = spawner.functionNeeds(fn.spawnerName);
    if (needs.includes('stopExecutions') || needs.includes('startExecution')) {
      acks.push({
        construct: fn.role!,
        id: `AwsSolutions-IAM5[Resource::${executions}]`,
        reason:
          'states:StopExecution and states:DescribeExecution are scoped to the executions of this stack\'s fan-out state machine only; execution names are made per sync point at run time, so they cannot be listed.',
      });
    }
  }
  // The claim check's bucket (docs/large-values.md): objects are named by their content's hash at run time.
  const bucketId = stack.getLogicalId(spawner.blobBucket.node.defaultChild as CfnElement);
  for (const fn of Object.values(spawner.functions)) {
    acks.push({
      construct: fn.role!,
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${S3_BLOB_PREFIX}*]`,
      reason:
        's3:GetObject and s3:PutObject on the objects under the blob prefix of this stack\'s own bucket only: each object is named by the SHA-256 of its content at run time, so the names cannot be listed.',
    });
  }
  acks.push({
    construct: spawner.blobBucket,
    id: 'AwsSolutions-S1',
    reason:
      'The bucket holds only the stack\'s large run values, read and written by the stack\'s own functions (least-privilege roles, SSL only, no public access); their requests are the function invocations already logged, and CloudTrail data events can be turned on by the account without another bucket per team.',
  });
  acks.push({
    construct: spawner.stateMachineRole,
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Only the actions Step Functions needs for logging (logs:CreateLogDelivery and the other log-delivery actions) and X-Ray tracing use "*": neither supports resource-level permissions.',
  });
  const stepWorkerRole = spawner.functions['step-worker'].role!;
  for (const { modelArn } of bedrockGrants(stack, spawner.config.agents).throughProfiles) {
    acks.push({
      construct: stepWorkerRole,
      id: `AwsSolutions-IAM5[Resource::${modelArn.replace(/^arn:\$\{Token\[AWS\.Partition\.\d+\]\}/, 'arn:<AWS::Partition>')}]`,
      reason:
        'A cross-Region inference profile routes each call to one of its destination Regions, where the foundation model must be allowed too; the Regions differ per profile and grow, so the one model is allowed in any Region but only through this profile (condition bedrock:InferenceProfileArn).',
    });
  }
  if (spawner.config.stateMachineLogging.level !== 'ALL') {
    acks.push({
      construct: spawner.stateMachine,
      id: 'AwsSolutions-SF1',
      reason:
        'Logging ALL events writes every task token and branch id to CloudWatch Logs (with execution data, every input); the fan-out logs errors only by default, and a team opts in with stateMachineLogging in its config. Executions and their history stay visible in Step Functions.',
    });
  }
  const stage = spawner.api.deploymentStage;
  acks.push(
    {
      construct: stage,
      id: 'AwsSolutions-APIG6',
      reason:
        'Access logs go to a log group and X-Ray tracing is on. Execution logging needs the account-wide API Gateway CloudWatch role (AWS::ApiGateway::Account, one per region), which is account setup shared by all teams, not part of a team stack.',
    },
    {
      construct: stage,
      id: 'AwsSolutions-APIG3',
      reason:
        'Every method requires IAM (SigV4) or Cognito auth and the stage is throttled; a WAF web ACL is an account-level choice a team can attach to the stage.',
    },
  );
  if (spawner.config.auth.type === 'iam') {
    acks.push({
      construct: spawner.api,
      id: 'AwsSolutions-COG4',
      reason:
        'This team authenticates API callers with IAM (SigV4, authorizationType AWS_IAM on every method); a Cognito authorizer is used when the team config sets auth.type "jwt".',
    });
  }
  return acks;
}

export function acknowledgeNagFindings(spawner: BranchSpawner): NagAcknowledgement[] {
  const acks = nagAcknowledgements(spawner);
  for (const ack of acks) Validations.of(ack.construct).acknowledge({ id: ack.id, reason: ack.reason });
  return acks;
}

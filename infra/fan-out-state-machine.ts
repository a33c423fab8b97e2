/**
 * The fan-out state machine: the shared ASL file (adapters/stepfunctions), with the three names
 * substituted by CloudFormation, its role and its logs. Made in the BranchSpawner's scope (logical
 * ids unchanged).
 */
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { FAN_OUT_ASL_PATH } from '../adapters/stepfunctions/fan-out-definition';
import type { TeamConfig } from '../functions/team-config';

/** The machine's fixed name and the ARNs built from it (see fanOutNames). */
export interface FanOutNames {
  stateMachineName: string;
  stateMachineArn: string;
  /** Every execution of this machine (execution names are made per sync point at run time). */
  executionsArn: string;
}

/**
 * The cycle: the state machine names the task functions' ARNs and the functions need the state
 * machine's ARN. The machine gets a fixed name, so its ARN is built from the name with
 * pseudo-parameters only (no reference to the resource): functions → name ← machine, no loop.
 */
export function fanOutNames(stack: Stack, team: string): FanOutNames {
  const stateMachineName = `branch-spawner-${team}-fan-out`;
  return {
    stateMachineName,
    stateMachineArn: stack.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    }),
    executionsArn: stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    }),
  };
}

export interface FanOutProps {
  config: TeamConfig;
  stateMachineName: string;
  logRetention: logs.RetentionDays;
  /** The start lane, where DispatchChild sends each child's first step. */
  stepQueue: sqs.IQueue;
  recordChildFailure: lambda.IFunction;
  aggregate: lambda.IFunction;
}

export function createFanOut(scope: Construct, props: FanOutProps): { stateMachine: sfn.StateMachine; role: iam.Role } {
  const { config, stateMachineName, stepQueue, recordChildFailure, aggregate } = props;
  const fanOutLogs = new logs.LogGroup(scope, 'FanOutLogs', {
    // The /aws/vendedlogs/ prefix keeps Step Functions from growing the account's log resource policy.
    logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
    retention: props.logRetention,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, 'FanOutRole', {
    assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
    description: `branch-spawner ${config.team} fan-out state machine`,
  });
  // DispatchChild sends a child's first step (step 0): the start lane only.
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [stepQueue.queueArn] }));
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['lambda:InvokeFunction'],
      resources: [recordChildFailure.functionArn, aggregate.functionArn],
    }),
  );
  const stateMachine = new sfn.StateMachine(scope, 'FanOut', {
    stateMachineName,
    stateMachineType: sfn.StateMachineType.STANDARD,
    definitionBody: sfn.DefinitionBody.fromFile(FAN_OUT_ASL_PATH),
    definitionSubstitutions: {
      StepQueueUrl: stepQueue.queueUrl,
      RecordChildFailureFunctionArn: recordChildFailure.functionArn,
      AggregateFunctionArn: aggregate.functionArn,
    },
    role,
    // Execution data holds task tokens and branch ids: kept out of the logs unless the team opts in.
    logs: {
      destination: fanOutLogs,
      level: sfn.LogLevel[config.stateMachineLogging.level],
      includeExecutionData: config.stateMachineLogging.includeExecutionData,
    },
    tracingEnabled: true,
  });
  return { stateMachine, role };
}

/** One deployable stack per team: `branch-spawner-<team>`. */
import { CfnOutput, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BranchSpawner } from './branch-spawner';
import { acknowledgeNagFindings } from './nag-acknowledgements';
import { stackNameFor, type TeamConfig } from '../functions/team-config';

export interface BranchSpawnerStackProps extends Omit<StackProps, 'env'> {
  config: TeamConfig;
}

export class BranchSpawnerStack extends Stack {
  readonly spawner: BranchSpawner;

  constructor(scope: Construct, id: string, props: BranchSpawnerStackProps) {
    const { config, ...rest } = props;
    super(scope, id, {
      stackName: stackNameFor(config.team),
      description: `branch-spawner for team ${config.team}: agent branch trees on SQS, DynamoDB and Step Functions`,
      // Env-agnostic unless the team pins an account/region: synth needs no credentials either way.
      ...(config.account || config.region ? { env: { account: config.account, region: config.region } } : {}),
      ...rest,
    });
    Tags.of(this).add('branch-spawner:team', config.team);

    this.spawner = new BranchSpawner(this, 'BranchSpawner', { config });
    acknowledgeNagFindings(this.spawner);

    const s = this.spawner;
    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('ApiUrl', s.api.url, 'REST API base URL (IAM/SigV4 or JWT auth): POST {ApiUrl}runs');
    output('EventBusName', s.eventBus.eventBusName, 'Team event bus: RunRequested in, lifecycle events out');
    output('TableName', s.table.tableName, 'DynamoDB table (retained on destroy)');
    output('StepQueueUrl', s.stepQueue.queueUrl, 'SQS queue of branch steps, start lane (first steps)');
    output('ContinueQueueUrl', s.continueQueue.queueUrl, 'SQS queue of branch steps, continue lane (resumed parents, hand-offs)');
    output('StepDlqUrl', s.stepDlq.queueUrl, 'Dead-letter queue of branch steps');
    output('TriggerDlqUrl', s.triggerDlq.queueUrl, 'Dead-letter queue of run requests the trigger could not take');
    output('StateMachineArn', s.stateMachine.stateMachineArn, 'Fan-out state machine');
    output('DashboardName', s.dashboard.dashboardName, 'CloudWatch dashboard');
    output('AlarmTopicArn', s.alarmTopic.topicArn, 'SNS topic of the alarms');
  }
}

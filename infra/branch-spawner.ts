/**
 * One team's branch-spawner: table, two step queues (one per lane), six functions, the fan-out state
 * machine, the REST API, the team event bus, alarms and a dashboard, with least-privilege grants.
 * Each part is made by its own module, in this construct's scope, so every resource keeps the
 * logical id of a deployed stack:
 *
 * | part                                        | module                     |
 * | ------------------------------------------- | -------------------------- |
 * | table, its key, the large values' bucket    | spawner-storage.ts         |
 * | step lanes, step DLQ, trigger DLQ           | spawner-queues.ts          |
 * | event bus, archive, run requests → trigger  | spawner-events.ts          |
 * | functions, their environment, event sources| spawner-functions.ts       |
 * | fan-out state machine, its role and logs    | fan-out-state-machine.ts   |
 * | each function's grants                      | function-grants.ts         |
 * | REST API                                    | spawner-api.ts             |
 * | alarms, alarm topic, dashboard              | spawner-monitoring.ts      |
 */
import { Stack, type Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { MetricName } from '../functions/handlers/observability';
import type { TeamConfig } from '../functions/team-config';
import { createFanOut, fanOutNames } from './fan-out-state-machine';
import { FUNCTION_NEEDS, grantFunctionNeeds, type Need } from './function-grants';
import { createApi } from './spawner-api';
import { createEventBus, routeRunRequests } from './spawner-events';
import type { SpawnerFunction, SpawnerFunctionName } from './spawner-function';
import { checkRegistry, connectQueues, createFunctions, DLQ_HANDLER_TIMEOUT, WORKER_TIMEOUT } from './spawner-functions';
import { createMonitoring, spawnerMetric } from './spawner-monitoring';
import { createQueues } from './spawner-queues';
import { createStorage } from './spawner-storage';

export interface BranchSpawnerProps {
  config: TeamConfig;
  logRetention?: logs.RetentionDays;
}

export class BranchSpawner extends Construct {
  readonly config: TeamConfig;
  readonly table: dynamodb.Table;
  readonly tableKey?: kms.Key;
  /** Large values (the claim check, docs/large-values.md): encrypted, private, SSL only, expired with the runs. */
  readonly blobBucket: s3.Bucket;
  /** The start lane: a branch's first step (the root, every child the fan-out dispatches). */
  readonly stepQueue: sqs.Queue;
  /** The continue lane: later steps (a parent resumed after its fan-in, the next agent of a hand-off). */
  readonly continueQueue: sqs.Queue;
  readonly stepDlq: sqs.Queue;
  readonly triggerDlq: sqs.Queue;
  readonly eventBus: events.EventBus;
  readonly archive: events.Archive;
  readonly functions: Record<SpawnerFunctionName, SpawnerFunction>;
  readonly stateMachineName: string;
  readonly stateMachine: sfn.StateMachine;
  readonly stateMachineRole: iam.Role;
  readonly api: apigw.RestApi;
  readonly alarmTopic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: BranchSpawnerProps) {
    super(scope, id);
    const { config } = props;
    this.config = config;
    const stack = Stack.of(this);
    const team = config.team;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    const storage = createStorage(this, config);
    this.table = storage.table;
    this.tableKey = storage.tableKey;
    this.blobBucket = storage.blobBucket;

    const queues = createQueues(this, { stepWorker: WORKER_TIMEOUT, dlqHandler: DLQ_HANDLER_TIMEOUT });
    ({ stepQueue: this.stepQueue, continueQueue: this.continueQueue, stepDlq: this.stepDlq, triggerDlq: this.triggerDlq } = queues);

    ({ eventBus: this.eventBus, archive: this.archive } = createEventBus(this, team));

    // The functions name the machine's ARN before it exists (see fanOutNames).
    const { stateMachineName, stateMachineArn, executionsArn } = fanOutNames(stack, team);
    this.stateMachineName = stateMachineName;

    checkRegistry(this, config);
    this.functions = createFunctions(this, {
      config,
      resources: {
        tableName: this.table.tableName,
        stepQueueUrl: this.stepQueue.queueUrl,
        continueQueueUrl: this.continueQueue.queueUrl,
        stateMachineArn,
        eventBusName: this.eventBus.eventBusName,
        blobBucket: this.blobBucket.bucketName,
      },
      logRetention,
      triggerDlq: this.triggerDlq,
    });
    connectQueues(this.functions, queues, config);

    ({ stateMachine: this.stateMachine, role: this.stateMachineRole } = createFanOut(this, {
      config,
      stateMachineName,
      logRetention,
      stepQueue: this.stepQueue,
      recordChildFailure: this.functions['record-child-failure'],
      aggregate: this.functions.aggregate,
    }));

    grantFunctionNeeds(stack, this.functions, { ...storage, ...queues, config, eventBus: this.eventBus, stateMachineArn, executionsArn });

    this.api = createApi(this, config, this.functions.api, logRetention);

    routeRunRequests(this, team, { eventBus: this.eventBus, trigger: this.functions.trigger, triggerDlq: this.triggerDlq });

    ({ alarmTopic: this.alarmTopic, alarms: this.alarms, dashboard: this.dashboard } = createMonitoring(
      this,
      { ...queues, team, alarmEmail: config.alarmEmail, stateMachine: this.stateMachine, functions: this.functions, api: this.api },
      `branch-spawner-${team}-${stack.region}`,
    ));
  }

  /** What a function's role was granted (see FUNCTION_NEEDS). */
  functionNeeds(name: SpawnerFunctionName): readonly Need[] {
    return FUNCTION_NEEDS[name];
  }

  /** A metric the handlers emit, in this team's series. */
  spawnerMetric(name: MetricName, options: { statistic?: string; period?: Duration } = {}): cloudwatch.Metric {
    return spawnerMetric(this.config.team, name, options);
  }
}

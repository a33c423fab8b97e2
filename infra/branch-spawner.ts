/**
 * One team's branch-spawner: table, two step queues (one per lane), six functions, the fan-out state
 * machine, the REST API, the team event bus, alarms and a dashboard, with least-privilege grants.
 */
import { Annotations, ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { GSI1, TTL_ATTRIBUTE, tableSchema } from '../adapters/dynamodb';
import { FAN_OUT_ASL_PATH } from '../adapters/stepfunctions/fan-out-definition';
import { S3_BLOB_PREFIX } from '../adapters/blobs/blob-keys';
import { toLambdaEnvironment } from '../functions/lambda-environment';
import { continueLaneConcurrency, MAX_RECEIVE_COUNT } from '../core/step-lanes';
import { STEP_WORKER_TIMEOUT_SECONDS } from '../core/limits';
import { bedrockGrants, lambdaAgentArns, type BedrockGrants } from './agent-grants';
import { SpawnerFunction, type SpawnerFunctionName } from './spawner-function';
import { METRIC_NAMESPACE, METRIC_SERVICE, METRICS, type MetricName } from '../functions/handlers/observability';
import { workerReservedConcurrency, type TeamConfig } from '../functions/team-config';
import { functionMemoryMb } from '../functions/function-memory';

export { FAN_OUT_ASL_PATH };

/** EventBridge `source` of run requests (lifecycle events use `branch-spawner`; keeping them apart avoids loops). */
export const RUN_REQUESTED_SOURCE = 'branch-spawner.client';
export const RUN_REQUESTED_DETAIL_TYPE = 'RunRequested';

/**
 * An agent call can be slow (LLMs); the queue's visibility is six times this (AWS's advice for SQS
 * sources). Agent calls are bounded below it (core/limits.ts, agentTimeoutSeconds).
 */
export const WORKER_TIMEOUT = Duration.seconds(STEP_WORKER_TIMEOUT_SECONDS);
export { MAX_RECEIVE_COUNT };

/** Alarm thresholds on the handlers' metrics (each must hold for three 5-minute periods). */
export const BRANCH_FAILURE_RATE_ALARM_PERCENT = 50;
export const AGENT_LATENCY_ALARM_MS = 120_000;
export const FAN_IN_LATENCY_ALARM_MS = 30_000;
/** The dlq-handler consumes the step DLQ, so that queue's visibility is six times this (AWS refuses less than once). */
export const DLQ_HANDLER_TIMEOUT = Duration.seconds(60);
/** The dlq-handler's event source runs at most this many at once (Lambda's minimum). */
export const DLQ_HANDLER_MAX_CONCURRENCY = 2;
/** Step queue messages older than this raise an alarm: the workers do not keep up. */
export const STEP_QUEUE_AGE_ALARM_SECONDS = 300;

// Lambda allows 4 KB of environment in total; the registry must leave room for the rest.
const MAX_REGISTRY_ENV_BYTES = 3 * 1024;

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
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: BranchSpawnerProps) {
    super(scope, id);
    const { config } = props;
    this.config = config;
    const stack = Stack.of(this);
    const team = config.team;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // ---- DynamoDB: the same definition the local engines create (adapters/dynamodb/table.ts).
    if (config.tableEncryption === 'customer-managed') {
      this.tableKey = new kms.Key(this, 'TableKey', {
        description: `branch-spawner ${team} table`,
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }
    this.table = createTable(this, this.tableKey);
    this.blobBucket = createBlobBucket(this, config, this.tableKey);

    // ---- SQS: branch steps in two lanes (core/step-lanes.ts), each queue with the same settings
    // and the same DLQ after MAX_RECEIVE_COUNT failed deliveries. With one queue, a parent resumed
    // after its fan-in would wait behind every leaf step queued before it once the step-worker's
    // event source is at its maximum concurrency.
    this.stepDlq = new sqs.Queue(this, 'StepDlq', {
      // An event source queue's visibility must cover its function's timeout (dlq-handler below).
      visibilityTimeout: Duration.seconds(DLQ_HANDLER_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const stepQueueProps: sqs.QueueProps = {
      visibilityTimeout: Duration.seconds(WORKER_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.stepDlq, maxReceiveCount: MAX_RECEIVE_COUNT },
    };
    this.stepQueue = new sqs.Queue(this, 'StepQueue', stepQueueProps);
    this.continueQueue = new sqs.Queue(this, 'ContinueQueue', stepQueueProps);
    // Run requests that the trigger could not take (EventBridge delivery or the function's own retries).
    this.triggerDlq = new sqs.Queue(this, 'TriggerDlq', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });

    // ---- EventBridge: the team bus (run requests in, lifecycle events out) and its archive.
    this.eventBus = new events.EventBus(this, 'EventBus', { eventBusName: `branch-spawner-${team}` });
    this.archive = this.eventBus.archive('Archive', {
      description: `branch-spawner ${team}: every event on the team bus, for replay`,
      eventPattern: { account: [stack.account] },
      retention: Duration.days(30),
    });
    // CDK writes `KmsKeyIdentifier: ""` when no key is given (aws/aws-cdk#37847), which some
    // Regions refuse at deploy time; without the property the archive uses an AWS owned key.
    (this.archive.node.defaultChild as events.CfnArchive).addPropertyDeletionOverride('KmsKeyIdentifier');

    // ---- The cycle: the state machine names the task functions' ARNs and the functions need the
    // state machine's ARN. The machine gets a fixed name, so its ARN is built from the name with
    // pseudo-parameters only (no reference to the resource): functions → name ← machine, no loop.
    this.stateMachineName = `branch-spawner-${team}-fan-out`;
    const stateMachineArn = stack.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: this.stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const executionsArn = stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${this.stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    // ---- Functions.
    const registryJson = JSON.stringify(config.agents); // as toLambdaEnvironment writes it
    if (Buffer.byteLength(registryJson) > MAX_REGISTRY_ENV_BYTES) {
      throw new Error(
        `team ${team}: agents: the registry is ${Buffer.byteLength(registryJson)} bytes as AGENT_REGISTRY; ` +
          `Lambda environment variables are limited to 4 KB in total (keep it under ${MAX_REGISTRY_ENV_BYTES} bytes)`,
      );
    }
    for (const [name, agent] of Object.entries(config.agents)) {
      for (const [i, tool] of (Array.isArray(agent.tools) ? agent.tools : []).entries()) {
        const module = (tool as { kind?: unknown; module?: unknown } | null)?.kind === 'module' ? String((tool as { module: unknown }).module) : undefined;
        // Bundled into the step worker: a module tool whose file was not found at synth would fail every step that offers it.
        if (module !== undefined && !config.toolModules?.[module]) {
          throw new Error(`team ${team}: agents.${name}.tools.${i}.module: ${module} is not a file the config names (loadTeamConfig resolves module tools)`);
        }
      }
      if (agent.kind === 'openai' && typeof agent.apiKeyEnv === 'string' && !config.secrets[agent.apiKeyEnv]) {
        // A key in a plain Lambda environment variable would be readable by anyone who can read the function.
        Annotations.of(this).addWarningV2(
          'branch-spawner:openai-api-key',
          `agents.${name}: the stack does not provision ${agent.apiKeyEnv}; name its secret in the team config's "secrets" (Secrets Manager or SSM Parameter Store) before this agent can run`,
        );
      }
    }
    const environment = toLambdaEnvironment({
      team,
      tableName: this.table.tableName,
      stepQueueUrl: this.stepQueue.queueUrl,
      continueQueueUrl: this.continueQueue.queueUrl,
      stateMachineArn,
      eventBusName: this.eventBus.eventBusName,
      agentRegistry: config.agents,
      allowInlineScript: config.allowInlineScriptAgents,
      limitMaxima: config.limitMaxima,
      maxBodyBytes: config.maxBodyBytes,
      ...(config.runTtlDays ? { runTtlSeconds: config.runTtlDays * 86_400 } : {}),
      blobBucket: this.blobBucket.bucketName,
      // Names of the secrets only; the step-worker fetches the values (functions/lambda/secrets.ts).
      secretSources: config.secrets,
      // The Cognito authorizer checks the pool; the API handler checks the app client (functions/handlers/api.ts).
      ...(config.auth.type === 'jwt' ? { audience: [config.auth.audience].flat() } : {}),
      shareRuns: config.shareRuns,
      events: config.events,
      toolValues: config.toolValues,
    });
    const reserved = workerReservedConcurrency(config);
    const fn = (name: SpawnerFunctionName, id: string, extra: Partial<ConstructorParameters<typeof SpawnerFunction>[2]> = {}) =>
      new SpawnerFunction(this, id, {
        name,
        description: `branch-spawner ${team} ${name}`,
        environment,
        logRetention,
        aggregatorsModule: config.aggregators,
        ...extra,
      });
    this.functions = {
      // API Gateway gives up on an integration after 29 s.
      api: fn('api', 'ApiFunction', { timeout: Duration.seconds(29) }),
      trigger: fn('trigger', 'TriggerFunction', {
        timeout: Duration.seconds(30),
        retryAttempts: 2,
        deadLetterQueue: this.triggerDlq,
      }),
      'step-worker': fn('step-worker', 'StepWorkerFunction', {
        timeout: WORKER_TIMEOUT,
        // The registry's module tools run in the step worker, bundled in (functions/lambda/team-tools.ts).
        ...(config.toolModules ? { toolModules: config.toolModules } : {}),
        // Measured per agent kind (docs/performance.md, "Right-sized workers"); a team setting.
        memorySize: functionMemoryMb('step-worker', config),
        // The worker sends hand-offs, re-asks and resumed parents to the queues it reads, on
        // purpose (each branch is bounded by maxStepsPerBranch, each run by its limits). The AWS
        // SDK copies the invocation's trace header onto every SendMessage (its recursion
        // detection middleware), so Lambda's loop detection would stop a chain after ~16 hops.
        recursiveLoop: lambda.RecursiveLoop.ALLOW,
        // Reserved: the lanes' event sources never find the account's concurrency taken by other
        // functions (throttled batches come back only after the queue's visibility timeout).
        ...(reserved === undefined ? {} : { reservedConcurrentExecutions: reserved }),
      }),
      'record-child-failure': fn('record-child-failure', 'RecordChildFailureFunction', { timeout: Duration.seconds(60) }),
      aggregate: fn('aggregate', 'AggregateFunction', { timeout: Duration.seconds(120) }),
      'dlq-handler': fn('dlq-handler', 'DlqHandlerFunction', { timeout: DLQ_HANDLER_TIMEOUT }),
    };
    // Dead-lettered steps end their branch FAILED so the run cannot hang (functions/handlers/dlq-handler.ts).
    this.functions['dlq-handler'].addEventSource(
      // Lambda's minimum: dead-lettered steps are rare, and must not take concurrency from the lanes.
      new SqsEventSource(this.stepDlq, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: DLQ_HANDLER_MAX_CONCURRENCY }),
    );
    // The step-worker consumes both lanes, each with its own event source and concurrency: the
    // continue lane's consumers are never busy with leaf steps.
    const lanes: [sqs.Queue, number][] = [
      [this.stepQueue, config.workerMaxConcurrency],
      [this.continueQueue, continueLaneConcurrency(config.workerMaxConcurrency)],
    ];
    // workerReservedConcurrency (team-config.ts) covers both lanes' maxima: an event source is
    // never throttled by the function's own reservation.
    for (const [queue, maxConcurrency] of lanes) {
      this.functions['step-worker'].addEventSource(
        new SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency }),
      );
    }

    // ---- Step Functions: the shared ASL file, with the three names substituted by CloudFormation.
    const fanOutLogs = new logs.LogGroup(this, 'FanOutLogs', {
      // The /aws/vendedlogs/ prefix keeps Step Functions from growing the account's log resource policy.
      logGroupName: `/aws/vendedlogs/states/${this.stateMachineName}`,
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachineRole = new iam.Role(this, 'FanOutRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: `branch-spawner ${team} fan-out state machine`,
    });
    // DispatchChild sends a child's first step (step 0): the start lane only.
    this.stateMachineRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.stepQueue.queueArn] }),
    );
    this.stateMachineRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [this.functions['record-child-failure'].functionArn, this.functions.aggregate.functionArn],
      }),
    );
    this.stateMachine = new sfn.StateMachine(this, 'FanOut', {
      stateMachineName: this.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(FAN_OUT_ASL_PATH),
      definitionSubstitutions: {
        StepQueueUrl: this.stepQueue.queueUrl,
        RecordChildFailureFunctionArn: this.functions['record-child-failure'].functionArn,
        AggregateFunctionArn: this.functions.aggregate.functionArn,
      },
      role: this.stateMachineRole,
      // Execution data holds task tokens and branch ids: kept out of the logs unless the team opts in.
      logs: {
        destination: fanOutLogs,
        level: sfn.LogLevel[config.stateMachineLogging.level],
        includeExecutionData: config.stateMachineLogging.includeExecutionData,
      },
      tracingEnabled: true,
    });

    // ---- Least-privilege grants, per function.
    const agentLambdaArns = lambdaAgentArns(stack, config.agents);
    const agentModels = bedrockGrants(stack, config.agents);
    for (const [name, f] of Object.entries(this.functions) as [SpawnerFunctionName, SpawnerFunction][]) {
      for (const need of FUNCTION_NEEDS[name]) {
        for (const statement of this.statementsFor(need, { stateMachineArn, executionsArn, agentLambdaArns, agentModels })) {
          f.addToRolePolicy(statement);
        }
      }
    }

    // ---- API Gateway (REST).
    this.api = createApi(this, config, this.functions.api, logRetention);

    // ---- Run requests from EventBridge → trigger (bounded retries, then the trigger DLQ).
    new events.Rule(this, 'RunRequestedRule', {
      eventBus: this.eventBus,
      description: `branch-spawner ${team}: start a run from a ${RUN_REQUESTED_DETAIL_TYPE} event`,
      eventPattern: { source: [RUN_REQUESTED_SOURCE], detailType: [RUN_REQUESTED_DETAIL_TYPE] },
      targets: [
        new eventTargets.LambdaFunction(this.functions.trigger, {
          deadLetterQueue: this.triggerDlq,
          retryAttempts: 2,
          maxEventAge: Duration.hours(2),
        }),
      ],
    });

    // ---- Alarms → SNS (email when configured) and a dashboard.
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', { displayName: `branch-spawner ${team} alarms`, enforceSSL: true });
    if (config.alarmEmail) this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    this.createAlarms();
    this.dashboard = this.createDashboard(`branch-spawner-${team}-${stack.region}`);
  }

  /** What a function's role was granted (see FUNCTION_NEEDS). */
  functionNeeds(name: SpawnerFunctionName): readonly Need[] {
    return FUNCTION_NEEDS[name];
  }

  private statementsFor(
    need: Need,
    arns: { stateMachineArn: string; executionsArn: string; agentLambdaArns: string[]; agentModels: BedrockGrants },
  ): iam.PolicyStatement[] {
    switch (need) {
      case 'table': {
        const statements = [
          new iam.PolicyStatement({ actions: TABLE_DATA_ACTIONS, resources: [this.table.tableArn] }),
          new iam.PolicyStatement({ actions: ['dynamodb:Query'], resources: [`${this.table.tableArn}/index/${GSI1}`] }),
        ];
        if (this.tableKey) {
          statements.push(
            new iam.PolicyStatement({
              // Spelled out (no GenerateDataKey*/ReEncrypt*) and only through DynamoDB.
              actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:DescribeKey', 'kms:GenerateDataKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
              resources: [this.tableKey.keyArn],
              conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com` } },
            }),
          );
        }
        return statements;
      }
      case 'blobs': {
        // Objects under the blob prefix only: get and put (content-addressed, never listed or deleted).
        const statements = [new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:PutObject'], resources: [this.blobBucket.arnForObjects(`${S3_BLOB_PREFIX}*`)] })];
        if (this.tableKey) {
          statements.push(
            new iam.PolicyStatement({
              actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
              resources: [this.tableKey.keyArn],
              conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
            }),
          );
        }
        return statements;
      }
      case 'sendSteps':
        // Both lanes (core/step-lanes.ts picks one per message). SendMessageBatch is authorized by sqs:SendMessage.
        return [new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.stepQueue.queueArn, this.continueQueue.queueArn] })];
      case 'startExecution':
        return [
          new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [arns.stateMachineArn] }),
          // A repeated start (same execution name) compares inputs with DescribeExecution.
          new iam.PolicyStatement({ actions: ['states:DescribeExecution'], resources: [arns.executionsArn] }),
        ];
      case 'taskResponse':
        // Authorized against the state machine that issued the token (as CDK's grantTaskResponse does);
        // the code only ever reports success (a child's outcome is in DynamoDB, not in the token).
        return [new iam.PolicyStatement({ actions: ['states:SendTaskSuccess'], resources: [arns.stateMachineArn] })];
      case 'stopExecutions':
        // Execution names are per sync point (made at run time): only this machine's executions.
        return [new iam.PolicyStatement({ actions: ['states:StopExecution'], resources: [arns.executionsArn] })];
      case 'putEvents':
        return [new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [this.eventBus.eventBusArn] })];
      case 'agents': {
        const statements: iam.PolicyStatement[] = secretStatements(Stack.of(this), this.config.secrets);
        if (arns.agentLambdaArns.length) {
          statements.push(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: arns.agentLambdaArns }));
        }
        if (arns.agentModels.resources.length) {
          statements.push(new iam.PolicyStatement({ actions: ['bedrock:InvokeModel'], resources: arns.agentModels.resources }));
        }
        for (const { profileArn, modelArn } of arns.agentModels.throughProfiles) {
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

  private createAlarms(): void {
    const action = new cwActions.SnsAction(this.alarmTopic);
    const alarm = (id: string, metric: cloudwatch.IMetric, description: string) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `branch-spawner ${this.config.team}: ${description}`,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
      return a;
    };
    const minute = { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM };
    const fiveMinutes = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };
    // The dlq-handler drains the step DLQ at once, so its visible count stays near 0: what it
    // received is what went there (a redrive is not counted in NumberOfMessagesSent). The visible
    // count still tells when the handler itself fails to drain it.
    alarm('StepDlqReceivedAlarm', this.stepDlq.metricNumberOfMessagesReceived(fiveMinutes), 'branch steps were dead-lettered (the dlq-handler failed their branches)');
    alarm('StepDlqNotEmptyAlarm', this.stepDlq.metricApproximateNumberOfMessagesVisible(minute), 'branch steps are in the step DLQ');
    alarm('TriggerDlqNotEmptyAlarm', this.triggerDlq.metricApproximateNumberOfMessagesVisible(minute), 'run requests are in the trigger DLQ');
    alarm('FanOutFailedAlarm', this.stateMachine.metricFailed(fiveMinutes), 'fan-out executions failed');
    alarm('FanOutTimedOutAlarm', this.stateMachine.metricTimedOut(fiveMinutes), 'fan-out executions timed out');
    // A throttled SQS batch comes back only after the queue's visibility timeout.
    const throttles = Object.values(this.functions);
    alarm(
      'FunctionThrottlesAlarm',
      new cloudwatch.MathExpression({
        expression: throttles.map((_, i) => `t${i}`).join(' + '),
        usingMetrics: Object.fromEntries(throttles.map((f, i) => [`t${i}`, f.metricThrottles(fiveMinutes)])),
        period: Duration.minutes(5),
        label: 'throttled invocations (all functions)',
      }),
      'Lambda throttled the functions (reserved or account concurrency)',
    );
    alarm('StepWorkerErrorsAlarm', this.functions['step-worker'].metricErrors(fiveMinutes), 'the step-worker raised errors');
    alarm('ApiServerErrorsAlarm', this.api.metricServerError(fiveMinutes), 'the API answered 5xx');

    // On the handlers' own metrics (functions/handlers/observability.ts).
    const failureRate = new cloudwatch.MathExpression({
      expression: '100 * failed / (completed + failed)',
      usingMetrics: {
        failed: this.spawnerMetric(METRICS.branchesFailed, { statistic: cloudwatch.Stats.SUM }),
        completed: this.spawnerMetric(METRICS.branchesCompleted, { statistic: cloudwatch.Stats.SUM }),
      },
      period: Duration.minutes(5),
      label: 'branch failure rate (%)',
    });
    const threshold = (id: string, metric: cloudwatch.IMetric, value: number, periods: number, description: string) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold: value,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `branch-spawner ${this.config.team}: ${description}`,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
    };
    for (const [id, queue, lane] of [['StepQueueAgeAlarm', this.stepQueue, 'start'], ['ContinueQueueAgeAlarm', this.continueQueue, 'continue']] as const) {
      threshold(
        id,
        queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
        STEP_QUEUE_AGE_ALARM_SECONDS,
        1,
        `the ${lane} lane's oldest step waited over ${STEP_QUEUE_AGE_ALARM_SECONDS} s (the workers do not keep up)`,
      );
    }
    threshold('BranchFailureRateAlarm', failureRate, BRANCH_FAILURE_RATE_ALARM_PERCENT, 3, `more than ${BRANCH_FAILURE_RATE_ALARM_PERCENT}% of ended branches failed for 15 minutes`);
    threshold(
      'AgentLatencyAlarm',
      this.spawnerMetric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(99) }),
      AGENT_LATENCY_ALARM_MS,
      3,
      `agent calls took over ${AGENT_LATENCY_ALARM_MS / 1000} s (p99) for 15 minutes`,
    );
    threshold(
      'FanInLatencyAlarm',
      this.spawnerMetric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(99) }),
      FAN_IN_LATENCY_ALARM_MS,
      3,
      `settling a sync point took over ${FAN_IN_LATENCY_ALARM_MS / 1000} s (p99) for 15 minutes`,
    );
  }

  /** A metric the handlers emit, in this team's series. */
  spawnerMetric(name: MetricName, options: { statistic?: string; period?: Duration } = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName: name,
      dimensionsMap: { service: METRIC_SERVICE, team: this.config.team },
      period: options.period ?? Duration.minutes(5),
      statistic: options.statistic ?? cloudwatch.Stats.SUM,
    });
  }

  private createDashboard(dashboardName: string): cloudwatch.Dashboard {
    const fns = Object.values(this.functions);
    const fiveMinutes = { period: Duration.minutes(5) };
    return new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName,
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'API requests and errors',
            left: [this.api.metricCount(fiveMinutes), this.api.metricClientError(fiveMinutes), this.api.metricServerError(fiveMinutes)],
            right: [this.api.metricLatency({ ...fiveMinutes, statistic: cloudwatch.Stats.p(99) })],
          }),
          new cloudwatch.GraphWidget({
            title: 'Step queues (start and continue lanes)',
            left: [
              this.stepQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'start: visible' }),
              this.stepQueue.metricApproximateNumberOfMessagesNotVisible({ ...fiveMinutes, label: 'start: in flight' }),
              this.continueQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'continue: visible' }),
              this.continueQueue.metricApproximateNumberOfMessagesNotVisible({ ...fiveMinutes, label: 'continue: in flight' }),
            ],
            right: [
              this.stepQueue.metricApproximateAgeOfOldestMessage({ ...fiveMinutes, label: 'start: oldest (s)' }),
              this.continueQueue.metricApproximateAgeOfOldestMessage({ ...fiveMinutes, label: 'continue: oldest (s)' }),
            ],
          }),
          new cloudwatch.GraphWidget({
            title: 'Dead-letter queues',
            left: [
              this.stepDlq.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'step DLQ' }),
              this.triggerDlq.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'trigger DLQ' }),
            ],
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Fan-out executions',
            left: [
              this.stateMachine.metricStarted(fiveMinutes),
              this.stateMachine.metricSucceeded(fiveMinutes),
              this.stateMachine.metricFailed(fiveMinutes),
              this.stateMachine.metricAborted(fiveMinutes),
              this.stateMachine.metricTimedOut(fiveMinutes),
            ],
          }),
          new cloudwatch.GraphWidget({
            title: 'Function errors',
            left: fns.map((f) => f.metricErrors({ ...fiveMinutes, label: f.spawnerName })),
          }),
          new cloudwatch.GraphWidget({
            title: 'Function duration p99',
            left: fns.map((f) => f.metricDuration({ ...fiveMinutes, statistic: cloudwatch.Stats.p(99), label: f.spawnerName })),
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Branches',
            left: [METRICS.branchesCreated, METRICS.branchesCompleted, METRICS.branchesFailed, METRICS.branchesCancelled].map((m) =>
              this.spawnerMetric(m),
            ),
          }),
          new cloudwatch.GraphWidget({
            title: 'Agent calls and fan-in (ms)',
            left: [
              this.spawnerMetric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(50) }),
              this.spawnerMetric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(99) }),
              this.spawnerMetric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(50) }),
              this.spawnerMetric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(99) }),
            ],
            right: [this.spawnerMetric(METRICS.agentErrors), this.spawnerMetric(METRICS.agentRetries)],
          }),
          new cloudwatch.GraphWidget({
            title: 'Tokens',
            left: [this.spawnerMetric(METRICS.inputTokens), this.spawnerMetric(METRICS.outputTokens)],
          }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 })],
      ],
    });
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

const RUN_BODY_SCHEMA: apigw.JsonSchema = {
  schema: apigw.JsonSchemaVersion.DRAFT4,
  title: 'RunRequest',
  type: apigw.JsonSchemaType.OBJECT,
  // The shape only; the api handler applies the full scenario rules (and the body size limit).
  required: ['name', 'entry'],
  properties: {
    name: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 128 },
    entry: { type: apigw.JsonSchemaType.STRING, minLength: 1 },
    agents: { type: apigw.JsonSchemaType.OBJECT },
    limits: { type: apigw.JsonSchemaType.OBJECT },
    failurePolicy: { type: apigw.JsonSchemaType.OBJECT },
  },
};

function createApi(scope: Construct, config: TeamConfig, handler: SpawnerFunction, logRetention: logs.RetentionDays): apigw.RestApi {
  const stack = Stack.of(scope);
  const accessLogs = new logs.LogGroup(scope, 'ApiAccessLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
  let methodOptions: apigw.MethodOptions = { authorizationType: apigw.AuthorizationType.IAM };
  if (config.auth.type === 'jwt') {
    const [, region, poolId] = /^https:\/\/cognito-idp\.([a-z0-9-]+)\.amazonaws\.com\/(.+)$/.exec(config.auth.issuer)!;
    const pool = cognito.UserPool.fromUserPoolArn(
      scope,
      'UserPool',
      stack.formatArn({ service: 'cognito-idp', region, resource: 'userpool', resourceName: poolId }),
    );
    const authorizer = new apigw.CognitoUserPoolsAuthorizer(scope, 'Authorizer', {
      cognitoUserPools: [pool],
      identitySource: apigw.IdentitySource.header('Authorization'),
    });
    methodOptions = { authorizationType: apigw.AuthorizationType.COGNITO, authorizer };
  }
  const api = new apigw.RestApi(scope, 'Api', {
    restApiName: `branch-spawner-${config.team}`,
    description: `branch-spawner ${config.team}: start and inspect runs`,
    endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
    // The API Gateway CloudWatch role is an account-wide setting, not one team's.
    cloudWatchRole: false,
    deployOptions: {
      stageName: 'v1',
      throttlingRateLimit: config.apiThrottle?.rateLimit ?? 50,
      throttlingBurstLimit: config.apiThrottle?.burstLimit ?? 100,
      accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
      accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields({
        caller: true,
        httpMethod: true,
        ip: true,
        protocol: true,
        requestTime: true,
        resourcePath: true,
        responseLength: true,
        status: true,
        user: true,
      }),
      tracingEnabled: true,
      metricsEnabled: true,
    },
    defaultMethodOptions: methodOptions,
  });
  // Errors API Gateway answers itself keep the product's `{"error","message"}` shape.
  api.addGatewayResponse('BadRequestBody', {
    type: apigw.ResponseType.BAD_REQUEST_BODY,
    statusCode: '400',
    templates: { 'application/json': '{"error":"ValidationError","message":"$context.error.validationErrorString"}' },
  });
  api.addGatewayResponse('Default4xx', {
    type: apigw.ResponseType.DEFAULT_4XX,
    templates: { 'application/json': '{"error":"$context.error.responseType","message":$context.error.messageString}' },
  });
  api.addGatewayResponse('Default5xx', {
    type: apigw.ResponseType.DEFAULT_5XX,
    templates: { 'application/json': '{"error":"$context.error.responseType","message":$context.error.messageString}' },
  });

  const validator = api.addRequestValidator('RequestValidator', {
    requestValidatorName: 'body-and-parameters',
    validateRequestBody: true,
    validateRequestParameters: true,
  });
  const runModel = api.addModel('RunRequestModel', { contentType: 'application/json', modelName: 'RunRequest', schema: RUN_BODY_SCHEMA });
  const integration = new apigw.LambdaIntegration(handler, { proxy: true, allowTestInvoke: false });
  const withId = { 'method.request.path.id': true };

  const runs = api.root.addResource('runs');
  runs.addMethod('POST', integration, {
    requestValidator: validator,
    requestModels: { 'application/json': runModel },
    requestParameters: { 'method.request.header.Idempotency-Key': false },
  });
  // A team's runs, newest first (each caller's own unless the team shares runs), a page at a time.
  runs.addMethod('GET', integration, {
    requestValidator: validator,
    requestParameters: { 'method.request.querystring.limit': false, 'method.request.querystring.cursor': false },
  });
  const run = runs.addResource('{id}');
  run.addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  const branches = run.addResource('branches');
  branches.addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  const branch = branches.addResource('{branchId}');
  branch.addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.branchId': true } });
  // One branch's whole result (large values are previewed elsewhere: docs/large-values.md).
  branch
    .addResource('result')
    .addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.branchId': true } });
  // A value kept by reference (a tool call's arguments or output: docs/llm-agents.md).
  run
    .addResource('values')
    .addResource('{ref}')
    .addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.ref': true } });
  run
    .addResource('tree')
    .addMethod('GET', integration, {
      requestValidator: validator,
      requestParameters: { ...withId, 'method.request.querystring.format': false },
    });
  run.addResource('metrics').addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  run.addResource('cancel').addMethod('POST', integration, { requestValidator: validator, requestParameters: withId });
  // The answer to a branch's callback (any JSON body; the handler checks it: docs/agents.md).
  run
    .addResource('callbacks')
    .addResource('{token}')
    .addMethod('POST', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.token': true } });
  run.addResource('events').addMethod('GET', integration, {
    requestValidator: validator,
    requestParameters: {
      ...withId,
      'method.request.querystring.after': false,
      'method.request.querystring.cursor': false,
      'method.request.querystring.limit': false,
    },
  });
  return api;
}

/**
 * The team stack's resources (issue step 4), asserted on the synthesized templates: research
 * (IAM auth, env-agnostic, bundled for real with esbuild) and platform (JWT, pinned env, KMS).
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GSI1, TTL_ATTRIBUTE, tableSchema } from '../../adapters/dynamodb';
import { FAN_OUT_ASL_PATH } from '../../adapters/stepfunctions/fan-out-definition';
import { configFromEnv } from '../../functions/lambda/aws-deps';
import { continueLaneConcurrency, laneOf } from '../../core/step-lanes';
import { MAX_RECEIVE_COUNT } from '../../core/step-lanes';
import { RUN_REQUESTED_SOURCE } from '../../infra/spawner-events';
import { functionEntry, PROJECT_ROOT, type SpawnerFunctionName } from '../../infra/spawner-function';
import { FUNCTION_MEMORY_MB } from '../../functions/function-memory';
import { API_METHODS } from '../../functions/handlers/api';
import { cfnText, functionOf, resourcesOf, stepQueuesOf, synthTeam, type Resource, type Synthesized } from './support';
import type { ToolDefinition } from '../../core/tools';

const NAMES: SpawnerFunctionName[] = ['api', 'trigger', 'step-worker', 'record-child-failure', 'aggregate', 'dlq-handler'];

let research: Synthesized;
let platform: Synthesized;
let t: Template;

beforeAll(() => {
  // Bundling is checked where the bundles run: test/local/rehearsal.test.ts.
  research = synthTeam('research', { bundle: false });
  platform = synthTeam('platform', { bundle: false });
  t = research.template;
});

function only(template: Template, type: string): [string, Resource] {
  const all = resourcesOf(template, type);
  expect(all).toHaveLength(1);
  return all[0];
}

function queueByRole(template: Template): { step: string; next: string; stepDlq: string; triggerDlq: string } {
  const lanes = stepQueuesOf(template);
  const trigger = functionOf(template, 'trigger');
  const triggerDlq = trigger.props.DeadLetterConfig.TargetArn['Fn::GetAtt'][0];
  return { step: lanes.start, next: lanes.continue, stepDlq: lanes.dlq, triggerDlq };
}

describe('stack', () => {
  it('is named branch-spawner-<team>; env-agnostic unless the team pins account and region', () => {
    expect(research.stack.stackName).toBe('branch-spawner-research');
    expect(research.stack.resolve(research.stack.account)).toEqual({ Ref: 'AWS::AccountId' });
    expect(research.stack.resolve(research.stack.region)).toEqual({ Ref: 'AWS::Region' });
    expect(platform.stack.account).toBe('111122223333');
    expect(platform.stack.region).toBe('eu-west-1');
  });
});

describe('DynamoDB table', () => {
  it('uses the key schema and GSI of adapters/dynamodb/table.ts', () => {
    const schema = tableSchema('x');
    const [, table] = only(t, 'AWS::DynamoDB::Table');
    expect(table.Properties.KeySchema).toEqual(schema.KeySchema);
    expect([...table.Properties.AttributeDefinitions].sort((a, b) => a.AttributeName.localeCompare(b.AttributeName))).toEqual(
      [...schema.AttributeDefinitions!].sort((a, b) => a.AttributeName!.localeCompare(b.AttributeName!)),
    );
    expect(table.Properties.GlobalSecondaryIndexes).toEqual(
      schema.GlobalSecondaryIndexes!.map((g) => ({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection })),
    );
    expect(table.Properties.GlobalSecondaryIndexes[0].IndexName).toBe(GSI1);
  });

  it('is on-demand, with PITR, TTL on expiresAt, encryption, and retained', () => {
    t.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        SSESpecification: { SSEEnabled: true },
      }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(TTL_ATTRIBUTE).toBe('expiresAt');
  });

  it('platform: customer-managed KMS key with rotation, retained', () => {
    const [keyId] = only(platform.template, 'AWS::KMS::Key');
    platform.template.hasResource('AWS::KMS::Key', { Properties: Match.objectLike({ EnableKeyRotation: true }), DeletionPolicy: 'Retain' });
    platform.template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } },
    });
  });
});

describe('SQS', () => {
  it('two step queues (start and continue lanes), both redriving to the one step DLQ after 5 receives, visibility ≥ 6× the worker timeout, SQS-managed SSE', () => {
    const { step, next, stepDlq } = queueByRole(t);
    expect(next).not.toBe(step);
    const worker = functionOf(t, 'step-worker');
    const redriving = resourcesOf(t, 'AWS::SQS::Queue').filter(([, q]) => q.Properties.RedrivePolicy);
    expect(redriving.map(([id]) => id).sort()).toEqual([step, next].sort());
    for (const id of [step, next]) {
      const queue = t.toJSON().Resources[id].Properties;
      expect(queue.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [stepDlq, 'Arn'] }, maxReceiveCount: 5 });
      expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * worker.props.Timeout);
      expect(queue.SqsManagedSseEnabled).toBe(true);
    }
    expect(MAX_RECEIVE_COUNT).toBe(5);
    // The same settings: a lane is only where a step waits, never how it is retried or kept.
    expect(t.toJSON().Resources[next].Properties).toEqual(t.toJSON().Resources[step].Properties);
  });

  it('every queue is SSE-encrypted and refuses non-TLS requests', () => {
    const queues = resourcesOf(t, 'AWS::SQS::Queue');
    expect(queues).toHaveLength(4);
    for (const [id, q] of queues) {
      expect(q.Properties.SqsManagedSseEnabled).toBe(true);
      t.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: Match.arrayWith([{ Ref: id }]),
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });
});

describe('Lambda functions', () => {
  it('six SpawnerFunctions: Node 22, arm64, active tracing, ESM bundle handler', () => {
    expect(resourcesOf(t, 'AWS::Lambda::Function')).toHaveLength(6);
    for (const name of NAMES) {
      const fn = functionOf(t, name);
      expect(fn.props).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        Handler: 'index.handler',
      });
      expect(fn.props.Environment.Variables).toMatchObject({
        POWERTOOLS_SERVICE_NAME: name,
        LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      });
    }
  });

  it('each logs to its own log group with a retention', () => {
    for (const name of NAMES) {
      const fn = functionOf(t, name);
      const logGroupId = fn.props.LoggingConfig.LogGroup.Ref;
      expect(t.toJSON().Resources[logGroupId]).toMatchObject({ Type: 'AWS::Logs::LogGroup', Properties: { RetentionInDays: 30 } });
    }
  });

  it('the environment satisfies functions/lambda/aws-deps.ts configFromEnv', () => {
    for (const name of NAMES) {
      const env = functionOf(t, name).props.Environment.Variables as Record<string, unknown>;
      const asStrings = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, cfnText(v)]));
      const config = configFromEnv(asStrings);
      expect(config.team).toBe('research');
      expect(config.policy).toEqual({ registry: research.config.agents, inline: 'script' });
      expect(config.limitMaxima).toEqual(research.config.limitMaxima);
      expect(config.ttlSeconds).toBe(30 * 86_400);
      expect(asStrings.MAX_BODY_BYTES).toBe(String(1024 * 1024));
      const { step, next } = queueByRole(t);
      expect(config.stepQueueUrl).toBe(`\${${step}}`);
      expect(config.continueQueueUrl).toBe(`\${${next}}`);
      expect(env.STEP_QUEUE_URL).toEqual({ Ref: step });
      expect(env.CONTINUE_QUEUE_URL).toEqual({ Ref: next });
      expect(env.TABLE_NAME).toEqual({ Ref: only(t, 'AWS::DynamoDB::Table')[0] });
      expect(env.EVENT_BUS_NAME).toEqual({ Ref: only(t, 'AWS::Events::EventBus')[0] });
    }
    const platformEnv = functionOf(platform.template, 'api').props.Environment.Variables;
    expect(platformEnv.ALLOW_INLINE_SCRIPT).toBe('false');
    expect(platformEnv.RUN_TTL_SECONDS).toBe(String(90 * 86_400));
  });

  it('the cycle is broken: STATE_MACHINE_ARN is built from the fixed name, not a reference to the machine', () => {
    const [smId, sm] = only(t, 'AWS::StepFunctions::StateMachine');
    expect(sm.Properties.StateMachineName).toBe('branch-spawner-research-fan-out');
    for (const name of NAMES) {
      const arn = functionOf(t, name).props.Environment.Variables.STATE_MACHINE_ARN;
      expect(JSON.stringify(arn)).not.toContain(smId);
      expect(cfnText(arn)).toBe('arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:branch-spawner-research-fan-out');
    }
    // Pinned env: the ARN is a plain string (but for the partition).
    expect(cfnText(functionOf(platform.template, 'step-worker').props.Environment.Variables.STATE_MACHINE_ARN)).toBe(
      'arn:${AWS::Partition}:states:eu-west-1:111122223333:stateMachine:branch-spawner-platform-fan-out',
    );
  });

  it('step-worker consumes both lanes, each with its own event source: batch 10, partial batch failures; start lane at the config\'s maximum concurrency, continue lane at half of it', () => {
    for (const [template, maximum] of [[t, 10], [platform.template, 50]] as const) {
      const { step, next } = queueByRole(template);
      const worker = functionOf(template, 'step-worker');
      const lane = (queue: string, concurrency: number) =>
        template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
          EventSourceArn: { 'Fn::GetAtt': [queue, 'Arn'] },
          FunctionName: { Ref: worker.id },
          BatchSize: 10,
          FunctionResponseTypes: ['ReportBatchItemFailures'],
          ScalingConfig: { MaximumConcurrency: concurrency },
        });
      lane(step, maximum);
      lane(next, continueLaneConcurrency(maximum));
      const workerSources = resourcesOf(template, 'AWS::Lambda::EventSourceMapping').filter(
        ([, m]) => m.Properties.FunctionName.Ref === worker.id,
      );
      expect(workerSources).toHaveLength(2);
    }
    expect([continueLaneConcurrency(10), continueLaneConcurrency(50), continueLaneConcurrency(2)]).toEqual([5, 25, 2]);
    // step-worker's two lanes and dlq-handler's DLQ.
    expect(resourcesOf(t, 'AWS::Lambda::EventSourceMapping')).toHaveLength(3);
  });

  it('dlq-handler consumes the step DLQ with partial batch failures (a poisoned step fails its branch)', () => {
    const { stepDlq } = queueByRole(t);
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [stepDlq, 'Arn'] },
      FunctionName: { Ref: functionOf(t, 'dlq-handler').id },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });
});

describe('function memory', () => {
  it('every function gets its size from the one table; the step-worker the team\'s own when it sets one', () => {
    for (const name of NAMES) {
      t.hasResourceProperties('AWS::Lambda::Function', {
        MemorySize: FUNCTION_MEMORY_MB[name],
        Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: name }) },
      });
    }
    const sized = synthTeam('research', { bundle: false, config: { workerMemoryMb: 384 } }).template;
    sized.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 384,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'step-worker' }) },
    });
    sized.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: FUNCTION_MEMORY_MB.api,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'api' }) },
    });
  });

  it('the team\'s event setting reaches every function\'s environment (none written for the default)', () => {
    for (const name of NAMES) expect(functionOf(t, name).props.Environment.Variables.BRANCH_EVENTS).toBeUndefined();
    const sampled = synthTeam('research', { bundle: false, config: { events: { branches: 'ends', sample: 0.1 } } }).template;
    sampled.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'step-worker', BRANCH_EVENTS: JSON.stringify({ branches: 'ends', sample: 0.1 }) }) },
    });
    const env = functionOf(sampled, 'step-worker').props.Environment.Variables as Record<string, unknown>;
    expect(configFromEnv(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, cfnText(v)]))).events).toEqual({ branches: 'ends', sample: 0.1 });
  });
});

describe('Step Functions', () => {
  it('Standard machine from the shared ASL file, with the three substitutions, logging errors without execution data, and tracing', () => {
    const [, sm] = only(t, 'AWS::StepFunctions::StateMachine');
    const { step } = queueByRole(t);
    expect(sm.Properties.StateMachineType).toBe('STANDARD');
    expect(sm.Properties.DefinitionSubstitutions).toEqual({
      StepQueueUrl: { Ref: step },
      RecordChildFailureFunctionArn: { 'Fn::GetAtt': [functionOf(t, 'record-child-failure').id, 'Arn'] },
      AggregateFunctionArn: { 'Fn::GetAtt': [functionOf(t, 'aggregate').id, 'Arn'] },
    });
    // DefinitionBody.fromFile uploads the file as an asset; its bytes are the shared file's.
    const key = sm.Properties.DefinitionS3Location.Key as string;
    const asl = readFileSync(join(research.app.outdir, `asset.${key}`), 'utf8');
    expect(asl).toBe(readFileSync(FAN_OUT_ASL_PATH, 'utf8'));
    // The machine's SQS task (DispatchChild) sends a child's first step to ${StepQueueUrl}: the
    // start lane's queue, the one the step-worker's STEP_QUEUE_URL names.
    const sends: Record<string, any>[] = [];
    JSON.parse(asl, (_key, value) => {
      if (value?.Type === 'Task' && String(value.Resource).startsWith('arn:aws:states:::sqs:sendMessage')) sends.push(value);
      return value;
    });
    expect(sends).toHaveLength(1);
    for (const task of sends) {
      expect(task.Parameters.QueueUrl).toBe('${StepQueueUrl}');
      const body = task.Parameters.MessageBody;
      expect(laneOf({ team: 'research', runId: 'r', branchId: 'root.0', step: body.step })).toBe('start');
    }
    const logGroupId = sm.Properties.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
    expect(sm.Properties.LoggingConfiguration).toMatchObject({ Level: 'ERROR', IncludeExecutionData: false });
    expect(t.toJSON().Resources[logGroupId].Properties.LogGroupName).toBe('/aws/vendedlogs/states/branch-spawner-research-fan-out');
    expect(sm.Properties.TracingConfiguration).toEqual({ Enabled: true });
  });
});

describe('API Gateway', () => {
  function routes(template: Template): string[] {
    const resources = template.toJSON().Resources as Record<string, Resource>;
    const pathOf = (ref: unknown): string => {
      if (ref && typeof ref === 'object' && 'Ref' in (ref as object)) {
        const r = resources[(ref as { Ref: string }).Ref];
        return `${pathOf(r.Properties.ParentId)}/${r.Properties.PathPart}`;
      }
      return ''; // the root resource (Fn::GetAtt RootResourceId)
    };
    return resourcesOf(template, 'AWS::ApiGateway::Method')
      .map(([, m]) => `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId)}`)
      .sort();
  }

  it('routes every operation to the api function (Lambda proxy)', () => {
    // The api function's list of its methods is the stack's (dev names resources from it).
    expect(routes(t)).toEqual([...API_METHODS].sort());
    const api = functionOf(t, 'api');
    for (const [, m] of resourcesOf(t, 'AWS::ApiGateway::Method')) {
      expect(m.Properties.Integration.Type).toBe('AWS_PROXY');
      expect(JSON.stringify(m.Properties.Integration.Uri)).toContain(api.id);
    }
  });

  it('IAM auth on every method by default', () => {
    for (const [, m] of resourcesOf(t, 'AWS::ApiGateway::Method')) expect(m.Properties.AuthorizationType).toBe('AWS_IAM');
    expect(resourcesOf(t, 'AWS::ApiGateway::Authorizer')).toHaveLength(0);
  });

  it('platform: a Cognito (JWT) authorizer on the configured user pool, on every method', () => {
    const [authorizerId, authorizer] = only(platform.template, 'AWS::ApiGateway::Authorizer');
    expect(authorizer.Properties).toMatchObject({ Type: 'COGNITO_USER_POOLS', IdentitySource: 'method.request.header.Authorization' });
    expect(cfnText(authorizer.Properties.ProviderARNs[0])).toBe(
      'arn:${AWS::Partition}:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_AbCdEf123',
    );
    for (const [, m] of resourcesOf(platform.template, 'AWS::ApiGateway::Method')) {
      expect(m.Properties).toMatchObject({ AuthorizationType: 'COGNITO_USER_POOLS', AuthorizerId: { Ref: authorizerId } });
    }
  });

  it('validates requests: the POST /runs body against a model, path parameters everywhere', () => {
    const [validatorId] = only(t, 'AWS::ApiGateway::RequestValidator');
    t.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    const [modelId, model] = only(t, 'AWS::ApiGateway::Model');
    expect(model.Properties.Schema).toMatchObject({ type: 'object', required: ['name', 'entry'] });
    for (const [, m] of resourcesOf(t, 'AWS::ApiGateway::Method')) {
      expect(m.Properties.RequestValidatorId).toEqual({ Ref: validatorId });
    }
    t.hasResourceProperties('AWS::ApiGateway::Method', { HttpMethod: 'POST', RequestModels: { 'application/json': { Ref: modelId } } });
    t.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET',
      RequestParameters: { 'method.request.path.id': true, 'method.request.querystring.format': false },
    });
  });

  it("lists a team's runs: GET /runs with limit and cursor, read from the table's GSI1 (no scan)", () => {
    t.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET',
      ResourceId: Match.objectLike({ Ref: Match.stringLikeRegexp('Apiruns') }),
      RequestParameters: { 'method.request.querystring.limit': false, 'method.request.querystring.cursor': false },
    });
    t.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: Match.arrayWith([Match.objectLike({ IndexName: 'GSI1', KeySchema: [{ AttributeName: 'GSI1PK', KeyType: 'HASH' }, { AttributeName: 'GSI1SK', KeyType: 'RANGE' }] })]),
    });
  });

  it('the stage is throttled, access-logged to a log group and traced; no account-wide CloudWatch role', () => {
    const [, stage] = only(t, 'AWS::ApiGateway::Stage');
    expect(stage.Properties).toMatchObject({
      StageName: 'v1',
      TracingEnabled: true,
      MethodSettings: [expect.objectContaining({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100, HttpMethod: '*', ResourcePath: '/*' })],
    });
    const logGroupId = stage.Properties.AccessLogSetting.DestinationArn['Fn::GetAtt'][0];
    expect(t.toJSON().Resources[logGroupId].Type).toBe('AWS::Logs::LogGroup');
    expect(JSON.parse(stage.Properties.AccessLogSetting.Format)).toMatchObject({ requestId: '$context.requestId', status: '$context.status' });
    platform.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 })]),
    });
    expect(resourcesOf(t, 'AWS::ApiGateway::Account')).toHaveLength(0);
  });

  it('errors API Gateway answers itself keep the {"error","message"} shape', () => {
    t.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'BAD_REQUEST_BODY',
      StatusCode: '400',
      ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"error":"ValidationError"') },
    });
    for (const type of ['DEFAULT_4XX', 'DEFAULT_5XX']) {
      t.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"error":') },
      });
    }
  });
});

describe('EventBridge', () => {
  it('a team bus, archived for replay', () => {
    const [busId] = only(t, 'AWS::Events::EventBus');
    t.hasResourceProperties('AWS::Events::EventBus', { Name: 'branch-spawner-research' });
    t.hasResourceProperties('AWS::Events::Archive', {
      SourceArn: { 'Fn::GetAtt': [busId, 'Arn'] },
      RetentionDays: 30,
      EventPattern: { account: [{ Ref: 'AWS::AccountId' }] },
    });
  });

  it('RunRequested (source branch-spawner.client) → trigger, 2 retries, then the trigger DLQ', () => {
    const [busId] = only(t, 'AWS::Events::EventBus');
    const trigger = functionOf(t, 'trigger');
    const { triggerDlq } = queueByRole(t);
    expect(RUN_REQUESTED_SOURCE).toBe('branch-spawner.client');
    t.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: busId },
      EventPattern: { source: ['branch-spawner.client'], 'detail-type': ['RunRequested'] },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [trigger.id, 'Arn'] },
          RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 2 }),
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [triggerDlq, 'Arn'] } },
        }),
      ],
    });
    // The function's own async retries (it throws on a malformed request) end in the same DLQ.
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: trigger.id }, MaximumRetryAttempts: 2 });
    expect(trigger.props.DeadLetterConfig).toEqual({ TargetArn: { 'Fn::GetAtt': [triggerDlq, 'Arn'] } });
  });
});

describe('alarms, notifications, dashboard', () => {
  function alarmOn(template: Template, metricName: string): Resource {
    const found = resourcesOf(template, 'AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.MetricName === metricName);
    expect(found.length).toBeGreaterThan(0);
    return found[0][1];
  }

  it('DLQs not empty, fan-out executions failed, worker errors → the alarm topic', () => {
    const [topicId] = only(t, 'AWS::SNS::Topic');
    const { stepDlq, triggerDlq } = queueByRole(t);
    const dlqAlarms = resourcesOf(t, 'AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(dlqAlarms.map(([, a]) => a.Properties.Dimensions[0].Value['Fn::GetAtt'][0]).sort()).toEqual([stepDlq, triggerDlq].sort());
    for (const [, a] of dlqAlarms) {
      expect(a.Properties).toMatchObject({ Namespace: 'AWS/SQS', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
    expect(alarmOn(t, 'ExecutionsFailed').Properties).toMatchObject({
      Namespace: 'AWS/States',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: only(t, 'AWS::StepFunctions::StateMachine')[0] } }],
    });
    const errors = resourcesOf(t, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === 'Errors' && a.Properties.Dimensions[0].Value.Ref === functionOf(t, 'step-worker').id,
    );
    expect(errors).toHaveLength(1);
    for (const [, a] of resourcesOf(t, 'AWS::CloudWatch::Alarm')) {
      expect(a.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(a.Properties.TreatMissingData).toBe('notBreaching');
    }
  });

  it('the topic is TLS-only; the email subscription exists only when configured', () => {
    expect(resourcesOf(t, 'AWS::SNS::Subscription')).toHaveLength(0);
    platform.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'platform-oncall@example.com' });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });

  it('a dashboard per team and region', () => {
    const [, dashboard] = only(t, 'AWS::CloudWatch::Dashboard');
    expect(cfnText(dashboard.Properties.DashboardName)).toBe('branch-spawner-research-${AWS::Region}');
    expect(cfnText(dashboard.Properties.DashboardBody)).toContain('Fan-out executions');
  });
});

describe('outputs', () => {
  it('API URL, bus, table, queues, state machine and dashboard', () => {
    const outputs = t.toJSON().Outputs as Record<string, { Value: unknown }>;
    const keys = Object.keys(outputs);
    for (const name of ['ApiUrl', 'EventBusName', 'TableName', 'StepQueueUrl', 'ContinueQueueUrl', 'StepDlqUrl', 'StateMachineArn', 'DashboardName']) {
      expect(keys).toContain(name);
    }
    const { step, next, stepDlq } = queueByRole(t);
    expect(outputs.TableName.Value).toEqual({ Ref: only(t, 'AWS::DynamoDB::Table')[0] });
    expect(outputs.StepQueueUrl.Value).toEqual({ Ref: step });
    expect(outputs.ContinueQueueUrl.Value).toEqual({ Ref: next });
    expect(outputs.StepDlqUrl.Value).toEqual({ Ref: stepDlq });
    expect(outputs.StateMachineArn.Value).toEqual({ Ref: only(t, 'AWS::StepFunctions::StateMachine')[0] });
    expect(outputs.EventBusName.Value).toEqual({ Ref: only(t, 'AWS::Events::EventBus')[0] });
    expect(cfnText(outputs.ApiUrl.Value)).toMatch(/^https:\/\/\$\{.+\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}\/\$\{.+\}\/$/);
  });
});

describe('module tools of the registry', () => {
  it('the step worker alone gets an entry that registers them before its handler; one whose file was not found stops the synth naming its field', () => {
    const tools = [{ kind: 'module', module: './tools/facts.ts', export: 'lookup' }] satisfies ToolDefinition[];
    const file = join(PROJECT_ROOT, 'test', 'support', 'rehearsal-tools.ts');
    const entry = readFileSync(functionEntry('step-worker', undefined, { './tools/facts.ts': file }), 'utf8');
    expect(entry).toContain(`import * as toolModule0 from ${JSON.stringify(file.replace(/\.ts$/, ''))};`);
    expect(entry).toContain('registerToolModules({ "./tools/facts.ts": toolModule0 });');
    expect(entry.indexOf('registerToolModules(')).toBeLessThan(entry.indexOf('export { handler }'));
    expect(functionEntry('api')).toBe(join(PROJECT_ROOT, 'functions', 'lambda', 'api.ts'));
    expect(() =>
      synthTeam('research', { bundle: false, config: { agents: { ...research.config.agents, Researcher: { kind: 'openai', model: 'm', tools } } } }),
    ).toThrow('team research: agents.Researcher.tools.0.module: ./tools/facts.ts is not a file the config names (loadTeamConfig resolves module tools)');
  });
});

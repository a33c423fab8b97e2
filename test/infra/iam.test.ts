/**
 * Least privilege, statement by statement: what each function's role may do, the state machine's
 * role, and that nothing grants a `*` action or a `*` resource where a resource can be named.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TABLE_DATA_ACTIONS } from '../../infra/function-grants';
import { PROJECT_ROOT, type SpawnerFunctionName } from '../../infra/spawner-function';
import {
  actionsOf,
  functionOf,
  resourcesOf,
  resourcesOfStatement,
  roleIdOf,
  statementLines,
  statementsOfRole,
  stepQueuesOf,
  synthTeam,
  type Statement,
  type Synthesized,
} from './support';

const NAMES: SpawnerFunctionName[] = ['api', 'trigger', 'step-worker', 'record-child-failure', 'aggregate', 'dlq-handler'];

// IAM is the same with or without the Lambda bundles: skip esbuild here.
let research: Synthesized;
let platform: Synthesized;

beforeAll(() => {
  research = synthTeam('research', { bundle: false });
  platform = synthTeam('platform', { bundle: false });
});

function idOf(template: Template, type: string, predicate: (props: Record<string, any>) => boolean = () => true): string {
  const found = resourcesOf(template, type).filter(([, r]) => predicate(r.Properties ?? {}));
  expect(found).toHaveLength(1);
  return found[0][0];
}

function statementsOf(template: Template, name: SpawnerFunctionName): Statement[] {
  return statementsOfRole(template, roleIdOf(functionOf(template, name)));
}

/** The expected statements of each function, as "actions → resources" lines. */
function expectedLines(template: Template, team: string, region: string, account: string): Record<SpawnerFunctionName, string[]> {
  const table = idOf(template, 'AWS::DynamoDB::Table');
  const bucket = idOf(template, 'AWS::S3::Bucket');
  const { start: stepQueue, continue: continueQueue, dlq: stepDlq } = stepQueuesOf(template);
  const triggerDlq = functionOf(template, 'trigger').props.DeadLetterConfig.TargetArn['Fn::GetAtt'][0];
  const consume = 'sqs:ChangeMessageVisibility,sqs:DeleteMessage,sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:ReceiveMessage';
  const bus = idOf(template, 'AWS::Events::EventBus');
  const stateMachine = `arn:\${AWS::Partition}:states:${region}:${account}:stateMachine:branch-spawner-${team}-fan-out`;
  const executions = `arn:\${AWS::Partition}:states:${region}:${account}:execution:branch-spawner-${team}-fan-out:*`;
  const logsOf = (name: SpawnerFunctionName) =>
    `logs:CreateLogStream,logs:PutLogEvents → \${${functionOf(template, name).props.LoggingConfig.LogGroup.Ref}.Arn}`;
  const common = (name: SpawnerFunctionName) => [
    logsOf(name),
    'xray:PutTelemetryRecords,xray:PutTraceSegments → *',
    `${[...TABLE_DATA_ACTIONS].sort().join(',')} → \${${table}.Arn}`,
    `dynamodb:Query → \${${table}.Arn}/index/GSI1`,
    // Large values (the claim check): get and put under the blob prefix, nothing else of the bucket.
    `s3:GetObject,s3:PutObject → \${${bucket}.Arn}/blobs/*`,
    // Both lanes: core/step-lanes.ts picks the queue per message.
    `sqs:SendMessage → \${${continueQueue}.Arn} | \${${stepQueue}.Arn}`,
    `events:PutEvents → \${${bus}.Arn}`,
  ];
  const fanIn = [
    `states:StartExecution → ${stateMachine}`,
    `states:DescribeExecution → ${executions}`,
    `states:SendTaskSuccess → ${stateMachine}`,
    `states:StopExecution → ${executions}`,
  ];
  return {
    api: [...common('api'), `states:StopExecution → ${executions}`],
    trigger: [...common('trigger'), `sqs:SendMessage → \${${triggerDlq}.Arn}`],
    'step-worker': [
      ...common('step-worker'),
      ...fanIn,
      // Its two event sources, one per lane.
      `${consume} → \${${stepQueue}.Arn}`,
      `${consume} → \${${continueQueue}.Arn}`,
    ],
    'record-child-failure': [...common('record-child-failure'), ...fanIn],
    aggregate: [...common('aggregate'), ...fanIn],
    'dlq-handler': [
      ...common('dlq-handler'),
      ...fanIn,
      `${consume} → \${${stepDlq}.Arn}`,
    ],
  };
}

describe('function roles (research: env-agnostic)', () => {
  it.each(NAMES)('%s has exactly its statements (plus the agent calls for step-worker)', (name) => {
    const expected = expectedLines(research.template, 'research', '${AWS::Region}', '${AWS::AccountId}')[name];
    if (name === 'step-worker') {
      expected.push(
        'lambda:InvokeFunction → arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:research-data-fetcher',
        'bedrock:InvokeModel → arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0',
      );
    }
    expect(statementLines(statementsOf(research.template, name))).toEqual(expected.sort());
  });

  it('every function has its own role and no managed policy', () => {
    const roles = new Set(NAMES.map((n) => roleIdOf(functionOf(research.template, n))));
    expect(roles.size).toBe(NAMES.length);
    for (const [, role] of resourcesOf(research.template, 'AWS::IAM::Role')) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  it('only step-worker may call agents: lambda:InvokeFunction and bedrock:InvokeModel nowhere else', () => {
    for (const name of NAMES.filter((n) => n !== 'step-worker')) {
      const actions = statementsOf(research.template, name).flatMap(actionsOf);
      expect(actions.filter((a) => a.startsWith('lambda:') || a.startsWith('bedrock:'))).toEqual([]);
    }
  });
});

describe('function roles (platform: pinned env, KMS table, ARN agents)', () => {
  it('step-worker may invoke exactly the registry lambda agents (a full ARN with qualifier, and a name) and the bedrock model in its region', () => {
    const statements = statementsOf(platform.template, 'step-worker');
    const invoke = statements.filter((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(actionsOf(invoke[0])).toEqual(['lambda:InvokeFunction']);
    expect(resourcesOfStatement(invoke[0]).sort()).toEqual([
      'arn:${AWS::Partition}:lambda:eu-west-1:111122223333:function:platform-reporter',
      'arn:aws:lambda:eu-west-1:111122223333:function:platform-triage:live',
    ]);
    const models = statements.filter((s) => actionsOf(s).includes('bedrock:InvokeModel'));
    expect(models.map(resourcesOfStatement)).toEqual([['arn:${AWS::Partition}:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0']]);
  });

  it('every function may use the table key only through DynamoDB and S3 (the blob bucket), with spelled-out actions', () => {
    const keyId = idOf(platform.template, 'AWS::KMS::Key');
    for (const name of NAMES) {
      const kms = statementsOf(platform.template, name).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      expect(kms).toHaveLength(2);
      for (const statement of kms) {
        expect(statement.Resource).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
        expect(actionsOf(statement).every((a) => !a.includes('*'))).toBe(true);
      }
      expect(kms.map((s) => s.Condition)).toEqual([
        { StringEquals: { 'kms:ViaService': 'dynamodb.eu-west-1.amazonaws.com' } },
        { StringEquals: { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' } },
      ]);
      expect(actionsOf(kms[1]).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    }
  });

  it.each(NAMES)('%s: the same statements as research, with the pinned account and region', (name) => {
    const lines = statementLines(statementsOf(platform.template, name)).filter((l) => !/^(kms|lambda|bedrock):/.test(l));
    expect(lines).toEqual(expectedLines(platform.template, 'platform', 'eu-west-1', '111122223333')[name].sort());
  });
});

describe('function roles (lambda tools of agents)', () => {
  it('step-worker may invoke exactly the lambda tools the registry\'s agents declare, beside its lambda agents, and no other function may', () => {
    const { template } = synthTeam('research', {
      bundle: false,
      config: {
        agents: {
          ...research.config.agents,
          Researcher: {
            kind: 'openai',
            model: 'gpt-4o-mini',
            tools: [
              { kind: 'lambda', name: 'lookup', functionName: 'research-lookup:live' },
              { kind: 'lambda', name: 'archive', functionName: 'arn:aws:lambda:eu-west-1:444455556666:function:archive' },
              { kind: 'http', name: 'weather', url: 'https://weather.example.com/now' },
            ],
          },
        },
      },
    });
    const invokeArns = [
      'arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:research-data-fetcher',
      'arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:research-lookup:live',
      'arn:aws:lambda:eu-west-1:444455556666:function:archive',
    ];
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: roleIdOf(functionOf(template, 'step-worker')) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'lambda:InvokeFunction',
            Effect: 'Allow',
            Resource: Match.arrayWith([
              Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([':function:research-lookup:live'])]) }),
              'arn:aws:lambda:eu-west-1:444455556666:function:archive',
            ]),
          }),
        ]),
      },
    });
    // Exactly those ARNs, no wildcard, in one statement of step-worker only.
    const invoke = statementsOf(template, 'step-worker').filter((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(resourcesOfStatement(invoke[0]).sort()).toEqual(invokeArns.sort());
    for (const name of NAMES.filter((n) => n !== 'step-worker')) {
      expect(statementsOf(template, name).flatMap(actionsOf).filter((a) => a.startsWith('lambda:'))).toEqual([]);
    }
  });
});

describe('the state machine role', () => {
  it('may send to the start lane\'s step queue only (DispatchChild sends first steps) and invoke the two task functions, nothing else but logging and tracing', () => {
    const { template } = research;
    const [, sm] = resourcesOf(template, 'AWS::StepFunctions::StateMachine')[0];
    const roleId = sm.Properties.RoleArn['Fn::GetAtt'][0];
    const statements = statementsOfRole(template, roleId);
    const named = statements.filter((s) => s.Resource !== '*');
    const stepQueue = stepQueuesOf(template).start;
    expect(statementLines(named)).toEqual(
      [
        `sqs:SendMessage → \${${stepQueue}.Arn}`,
        `lambda:InvokeFunction → \${${functionOf(template, 'aggregate').id}.Arn} | \${${functionOf(template, 'record-child-failure').id}.Arn}`,
      ].sort(),
    );
    const star = statements.filter((s) => s.Resource === '*').flatMap(actionsOf);
    expect(star.every((a) => a.startsWith('xray:') || a.startsWith('logs:'))).toBe(true);
    // No wildcard in a named resource: the machine starts no executions of its own.
    expect(statementLines(named).filter((l) => l.includes('*'))).toEqual([]);
  });

  it('trusts only Step Functions', () => {
    const [, sm] = resourcesOf(research.template, 'AWS::StepFunctions::StateMachine')[0];
    const role = research.template.toJSON().Resources[sm.Properties.RoleArn['Fn::GetAtt'][0]];
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'states.amazonaws.com' } },
    ]);
  });
});

describe('no wildcards where a resource can be named', () => {
  // Services without resource-level permissions for these actions.
  const STAR_ONLY = new Set([
    'xray:PutTraceSegments',
    'xray:PutTelemetryRecords',
    'xray:GetSamplingRules',
    'xray:GetSamplingTargets',
    'logs:CreateLogDelivery',
    'logs:GetLogDelivery',
    'logs:UpdateLogDelivery',
    'logs:DeleteLogDelivery',
    'logs:ListLogDeliveries',
    'logs:PutResourcePolicy',
    'logs:DescribeResourcePolicies',
    'logs:DescribeLogGroups',
  ]);

  it.each(['research', 'platform'])('%s: no "*" in any action; "*" resources only for actions that cannot be scoped', (team) => {
    const { template } = team === 'research' ? research : platform;
    const statements = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
    expect(statements.length).toBeGreaterThan(20);
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of actionsOf(s)) expect(action).not.toContain('*');
      if (resourcesOfStatement(s).includes('*')) {
        for (const action of actionsOf(s)) expect(STAR_ONLY.has(action), `${action} on "*"`).toBe(true);
      }
    }
  });

  it('API Gateway and EventBridge may invoke only their own targets, from their own source', () => {
    const { template } = research;
    const api = functionOf(template, 'api');
    const trigger = functionOf(template, 'trigger');
    const permissions = resourcesOf(template, 'AWS::Lambda::Permission');
    const methods = resourcesOf(template, 'AWS::ApiGateway::Method').filter(([, m]) => m.Properties.HttpMethod !== 'OPTIONS');
    expect(permissions).toHaveLength(methods.length + 1); // one per API method + the RunRequested rule
    for (const [, p] of permissions) {
      expect(p.Properties.Action).toBe('lambda:InvokeFunction');
      expect(p.Properties.SourceArn).toBeDefined();
      if (p.Properties.Principal === 'apigateway.amazonaws.com') {
        expect(p.Properties.FunctionName).toEqual({ 'Fn::GetAtt': [api.id, 'Arn'] });
      } else {
        expect(p.Properties).toMatchObject({
          Principal: 'events.amazonaws.com',
          FunctionName: { 'Fn::GetAtt': [trigger.id, 'Arn'] },
          SourceArn: { 'Fn::GetAtt': [idOf(template, 'AWS::Events::Rule'), 'Arn'] },
        });
      }
    }
  });

  it('only EventBridge (for that rule) may write to the trigger DLQ from outside', () => {
    const { template } = research;
    const triggerDlq = functionOf(template, 'trigger').props.DeadLetterConfig.TargetArn['Fn::GetAtt'][0];
    const policies = resourcesOf(template, 'AWS::SQS::QueuePolicy').filter(([, p]) =>
      JSON.stringify(p.Properties.Queues).includes(triggerDlq),
    );
    const allows = policies.flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]).filter((s) => s.Effect === 'Allow');
    expect(allows).toEqual([
      {
        Sid: expect.any(String),
        Action: 'sqs:SendMessage',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Resource: { 'Fn::GetAtt': [triggerDlq, 'Arn'] },
        Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [idOf(template, 'AWS::Events::Rule'), 'Arn'] } } },
      },
    ]);
  });
});

describe('the grants cover what the AWS adapters call', () => {
  // AWS SDK command → the IAM action that authorizes it.
  const ACTION_OF: Record<string, string[]> = {
    GetCommand: ['dynamodb:GetItem'],
    BatchGetCommand: ['dynamodb:BatchGetItem'],
    PutCommand: ['dynamodb:PutItem'],
    UpdateCommand: ['dynamodb:UpdateItem'],
    DeleteCommand: ['dynamodb:DeleteItem'],
    QueryCommand: ['dynamodb:Query'],
    ScanCommand: ['dynamodb:Scan'],
    BatchWriteCommand: ['dynamodb:BatchWriteItem'],
    TransactWriteCommand: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem'],
    TransactGetCommand: ['dynamodb:GetItem'],
    StartExecutionCommand: ['states:StartExecution'],
    DescribeExecutionCommand: ['states:DescribeExecution'],
    SendTaskSuccessCommand: ['states:SendTaskSuccess'],
    SendTaskFailureCommand: ['states:SendTaskFailure'],
    SendTaskHeartbeatCommand: ['states:SendTaskHeartbeat'],
    StopExecutionCommand: ['states:StopExecution'],
    PutEventsCommand: ['events:PutEvents'],
    SendMessageCommand: ['sqs:SendMessage'],
    SendMessageBatchCommand: ['sqs:SendMessage'],
    // A failed step's backoff (the step worker; part of its queues' consume grant).
    ChangeMessageVisibilityCommand: ['sqs:ChangeMessageVisibility'],
    InvokeCommand: ['lambda:InvokeFunction'],
    ConverseCommand: ['bedrock:InvokeModel'],
    InvokeModelCommand: ['bedrock:InvokeModel'],
    ConverseStreamCommand: ['bedrock:InvokeModelWithResponseStream'],
    InvokeModelWithResponseStreamCommand: ['bedrock:InvokeModelWithResponseStream'],
  };

  function commandsIn(text: string): string[] {
    return [...new Set([...text.matchAll(/new (\w+Command)\(/g)].map((m) => m[1]))];
  }

  it('every SDK call on the Lambda path (functions/lambda/aws-deps.ts) is granted to some function', () => {
    const read = (path: string) => readFileSync(join(PROJECT_ROOT, path), 'utf8');
    // Only the producer runs in Lambda (the event source mapping consumes; the consumer and createQueues are in local/sqs/).
    const stepQueueClass = read('adapters/sqs/sqs-step-queue.ts');
    const commands = [
      ...commandsIn(read('adapters/dynamodb/dynamo-branch-store.ts')),
      ...commandsIn(read('adapters/stepfunctions/sfn-fan-out.ts')),
      ...commandsIn(read('adapters/eventbridge/eventbridge-publisher.ts')),
      ...commandsIn(read('adapters/agents/lambda-invoker.ts')),
      ...commandsIn(read('adapters/agents/bedrock-invoker.ts')),
      ...commandsIn(stepQueueClass),
    ];
    expect(commands).toContain('SendMessageBatchCommand');
    const granted = new Set(NAMES.flatMap((n) => statementsOf(research.template, n).flatMap(actionsOf)));
    for (const command of commands) {
      expect(ACTION_OF[command], `no IAM mapping for ${command}: add it here and grant it`).toBeDefined();
      for (const action of ACTION_OF[command]) expect(granted.has(action), `${command} needs ${action}`).toBe(true);
    }
  });
});

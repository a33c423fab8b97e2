/**
 * What the deployed stack would break on at its first real traffic, pinned in the template:
 * Lambda's recursive loop detection, reserved concurrency, Step Functions logs without execution
 * data, table deletion protection, the EventBridge archive's empty key, Bedrock cross-Region
 * inference profiles, and the alarms a drained DLQ or a throttled worker would otherwise hide.
 */
import { Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { createRequire } from 'node:module';
import { loadFanOutDefinition } from '../../adapters/stepfunctions/fan-out-definition';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { continueLaneConcurrency } from '../../core/step-lanes';
import { STEP_QUEUE_AGE_ALARM_SECONDS } from '../../infra/spawner-monitoring';
import { loadTeamConfig, parseTeamConfig, TeamConfigError } from '../../functions/team-config';
import {
  actionsOf,
  functionOf,
  resourcesOf,
  resourcesOfStatement,
  roleIdOf,
  statementsOfRole,
  stepQueuesOf,
  synthTeam,
  type Synthesized,
} from './support';

// asl-validator is CommonJS without type declarations.
const aslValidator = createRequire(import.meta.url)('asl-validator') as (definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }) => { isValid: boolean; errorsText(separator?: string): string };
const SUBSTITUTIONS = {
  StepQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/team-a-branch-steps',
  RecordChildFailureFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-record-child-failure',
  AggregateFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-aggregate',
};

let research: Synthesized;
beforeAll(() => {
  research = synthTeam('research', { bundle: false });
});

describe('the step-worker at scale', () => {
  it('is allowed its own SQS loop: RecursiveLoop Allow (the SDK propagates the trace header on every send)', () => {
    expect(functionOf(research.template, 'step-worker').props.RecursiveLoop).toBe('Allow');
    // The others never read a queue they write to: Lambda's default (Terminate) stays.
    expect(functionOf(research.template, 'dlq-handler').props.RecursiveLoop).toBeUndefined();
  });

  it('has reserved concurrency covering both lanes, and each event source maximum stays under it', () => {
    const worker = functionOf(research.template, 'step-worker');
    const lanes = research.config.workerMaxConcurrency + continueLaneConcurrency(research.config.workerMaxConcurrency);
    expect(worker.props.ReservedConcurrentExecutions).toBe(lanes);
    const maxima = resourcesOf(research.template, 'AWS::Lambda::EventSourceMapping')
      .filter(([, m]) => m.Properties.FunctionName?.Ref === worker.id)
      .map(([, m]) => m.Properties.ScalingConfig.MaximumConcurrency as number);
    expect(maxima.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(worker.props.ReservedConcurrentExecutions);
    // The dlq-handler's event source runs at Lambda's minimum, away from the lanes.
    const dlqHandler = functionOf(research.template, 'dlq-handler');
    research.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: dlqHandler.id },
      ScalingConfig: { MaximumConcurrency: 2 },
    });
  });

  it('a team may reserve more, or nothing (a new account with reduced concurrency), but never less than its lanes', () => {
    const none = synthTeam('research', { bundle: false, config: { workerReservedConcurrency: false } });
    expect(functionOf(none.template, 'step-worker').props.ReservedConcurrentExecutions).toBeUndefined();
    const more = synthTeam('research', { bundle: false, config: { workerReservedConcurrency: 40 } });
    expect(functionOf(more.template, 'step-worker').props.ReservedConcurrentExecutions).toBe(40);
    const { team, agents } = loadTeamConfig('research');
    expect(() => parseTeamConfig({ team, agents, workerMaxConcurrency: 10, workerReservedConcurrency: 12 }, 'research.json')).toThrow(
      new TeamConfigError('research.json', 'workerReservedConcurrency', "must be ≥ 15, the step-worker's event sources' maxima (workerMaxConcurrency 10 + its continue lane), or false"),
    );
  });

  it('a reservation the account cannot give (Lambda keeps 100 unreserved) is refused when the config is read, not at deploy', () => {
    const { team, agents } = loadTeamConfig('research');
    const advice = 'lower workerMaxConcurrency, set workerReservedConcurrency to false, or set accountConcurrency to the account\'s quota';
    // 1,000 + its continue lane's 500 against a default account's 1,000 (it deployed, then failed in CloudFormation).
    expect(() => parseTeamConfig({ team, agents, workerMaxConcurrency: 1000 }, 'research.json')).toThrow(
      new TeamConfigError('research.json', 'workerMaxConcurrency', `the step-worker would reserve 1500 of the account's concurrency (accountConcurrency 1000), over the 900 Lambda lets a function reserve (it keeps 100 unreserved): ${advice}`),
    );
    expect(() => parseTeamConfig({ team, agents, workerReservedConcurrency: 950 }, 'research.json')).toThrow(
      new TeamConfigError('research.json', 'workerReservedConcurrency', `the step-worker would reserve 950 of the account's concurrency (accountConcurrency 1000), over the 900 Lambda lets a function reserve (it keeps 100 unreserved): ${advice}`),
    );
    // A new account (10): only without a reservation; a raised quota lets the lanes be reserved.
    expect(() => parseTeamConfig({ team, agents, accountConcurrency: 10 }, 'research.json')).toThrow(/would reserve 15 .*accountConcurrency 10/);
    expect(parseTeamConfig({ team, agents, accountConcurrency: 10, workerReservedConcurrency: false }, 'research.json').workerReservedConcurrency).toBe(false);
    expect(parseTeamConfig({ team, agents, workerMaxConcurrency: 1000, accountConcurrency: 5000 }, 'research.json').accountConcurrency).toBe(5000);
  });
});

/** The state machine's definition as deployed: the asset the template names (DefinitionS3Location). */
function deployedDefinition(synthesized: Synthesized): Record<string, any> {
  const [[, machine]] = resourcesOf(synthesized.template, 'AWS::StepFunctions::StateMachine');
  const key = machine.Properties.DefinitionS3Location.Key as string;
  return JSON.parse(readFileSync(join(synthesized.app.outdir, `asset.${key}`), 'utf8'));
}

describe('the fan-out state machine', () => {
  it('catches a failed Map (batched or inline) and a failed Aggregate: the parent failure is recorded, never left WAITING', () => {
    const { States } = deployedDefinition(research);
    const [[, machine]] = resourcesOf(research.template, 'AWS::StepFunctions::StateMachine');
    const recordFunction = machine.Properties.DefinitionSubstitutions.RecordChildFailureFunctionArn;
    expect(recordFunction).toEqual({ 'Fn::GetAtt': [functionOf(research.template, 'record-child-failure').id, 'Arn'] });
    for (const name of ['FanOutBatched', 'FanOut', 'Aggregate']) {
      expect(States[name].Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFanOutFailure' }]);
    }
    // The record-child-failure function, without a branch id: the fan-out's own failure.
    expect(States.RecordFanOutFailure).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: {
        FunctionName: '${RecordChildFailureFunctionArn}',
        Payload: { 'team.$': '$.team', 'runId.$': '$.runId', 'parentId.$': '$.parentId', 'seq.$': '$.seq', 'error.$': '$.error.Error', 'cause.$': '$.error.Cause' },
      },
      Retry: expect.any(Array),
      End: true,
    });
    expect(States.RecordFanOutFailure.Catch).toBeUndefined();
  });

  it('every Map iteration ends with {} (nothing of the children accumulates in a Map result)', () => {
    const { States } = deployedDefinition(research);
    const processors = [States.FanOutBatched.ItemProcessor, States.FanOut.ItemProcessor];
    for (const processor of processors) {
      for (const [name, state] of Object.entries(processor.States as Record<string, Record<string, unknown>>)) {
        if (state.End) expect(state.OutputPath, name).toBeNull();
      }
    }
  });
});

/** Every state of a definition, nested ItemProcessors included, by name. */
function allStates(definition: { States: Record<string, any> }): [string, Record<string, any>][] {
  return Object.entries(definition.States).flatMap(([name, state]) => [[name, state] as [string, Record<string, any>], ...(state.ItemProcessor ? allStates(state.ItemProcessor) : [])]);
}

describe('OutputPath null beside a Catch (checked without an AWS account)', () => {
  // The ASL specification: an OutputPath of null discards the input and the result (the state's
  // output is {}); a Catcher's ResultPath puts the error into the state's raw input, which is
  // what its Next state gets (OutputPath is not applied to a caught error).
  it('is the form AWS CDK writes for JsonPath.DISCARD with addCatch', () => {
    const discarding = allStates(deployedDefinition(research) as { States: Record<string, any> }).filter(([, state]) => 'OutputPath' in state);
    expect(discarding.map(([name]) => name).sort()).toEqual(
      ['DispatchBatch', 'DispatchChild', 'RecordBatchFailure', 'RecordChildFailure'],
    );
    for (const [name, state] of discarding) expect(state.OutputPath, name).toBeNull();
    const stack = new Stack();
    const task = new tasks.LambdaInvoke(stack, 'Dispatch', {
      lambdaFunction: lambda.Function.fromFunctionArn(stack, 'Fn', 'arn:aws:lambda:eu-west-1:123456789012:function:f'),
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: sfn.TaskInput.fromObject({ token: sfn.JsonPath.taskToken }),
      resultPath: sfn.JsonPath.DISCARD,
      outputPath: sfn.JsonPath.DISCARD,
    });
    task.addCatch(new sfn.Pass(stack, 'Record'), { resultPath: '$.error' });
    const form = (state: Record<string, any>) => ({
      ResultPath: state.ResultPath,
      OutputPath: state.OutputPath,
      Catch: state.Catch?.map(({ ErrorEquals, ResultPath }: Record<string, unknown>) => ({ ErrorEquals, ResultPath })),
    });
    const cdk = form(stack.resolve(task.toStateJson()));
    expect(cdk).toEqual({ ResultPath: null, OutputPath: null, Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error' }] });
    const caught = discarding.filter(([, state]) => state.Catch);
    expect(caught.map(([name]) => name).sort()).toEqual(['DispatchBatch', 'DispatchChild']);
    for (const [name, state] of caught) expect(form(state), name).toEqual(cdk);
  });

  it('asl-validator takes null or a path there and refuses anything else', () => {
    const shipped = loadFanOutDefinition(SUBSTITUTIONS);
    const validate = (definition: unknown) => aslValidator(definition, { checkPaths: true, checkArn: true });
    expect(validate(structuredClone(shipped)).errorsText('\n')).toBe('');
    const withOutputPath = (value: unknown) => {
      const copy = structuredClone(shipped);
      copy.States.FanOutBatched.ItemProcessor.States.DispatchBatch.OutputPath = value;
      return validate(copy);
    };
    expect(withOutputPath('$.first').isValid).toBe(true);
    expect(withOutputPath(5).isValid).toBe(false);
    expect(withOutputPath('first').isValid).toBe(false);
  });

  it('the engine runs it as the specification says: a result becomes {}, a caught error reaches the Catch with the raw input', async () => {
    const processor = structuredClone(loadFanOutDefinition(SUBSTITUTIONS).States.FanOutBatched.ItemProcessor);
    // Resolved here after Parameters (an engine difference the fan-out adapters absorb); not what this checks.
    delete processor.States.DispatchBatch.TimeoutSecondsPath;
    const machine = new StateMachine({ StartAt: processor.StartAt, States: processor.States } as StateMachineDefinition);
    const item = { team: 't', runId: 'r', parentId: 'root', seq: 1, first: 0, count: 250, window: 10, timeoutSeconds: 900 };
    const recorded: unknown[] = [];
    const run = (dispatch: () => Promise<any>) =>
      machine.run(item, {
        context: { Task: { Token: 'token' }, State: { RetryCount: 0 } },
        overrides: {
          taskResourceLocalHandlers: {
            DispatchBatch: dispatch,
            RecordBatchFailure: async (input) => {
              recorded.push(input);
              return { recorded: 'x'.repeat(1_000) };
            },
          },
        },
      }).result;
    expect(await run(async () => ({ released: 'x'.repeat(1_000) }))).toEqual({});
    expect(recorded).toEqual([]);
    const failed = Object.assign(new Error('the batch timed out'), { name: 'States.Timeout' });
    expect(await run(async () => Promise.reject(failed))).toEqual({});
    expect(recorded).toEqual([
      expect.objectContaining({
        Payload: { team: 't', runId: 'r', parentId: 'root', seq: 1, first: 0, count: 250, error: 'States.Timeout', cause: expect.stringContaining('the batch timed out'), retryCount: 0 },
      }),
    ]);
  });
});

describe('data kept safe', () => {
  it('Step Functions logs errors without execution data (task tokens) by default; a team may opt in', () => {
    research.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: Match.objectLike({ Level: 'ERROR', IncludeExecutionData: false }),
    });
    const verbose = synthTeam('research', { bundle: false, config: { stateMachineLogging: { level: 'ALL', includeExecutionData: true } } });
    verbose.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
  });

  it('the table has deletion protection (and is retained)', () => {
    research.template.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: true });
    research.template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
  });

  it('the event archive names no key at all (an empty KmsKeyIdentifier fails the deploy in some Regions)', () => {
    const archives = resourcesOf(research.template, 'AWS::Events::Archive');
    expect(archives).toHaveLength(1);
    expect(Object.keys(archives[0][1].Properties)).not.toContain('KmsKeyIdentifier');
  });
});

describe('Bedrock cross-Region inference profiles', () => {
  it('grant the profile and the foundation model in every destination Region, only through that profile', () => {
    const { agents } = loadTeamConfig('research');
    const profiled = synthTeam('research', {
      bundle: false,
      config: {
        agents: {
          ...agents,
          Planner: { ...agents.Planner, kind: 'bedrock', modelId: 'us.anthropic.claude-3-5-haiku-20241022-v1:0', region: 'us-west-2' },
        },
      },
    });
    // cdk-nag accepts the one wildcard (the Region), acknowledged with its reason.
    expect(new AwsSolutionsChecks().validateScope(profiled.stack).violations).toEqual([]);
    const statements = statementsOfRole(profiled.template, roleIdOf(functionOf(profiled.template, 'step-worker')));
    const bedrock = statements.filter((s) => actionsOf(s).includes('bedrock:InvokeModel'));
    expect(bedrock.map((s) => ({ resources: resourcesOfStatement(s), condition: s.Condition }))).toEqual([
      {
        resources: ['arn:${AWS::Partition}:bedrock:us-west-2:${AWS::AccountId}:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0'],
        condition: undefined,
      },
      {
        resources: ['arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0'],
        condition: {
          StringEquals: {
            'bedrock:InferenceProfileArn': {
              'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':bedrock:us-west-2:', { Ref: 'AWS::AccountId' }, ':inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0']],
            },
          },
        },
      },
    ]);
  });
});

describe('alarms that first traffic needs', () => {
  const alarmsOn = (metricName: string) =>
    resourcesOf(research.template, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === metricName || JSON.stringify(a.Properties.Metrics ?? []).includes(`"MetricName":"${metricName}"`),
    );

  it('the step DLQ: what it received (the dlq-handler drains it at once, so its visible count stays 0)', () => {
    const { dlq } = stepQueuesOf(research.template);
    research.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'NumberOfMessagesReceived',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }],
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('Lambda throttles of every function, the lanes oldest message age, timed-out and failed executions', () => {
    const throttles = alarmsOn('Throttles');
    expect(throttles).toHaveLength(1);
    expect(JSON.stringify(throttles[0][1].Properties.Metrics).match(/"MetricName":"Throttles"/g)).toHaveLength(6);
    const { start, continue: next } = stepQueuesOf(research.template);
    for (const queue of [start, next]) {
      research.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateAgeOfOldestMessage',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue, 'QueueName'] } }],
        Statistic: 'Maximum',
        Threshold: STEP_QUEUE_AGE_ALARM_SECONDS,
      });
    }
    for (const metric of ['ExecutionsTimedOut', 'ExecutionsFailed']) {
      research.template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/States', MetricName: metric, Threshold: 0 });
    }
  });
});

/** The Lambda environment contract: what the stack writes is what the composition roots read. */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors';
import {
  DEFAULT_MAX_BODY_BYTES,
  ENVIRONMENT_VARIABLES,
  fromLambdaEnvironment,
  toLambdaEnvironment,
  type LambdaEnvironment,
} from '../../functions/lambda-environment';
import { configFromEnv } from '../../functions/lambda/aws-deps';

const values: LambdaEnvironment = {
  team: 'research',
  tableName: 'table',
  stepQueueUrl: 'https://sqs.local/steps',
  continueQueueUrl: 'https://sqs.local/steps-continue',
  stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:fan-out',
  eventBusName: 'bus',
  agentRegistry: { Writer: { kind: 'script', responses: [{ next_action: 'final_response', content: 'x' }] } } as never,
  allowInlineScript: true,
  limitMaxima: { maxDepth: 4 },
  maxBodyBytes: 1024,
  runTtlSeconds: 86_400,
  blobBucket: 'blobs-bucket',
  secretSources: { OPENAI_API_KEY: { secretsManager: 'team/openai' } },
  audience: ['app-client-1', 'app-client-2'],
  shareRuns: true,
  events: { branches: 'ends', sample: 0.25 },
  toolValues: 'inline',
};

describe('Lambda environment contract', () => {
  it('round-trips every field through the variables the stack sets', () => {
    const env = toLambdaEnvironment(values);
    expect(Object.keys(env).sort()).toEqual(Object.values(ENVIRONMENT_VARIABLES).sort());
    expect(fromLambdaEnvironment(env)).toEqual(values);
  });

  it('defaults the optional ones and names a missing or broken variable', () => {
    const { runTtlSeconds: _ttl, blobBucket: _bucket, audience: _audience, shareRuns: _share, events: _events, toolValues: _tools, ...rest } = values;
    const env = toLambdaEnvironment(rest);
    delete env.MAX_BODY_BYTES;
    delete env.AGENT_REGISTRY;
    // Tool values by reference unless the team says inline (no tool content on the bus).
    expect(fromLambdaEnvironment(env)).toEqual({ ...rest, maxBodyBytes: DEFAULT_MAX_BODY_BYTES, agentRegistry: {}, toolValues: 'reference' });
    expect(toLambdaEnvironment({ ...rest, toolValues: 'reference' }).TOOL_VALUES).toBeUndefined();
    expect(() => fromLambdaEnvironment({ ...env, TOOL_VALUES: 'plain' })).toThrow('environment variable TOOL_VALUES: must be one of inline, reference');
    expect(() => fromLambdaEnvironment({ ...env, TABLE_NAME: '' })).toThrow(ValidationError);
    expect(() => fromLambdaEnvironment({ ...env, CONTINUE_QUEUE_URL: undefined })).toThrow(/CONTINUE_QUEUE_URL is not set/);
    expect(() => fromLambdaEnvironment({ ...env, LIMIT_MAXIMA: '{' })).toThrow(/LIMIT_MAXIMA is not valid JSON/);
    expect(() => fromLambdaEnvironment({ ...env, BRANCH_EVENTS: '{"branches":"ends","sample":2}' })).toThrow(/BRANCH_EVENTS: sample must be a number in \(0, 1\]/);
    // The default setting (every event) writes no variable.
    expect(toLambdaEnvironment({ ...rest, events: { branches: 'all', sample: 1 } }).BRANCH_EVENTS).toBeUndefined();
  });

  it('is what the AWS composition root configures itself from', () => {
    const config = configFromEnv(toLambdaEnvironment(values));
    expect(config).toMatchObject({
      team: 'research',
      stepQueueUrl: 'https://sqs.local/steps',
      continueQueueUrl: 'https://sqs.local/steps-continue',
      maxBodyBytes: 1024,
      ttlSeconds: 86_400,
      policy: { inline: 'script' },
      events: { branches: 'ends', sample: 0.25 },
    });
    expect(configFromEnv(toLambdaEnvironment({ ...values, events: undefined })).events).toEqual({ branches: 'all', sample: 1 });
  });
});

/**
 * API keys of `openai` agents in AWS: the team config names a Secrets Manager secret or an SSM
 * parameter; only the step-worker may read exactly that; the functions get the name, never a
 * value; the value is fetched with Powertools Parameters and cached per container.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_MAX_AGE_SECONDS, SecretValues } from '../../functions/lambda/secrets';
import type { SpawnerFunctionName } from '../../infra/spawner-function';
import type { TeamConfig } from '../../functions/team-config';
import { functionOf, roleIdOf, statementLines, statementsOfRole, synthTeam, type Synthesized } from './support';

const NAMES: SpawnerFunctionName[] = ['api', 'trigger', 'step-worker', 'record-child-failure', 'aggregate', 'dlq-handler'];
const writer = { kind: 'openai', model: 'gpt-4o-mini', apiKeyEnv: 'OPENAI_API_KEY' } as TeamConfig['agents'][string];
const synthesized: Synthesized[] = [];

let withSecret: Synthesized;
let withParameter: Synthesized;

beforeAll(() => {
  const base = synthTeam('research', { bundle: false });
  const agents = { ...base.config.agents, Writer: writer };
  withSecret = synthTeam('research', { bundle: false, config: { agents, secrets: { OPENAI_API_KEY: { secretsManager: 'research/openai' } } } });
  withParameter = synthTeam('research', { bundle: false, config: { agents, secrets: { OPENAI_API_KEY: { ssmParameter: '/research/openai' } } } });
  synthesized.push(base, withSecret, withParameter);
}, 300_000);

afterAll(() => {
  for (const s of synthesized) rmSync(s.app.outdir, { recursive: true, force: true });
});

describe('secrets in the stack', () => {
  it('only the step-worker may read the named secret (name-?????? ARN), nothing else', () => {
    const t = withSecret.template;
    for (const name of NAMES) {
      const lines = statementLines(statementsOfRole(t, roleIdOf(functionOf(t, name)))).filter((l) => /secretsmanager|ssm:/.test(l));
      expect(lines).toEqual(
        name === 'step-worker'
          ? ['secretsmanager:GetSecretValue → arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:research/openai-??????']
          : [],
      );
    }
  });

  it('an SSM parameter is granted as ssm:GetParameter on its ARN', () => {
    const t = withParameter.template;
    const lines = statementLines(statementsOfRole(t, roleIdOf(functionOf(t, 'step-worker')))).filter((l) => l.includes('ssm:'));
    expect(lines).toEqual(['ssm:GetParameter → arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/research/openai']);
  });

  it('the functions get where the key is, never a value; no warning once the key has a source', () => {
    const env = functionOf(withSecret.template, 'step-worker').props.Environment.Variables;
    expect(JSON.parse(env.SECRET_SOURCES)).toEqual({ OPENAI_API_KEY: { secretsManager: 'research/openai' } });
    expect(env.OPENAI_API_KEY).toBeUndefined();
    Annotations.fromStack(withSecret.stack).hasNoWarning('*', Match.stringLikeRegexp('OPENAI_API_KEY'));
  });
});

describe('SecretValues (the step-worker container)', () => {
  it('fetches with Powertools Parameters once per max age, keeps the value out of process.env', async () => {
    const client = new SecretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const mock = mockClient(client);
    mock.on(GetSecretValueCommand).resolves({ SecretString: 'sk-test-1' });
    const values = new SecretValues({ OPENAI_API_KEY: { secretsManager: 'research/openai' } }, {}, {
      secrets: new SecretsProvider({ awsSdkV3Client: client }),
    });
    await values.refresh();
    await values.refresh();
    expect(values.env.OPENAI_API_KEY).toBe('sk-test-1');
    expect(process.env.OPENAI_API_KEY === 'sk-test-1').toBe(false);
    // Cached for the container: one call for two refreshes within the max age.
    expect(mock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(mock.commandCalls(GetSecretValueCommand)[0].args[0].input).toEqual({ SecretId: 'research/openai' });
    expect(SECRET_MAX_AGE_SECONDS).toBeGreaterThan(0);
  });

  it('a secret without a string value fails the refresh naming the variable and the secret', async () => {
    const client = new SecretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    mockClient(client).on(GetSecretValueCommand).resolves({});
    const values = new SecretValues({ KEY: { secretsManager: 'empty' } }, {}, { secrets: new SecretsProvider({ awsSdkV3Client: client }) });
    await expect(values.refresh()).rejects.toThrow(/KEY: secret empty has no string value/);
  });
});

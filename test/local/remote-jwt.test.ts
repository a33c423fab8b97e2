/**
 * `rehearse up --jwt`: the rehearsal team's API behind a Cognito authorizer. The rehearsed API
 * Gateway checks each token as API Gateway's Cognito authorizer does (signature against the
 * pool's JWKS, which the rehearsal serves; issuer; expiry; an ID token), then the api function
 * checks the app client; the CLI drives it with the printed token.
 */
import { createSign, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRehearsedApi, startRehearsedApi, type RehearsedApi } from '../../local/rehearsal/rehearse-up';
import { REHEARSAL_USER_POOL, synthesize } from '../../local/rehearsal/synth';
import { RehearsalUserPool } from '../../local/rehearsal/user-pool';
import { runCli } from '../support/cli-run';

const dir = mkdtempSync(join(tmpdir(), 'remote-jwt-'));
let api: RehearsedApi;
const saved = { ...process.env };

beforeAll(async () => {
  api = await startRehearsedApi({ assembly: await synthesize({ jwt: true }), maxContainers: 2 });
  for (const name of ['AWS_PROFILE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'BRANCH_SPAWNER_TOKEN', 'BRANCH_SPAWNER_API']) delete process.env[name];
  process.env.BRANCH_SPAWNER_HOME = join(dir, 'home');
}, 900_000);

afterAll(async () => {
  process.env = saved;
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = runCli;

async function get(path: string, authorization?: string) {
  const response = await fetch(new URL(path, api.url), { headers: authorization === undefined ? {} : { authorization } });
  return { status: response.status, body: (await response.json()) as { error?: string; message?: string } };
}

describe('rehearse up --jwt', () => {
  it('prints an ID token of the app client the API takes', () => {
    expect(api.cognito?.clientId).toBe(REHEARSAL_USER_POOL.clientId);
    expect(describeRehearsedApi(api, 'branch-spawner-rehearsal', 'rehearsal')).toContain(`export BRANCH_SPAWNER_TOKEN=${api.cognito!.token}`);
  });

  it('serves the pool\'s key set where Cognito serves it', async () => {
    const response = await fetch(new URL(`/${REHEARSAL_USER_POOL.poolId}/.well-known/jwks.json`, api.url));
    const jwks = (await response.json()) as { keys: { kty: string; alg: string; kid: string }[] };
    expect(jwks.keys).toEqual([expect.objectContaining({ kty: 'RSA', alg: 'RS256', use: 'sig' })]);
  });

  it('a valid token runs a scenario through the CLI (--token)', async () => {
    const scenario = join(dir, 'one.yaml');
    writeFileSync(scenario, 'name: jwt-run\nentry: A\nagents:\n  A:\n    kind: script\n    responses:\n      - { next_action: final_response, content: signed-in }\n');
    const run = await cli('run', scenario, '--api', api.url, '--token', api.cognito!.token, '--json');
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const { runId, result } = JSON.parse(run.out);
    expect(result).toBe('signed-in');
    expect(await get(`runs/${runId}`, api.cognito!.token)).toMatchObject({ status: 200, body: { runId, status: 'COMPLETED' } });
  }, 300_000);

  it('expired, missing, forged and access tokens are 401 from the authorizer; another app client of the pool is 403 from the API', async () => {
    const pool = api.cognito!.pool;
    const clientId = api.cognito!.clientId;
    expect(await get('runs/nope', pool.token({ clientId }))).toEqual({ status: 404, body: { error: 'NotFoundError', message: 'run nope not found' } });
    expect(await get('runs/nope', pool.token({ clientId, expiresInSeconds: -60 }))).toEqual({
      status: 401, body: { error: 'UNAUTHORIZED', message: 'The incoming token has expired' },
    });
    expect(await get('runs/nope')).toEqual({ status: 401, body: { error: 'UNAUTHORIZED', message: 'Unauthorized' } });
    // Signed by another key with the pool's issuer and key id: the signature does not verify.
    const [header, payload] = pool.token({ clientId }).split('.');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = `${header}.${payload}.${createSign('RSA-SHA256').update(`${header}.${payload}`).sign(privateKey).toString('base64url')}`;
    expect(await get('runs/nope', forged)).toEqual({ status: 401, body: { error: 'UNAUTHORIZED', message: 'Unauthorized' } });
    // Another pool's token (its own issuer and keys).
    const foreignPool = new RehearsalUserPool('us-east-1_Elsewhere', () => api.url);
    expect(await get('runs/nope', foreignPool.token({ clientId }))).toEqual({ status: 401, body: { error: 'UNAUTHORIZED', message: 'Unauthorized' } });
    // Methods without OAuth scopes take ID tokens only.
    expect(await get('runs/nope', pool.token({ clientId, tokenUse: 'access' }))).toEqual({ status: 401, body: { error: 'UNAUTHORIZED', message: 'Unauthorized' } });
    // The authorizer takes any app client of the pool; the API takes its own audience only.
    expect(await get('runs/nope', pool.token({ clientId: 'another0app0client00000001' }))).toEqual({
      status: 403, body: { error: 'ForeignRequestError', message: 'the token\'s app client "another0app0client00000001" is not an audience of this API', field: 'Authorization' },
    });
  });

  it('the CLI names the refusal of a token the API does not take', async () => {
    const other = api.cognito!.pool.token({ clientId: 'another0app0client00000001' });
    const refused = await cli('show', 'nope', '--api', api.url, '--token', other);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^error: GET \/v1\/runs\/nope was refused \(403 ForeignRequestError: the token's app client "another0app0client00000001" is not an audience of this API\); the request was made with a token valid until \d{4}-/);
  });
});

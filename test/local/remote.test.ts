/**
 * Operating a deployed stack: `rehearse up`'s stack (its API verifies SigV4 as API Gateway does)
 * driven by the CLI's remote mode — `run --api`, `runs`, `show`, `tree`, `events`, `cancel` —
 * signed with the credentials it prints, and the same commands on a local data folder.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { describeRehearsedApi, startRehearsedApi, type RehearsedApi } from '../../local/rehearsal/rehearse-up';
import { synthesize } from '../../local/rehearsal/synth';
import { ApiClient } from '../../local/remote/api-client';
import { signerFor, signRequest } from '../../local/remote/sigv4';
import { runCli } from '../support/cli-run';
import { dataSource, remoteSource } from '../../local/run-sources';

const dir = mkdtempSync(join(tmpdir(), 'remote-'));
let api: RehearsedApi;
const saved = { ...process.env };

beforeAll(async () => {
  api = await startRehearsedApi({ assembly: await synthesize(), maxContainers: 4 });
  // What a user does with the printed export line; runs started from "this machine" kept in the temp dir.
  for (const name of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_REGION', 'BRANCH_SPAWNER_TOKEN', 'BRANCH_SPAWNER_API']) delete process.env[name];
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: api.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: api.credentials.secretAccessKey,
    AWS_REGION: api.region,
    BRANCH_SPAWNER_HOME: join(dir, 'home'),
    // The printed line `--stack` needs: CloudFormation's DescribeStacks is answered by the rehearsal.
    AWS_ENDPOINT_URL_CLOUDFORMATION: api.awsEndpoint,
  });
}, 900_000);

afterAll(async () => {
  process.env = saved;
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = runCli;

const comparable = (doc: any) => ({
  status: doc.status,
  result: doc.result,
  branches: doc.branches.length,
  shape: doc.branches.map((b: any) => [b.id, b.agent, b.status, b.result]),
});

describe('rehearse up', () => {
  it('prints the API URL and the credentials as export lines', () => {
    const text = describeRehearsedApi(api, 'branch-spawner-rehearsal', 'rehearsal');
    expect(text).toContain(`export BRANCH_SPAWNER_API=${api.url}`);
    expect(text).toContain(`export AWS_ACCESS_KEY_ID=${api.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${api.credentials.secretAccessKey} AWS_REGION=${api.region}`);
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\/$/);
  });
});

describe('run --api: the same run as a local run', () => {
  let runId: string;
  let count: number;

  it('examples/hierarchical.yaml gives the same result, branches and exit code', async () => {
    const local = await cli('run', 'examples/hierarchical.yaml', '--json');
    const trace = join(dir, 'remote-trace.jsonl');
    const remote = await cli('run', 'examples/hierarchical.yaml', '--api', api.url, '--json', '--trace', trace);
    expect(remote.err).toBe('');
    expect(remote.code).toBe(local.code);
    expect(remote.code).toBe(0);
    const doc = JSON.parse(remote.out);
    expect(comparable(doc)).toEqual(comparable(JSON.parse(local.out)));
    runId = doc.runId;
    count = doc.branches.length;
    // --trace: the run's lifecycle events read back from the API.
    const events = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LifecycleEvent);
    expect(events[0].type).toBe('RunStarted');
    expect(events.at(-1)!.type).toBe('RunCompleted');
    expect(events.filter((e) => e.type === 'BranchCreated')).toHaveLength(doc.branches.length);
    expect(events.filter((e) => e.type === 'BranchCompleted')).toHaveLength(doc.branches.length);
  }, 600_000);

  it('show, tree, events and runs read it from the API', async () => {
    const show = await cli('show', runId, '--api', api.url, '--json');
    expect(show.code).toBe(0);
    expect(JSON.parse(show.out).branches).toHaveLength(count);
    const text = await cli('show', runId, '--api', api.url);
    expect(text.out).toContain(`run ${runId} COMPLETED — ${count} branches (${count} completed`);
    const tree = await cli('tree', runId, '--api', api.url);
    expect(tree.out.split('\n')[0]).toBe('root Director (nested) [COMPLETED]');
    const mermaid = await cli('tree', runId, '--api', api.url, '--format', 'mermaid');
    expect(mermaid.out).toMatch(/^(graph|flowchart) /);
    // Through API Gateway a page at a time (2 branches a page): the next-cursor header comes through, and
    // the pages drawn again are the tree one answer draws, in every format.
    const client = ApiClient.connect({ api: api.url });
    const first = await client.send('GET', new URL(`runs/${runId}/tree?format=ascii&limit=2`, api.url), undefined, {});
    expect(first.status).toBe(200);
    expect(first.text).toBe(`root Director (nested) [COMPLETED]\n└─ root.0 TeamLead (nested) [COMPLETED]\n… more branches: ask again with cursor=${first.headers.get('next-cursor')}`);
    const paged = remoteSource(client);
    expect(`${await paged.tree(runId, 'ascii', 2)}\n`).toBe(tree.out);
    expect(`${await paged.tree(runId, 'mermaid', 3)}\n`).toBe(mermaid.out);
    expect(`${await paged.tree(runId, 'json', 2)}\n`).toBe((await cli('tree', runId, '--api', api.url, '--format', 'json')).out);
    const events = await cli('events', runId, '--api', api.url);
    const lines = events.out.trim().split('\n').map((l) => JSON.parse(l) as LifecycleEvent);
    expect(lines.map((e) => e.type)).toEqual(expect.arrayContaining(['RunStarted', 'BranchCreated', 'BranchCompleted', 'RunCompleted']));
    // Every event the bus carried, read from the stored stream: the sync points' too.
    const syncPoints = lines.filter((e) => e.type === 'SyncPointReached').length;
    expect(syncPoints).toBeGreaterThan(0);
    expect(lines).toHaveLength(1 + count * 2 + syncPoints + 1);
    expect(new Set(lines.map((e) => e.eventId)).size).toBe(lines.length);
    const runs = await cli('runs', '--api', api.url, '--json');
    expect(JSON.parse(runs.out).runs).toContainEqual(expect.objectContaining({ runId, name: 'hierarchical-research-team', status: 'COMPLETED' }));
    const unknown = await cli('show', 'no-such-run', '--api', api.url);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('404 NotFoundError: run no-such-run not found');
  }, 300_000);

  it('cancel ends a running run on the stack; events --follow returns at its end', async () => {
    const client = ApiClient.connect({ api: api.url });
    const { runId: stuck } = await client.call<{ runId: string }>('POST', 'runs', {
      body: {
        name: 'stuck', entry: 'Root', request: 'x',
        agents: {
          Root: { kind: 'script', allowed: ['Stuck'], responses: [{ next_action: 'parallel_invoke', agents: ['Stuck', 'Stuck'] }, { next_action: 'final_response', content: 'never' }] },
          Stuck: { kind: 'script', responses: [{ $hang: true, next_action: 'final_response', content: 'never' }] },
        },
      },
    });
    const cancel = await cli('cancel', stuck, '--api', api.url);
    expect(cancel.code).toBe(0);
    const follow = await cli('events', stuck, '--api', api.url, '--follow');
    // The run ends first; its branches are told after it (their events may follow the run's).
    expect(follow.out.trim().split('\n').map((l) => JSON.parse(l).type)).toContain('RunCancelled');
    const show = await cli('show', stuck, '--api', api.url, '--json');
    expect({ code: show.code, status: JSON.parse(show.out).status }).toEqual({ code: 1, status: 'CANCELLED' });
  }, 300_000);
});

describe('the API verifies SigV4 signatures', () => {
  it('a wrong secret is 403, and the CLI names the access key used (never the secret)', async () => {
    const wrongSecret = 'not-the-secret-0123456789';
    process.env.AWS_SECRET_ACCESS_KEY = wrongSecret;
    try {
      const refused = await cli('run', 'examples/simple-parallel.yaml', '--api', api.url);
      expect(refused.code).toBe(1);
      expect(refused.err).toContain(
        'POST /v1/runs was refused (403 INVALID_SIGNATURE: The request signature we calculated does not match the signature you provided.',
      );
      expect(refused.err).toContain(`the request was made with access key ${api.credentials.accessKeyId} from the environment (AWS_ACCESS_KEY_ID), region ${api.region}`);
      expect(refused.err).not.toContain(wrongSecret);
      const show = await cli('runs', '--api', api.url);
      expect(show.code).toBe(1);
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = api.credentials.secretAccessKey;
    }
  });

  it('a wrong region, a stale date, an unknown key and no signature are 403 as in AWS', async () => {
    const url = new URL('runs/nope', api.url);
    const send = async (headers: Record<string, string>) => {
      delete headers.host;
      const response = await fetch(url, { headers });
      return { status: response.status, body: (await response.json()) as { error?: string; message: string } };
    };
    const sign = (credentials = api.credentials, region = api.region, signingDate?: Date) =>
      signerFor(credentials, region).sign(
        { method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {}, headers: { host: url.host } },
        signingDate ? { signingDate } : {},
      ).then((r) => r.headers as Record<string, string>);

    expect(await send(await signRequest(signerFor(api.credentials, api.region), { method: 'GET', url, headers: {} }))).toEqual({
      status: 404, body: { error: 'NotFoundError', message: 'run nope not found' },
    });
    expect(await send(await sign(api.credentials, 'eu-west-1'))).toEqual({
      status: 403, body: { error: 'INVALID_SIGNATURE', message: "Credential should be scoped to a valid region, not 'eu-west-1'. " },
    });
    const stale = await send(await sign(api.credentials, api.region, new Date(Date.now() - 10 * 60_000)));
    expect(stale.status).toBe(403);
    expect(stale.body.message).toMatch(/^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/);
    expect(await send(await sign({ accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x' }))).toEqual({
      status: 403, body: { error: 'INVALID_SIGNATURE', message: 'The security token included in the request is invalid.' },
    });
    expect(await send({})).toEqual({ status: 403, body: { error: 'MISSING_AUTHENTICATION_TOKEN', message: 'Missing Authentication Token' } });
  });

  it('an expired token is refused before it is sent, naming its expiry', async () => {
    const payload = Buffer.from(JSON.stringify({ exp: 1_700_000_000 })).toString('base64url');
    const refused = await cli('show', 'any', '--api', api.url, '--token', `e30.${payload}.sig`);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('the token expired at 2023-11-14T22:13:20.000Z; sign in again for a new ID token');
  });
});

describe('--stack <team>: the API URL read from the stack outputs', () => {
  it('run, show, tree, events, runs and cancel find the API through CloudFormation DescribeStacks', async () => {
    const scenario = join(dir, 'stack-run.yaml');
    writeFileSync(scenario, 'name: via-stack\nentry: A\nagents:\n  A:\n    kind: script\n    responses:\n      - { next_action: final_response, content: done }\n');
    const run = await cli('run', scenario, '--stack', 'rehearsal', '--json');
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const { runId, result } = JSON.parse(run.out);
    expect(result).toBe('done');
    const show = await cli('show', runId, '--stack', 'rehearsal', '--json');
    expect({ code: show.code, status: JSON.parse(show.out).status }).toEqual({ code: 0, status: 'COMPLETED' });
    expect((await cli('tree', runId, '--stack', 'rehearsal')).out).toBe('root A (simple) [COMPLETED]\n');
    const events = await cli('events', runId, '--stack', 'rehearsal', '--follow');
    expect(events.out.trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(['RunStarted', 'BranchCreated', 'BranchCompleted', 'RunCompleted']);
    expect(JSON.parse((await cli('runs', '--stack', 'rehearsal', '--json')).out).runs).toContainEqual(expect.objectContaining({ runId, status: 'COMPLETED' }));
    const { runId: stuck } = await ApiClient.connect({ api: api.url }).call<{ runId: string }>('POST', 'runs', {
      body: { name: 'stuck', entry: 'Stuck', agents: { Stuck: { kind: 'script', responses: [{ $hang: true, next_action: 'final_response', content: 'never' }] } } },
    });
    expect(await cli('cancel', stuck, '--stack', 'rehearsal')).toEqual({ code: 0, out: '', err: `run ${stuck}: cancel requested\n` });
    const cancelled = await cli('show', stuck, '--stack', 'rehearsal', '--json');
    expect({ code: cancelled.code, status: JSON.parse(cancelled.out).status }).toEqual({ code: 1, status: 'CANCELLED' });
  }, 300_000);

  it('a stack that does not exist is exit 2, naming the team, the stack and the region', async () => {
    const missing = await cli('show', 'any', '--stack', 'nosuchteam');
    expect(missing.code).toBe(2);
    expect(missing.err).toBe(
      `error: --stack nosuchteam: stack branch-spawner-nosuchteam does not exist in ${api.region} (deploy it with \`npx cdk deploy -c team=nosuchteam\`, or look in another region with --region)\n`,
    );
    expect((await cli('runs', '--stack', 'rehearsal', '--api', api.url)).code).toBe(2);
  });

  it('a stack without the ApiUrl output is exit 2, listing the outputs it has', async () => {
    api.stack.setOutput('ApiUrl', undefined);
    try {
      const missing = await cli('runs', '--stack', 'rehearsal');
      expect(missing.code).toBe(2);
      expect(missing.err).toMatch(new RegExp(`^error: --stack rehearsal: stack branch-spawner-rehearsal in ${api.region} has no ApiUrl output \\(outputs: .*EventBusName, TableName, `));
    } finally {
      api.stack.setOutput('ApiUrl', api.url);
    }
  });

  it('credentials not allowed to describe the stack are exit 1, naming the access key', async () => {
    const other = { arn: 'arn:aws:iam::000000000000:user/no-cloudformation', accessKeyId: 'AKIANOCLOUDFORMATION', secretAccessKey: 'x'.repeat(40), statements: [] };
    api.stack.addOutsideCaller(other);
    process.env.AWS_ACCESS_KEY_ID = other.accessKeyId;
    try {
      const denied = await cli('runs', '--stack', 'rehearsal');
      expect(denied.code).toBe(1);
      expect(denied.err).toContain(`error: --stack rehearsal: could not read the outputs of stack branch-spawner-rehearsal in ${api.region} with access key AKIANOCLOUDFORMATION from the environment: `);
      expect(denied.err).toContain('cloudformation:DescribeStacks');
    } finally {
      process.env.AWS_ACCESS_KEY_ID = api.credentials.accessKeyId;
    }
  });
});

describe('the same commands on a local data folder', () => {
  it('runs, show, tree and events read what run --data kept', async () => {
    const data = join(dir, 'data');
    const run = await cli('run', 'examples/simple-parallel.yaml', '--data', data, '--json');
    expect(run.code).toBe(0);
    const { runId, branches } = JSON.parse(run.out);
    const runs = await cli('runs', '--data', data, '--json');
    expect(JSON.parse(runs.out).runs).toEqual([expect.objectContaining({ runId, status: 'COMPLETED' })]);
    const show = await cli('show', runId, '--data', data, '--json');
    expect(JSON.parse(show.out).branches).toEqual(branches);
    const tree = await cli('tree', runId, '--data', data);
    expect(tree.out.startsWith('root ')).toBe(true);
    // Read a page of 2 branches at a time, the tree is the same.
    const source = await dataSource(data, 'tree');
    try {
      expect(`${await source.tree(runId, 'ascii', 2)}\n`).toBe(tree.out);
    } finally {
      await source.close();
    }
    const events = await cli('events', runId, '--data', data);
    // simple-parallel: one fan-out, so one SyncPointReached beside each branch's two events and the run's.
    expect(events.out.trim().split('\n').map((l) => JSON.parse(l).type).filter((t) => t === 'SyncPointReached')).toHaveLength(1);
    expect(events.out.trim().split('\n')).toHaveLength(1 + branches.length * 2 + 1 + 1);
  });

  it('a command without --api or --data says where runs can be read (exit 2)', async () => {
    writeFileSync(join(dir, 'x'), '');
    const none = await cli('show', 'x');
    expect(none.code).toBe(2);
    expect(none.err).toContain('say where the runs are: --api <url>');
  });
});

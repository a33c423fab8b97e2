// Long-running: started first (vitest.config.ts).
/**
 * `branch-spawner dev`: the HTTP API through the real API Gateway handler, the page and its
 * assets (offline), the dev-only routes, the live event stream, and the command itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import { runIdFor } from '../../functions/messages';
import { main } from '../../local/cli';
import { startDevServer, type DevServer } from '../../local/dev-server';
import { GATEWAY_MAX_BODY_BYTES, toProxyEvent } from '../../local/dev/gateway-shim';
import { followDevEvents } from '../support/dev-stream';
import { captureIo } from '../support/io';

const ROOT = join(import.meta.dirname, '..', '..');
const example = (file: string) => parseYaml(readFileSync(join(ROOT, 'examples', file), 'utf8'));

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ port: 0 });
});
afterAll(async () => {
  await server?.close();
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`${server.url}${path}`, { headers });
  const type = response.headers.get('content-type') ?? '';
  const body: any = type.startsWith('application/json') ? await response.json() : await response.text();
  return { status: response.status, type, body };
};
const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: response.status, body: (await response.json()) as any };
};

/** The dev server's live events at `path`, until `until` accepts one (the stream is text/event-stream). */
function eventStream(path: string, until: (e: LifecycleEvent) => boolean) {
  const follow = followDevEvents(`${server.url}${path}`, until);
  const done = follow.done.then(({ events, contentType }) => {
    expect(contentType).toMatch(/^text\/event-stream/);
    return events;
  });
  return { ready: follow.ready, done };
}

describe('dev server: the page and its assets', () => {
  it('serves the page, its script and style, and mermaid from node_modules (no CDN: works offline)', async () => {
    const page = await get('/');
    expect(page).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
    expect(page.body).toContain('data-testid="start-run"');
    expect(page.body).toContain('<script src="/vendor/mermaid.min.js"></script>');
    for (const [path, type] of [['/app.js', 'text/javascript'], ['/style.css', 'text/css'], ['/favicon.svg', 'image/svg+xml']]) {
      const asset = await get(path);
      expect(asset.status, path).toBe(200);
      expect(asset.type, path).toContain(type);
    }
    for (const file of ['index.html', 'app.js', 'style.css']) {
      expect(readFileSync(join(ROOT, 'local', 'web', file), 'utf8'), file).not.toMatch(/https?:\/\//);
    }
    const mermaid = await fetch(`${server.url}/vendor/mermaid.min.js`);
    expect(mermaid.headers.get('content-type')).toContain('text/javascript');
    expect((await mermaid.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
  });

  it('serves only the files of local/web: anything else is the API 404', async () => {
    for (const path of ['/nothing.js', '/%2e%2e/package.json', '/local/dev-server.ts', '/vendor/other.js']) {
      const answer = await get(path);
      expect(answer.status, path).toBe(404);
      expect(answer.body.error, path).toBe('NotFoundError');
    }
  });

  it('lists the examples with their text and parsed document, and parses pasted YAML into JSON', async () => {
    const { body } = await get('/examples');
    const files = body.examples.map((e: any) => e.file);
    expect(files).toEqual(expect.arrayContaining(['hierarchical.yaml', 'simple-parallel.yaml', 'recursion.yaml']));
    const hierarchical = body.examples.find((e: any) => e.file === 'hierarchical.yaml');
    expect(hierarchical.document).toEqual(example('hierarchical.yaml'));
    expect(hierarchical.text).toBe(readFileSync(join(ROOT, 'examples', 'hierarchical.yaml'), 'utf8'));
    expect(hierarchical.description).toMatch(/^Hierarchy: a director/);

    const parsed = await post('/scenarios/parse', hierarchical.text, { 'content-type': 'application/yaml' });
    expect(parsed).toEqual({ status: 200, body: { document: example('hierarchical.yaml') } });
    expect((await post('/scenarios/parse', '{"name": "j", "entry": "A"}')).body.document).toEqual({ name: 'j', entry: 'A' });
    const broken = await post('/scenarios/parse', 'name: x\nagents: [unclosed\n');
    expect(broken).toMatchObject({ status: 400, body: { error: 'ValidationError', message: expect.stringMatching(/not valid YAML or JSON at line \d/) } });
    expect((await post('/scenarios/parse', '  ')).status).toBe(400);
  });
});

describe('dev server: the HTTP API through runtime.api, live events, dev-only views', () => {
  it('streams each run its own lifecycle events live, from RunStarted to RunCompleted', async () => {
    const keyA = 'dev-test-a';
    const keyB = 'dev-test-b';
    const [idA, idB] = [runIdFor('local', keyA), runIdFor('local', keyB)];
    const all = eventStream('/events', (e) => e.runId === idB && isRunEnd(e));
    const onlyA = eventStream(`/runs/${idA}/events`, isRunEnd);
    await Promise.all([all.ready, onlyA.ready]);

    const startA = await post('/runs', JSON.stringify(example('hierarchical.yaml')), { 'idempotency-key': keyA });
    expect(startA).toEqual({ status: 202, body: { runId: idA, created: true } });
    const eventsA = await onlyA.done;
    expect(new Set(eventsA.map((e) => e.runId))).toEqual(new Set([idA]));
    expect(eventsA[0].type).toBe('RunStarted');
    expect(eventsA[eventsA.length - 1].type).toBe('RunCompleted');
    expect(eventsA.filter((e) => e.type === 'BranchCreated')).toHaveLength(9);
    expect(eventsA.filter((e) => e.type === 'BranchCompleted')).toHaveLength(9);
    expect(eventsA.filter((e) => e.type === 'SyncPointReached')).toHaveLength(3);

    await post('/runs', JSON.stringify(example('simple-parallel.yaml')), { 'idempotency-key': keyB });
    const everything = await all.done;
    expect(new Set(everything.map((e) => e.runId))).toEqual(new Set([idA, idB]));
    // The stream of every run carried run A's events in the same order.
    expect(everything.filter((e) => e.runId === idA)).toEqual(eventsA);

    const { body } = await get('/runs');
    expect(body.runs.slice(0, 2)).toEqual([
      expect.objectContaining({ runId: idB, name: 'simple-parallel', status: 'COMPLETED' }),
      expect.objectContaining({ runId: idA, name: 'hierarchical-research-team', status: 'COMPLETED' }),
    ]);
  });

  it('shows a branch with its sync points, the aggregate it resumed with, its steps; and each branch its agents', async () => {
    const runId = runIdFor('local', 'dev-test-a');
    const { body: root } = await get(`/runs/${runId}/branches/root`);
    expect(root.branch).toMatchObject({ id: 'root', agent: 'Director', entryAgent: 'Director', type: 'NESTED', status: 'COMPLETED' });
    expect(root.syncPoints).toEqual([
      expect.objectContaining({
        seq: 1,
        counters: { total: 2, succeeded: 2, failed: 0, cancelled: 0 },
        waitFor: 'all',
        outcome: 'resume',
        children: [
          { id: 'root.0', agent: 'TeamLead', status: 'COMPLETED' },
          { id: 'root.1', agent: 'TeamLead', status: 'COMPLETED' },
        ],
      }),
    ]);
    expect(root.aggregate).toMatchObject({ child_count: 2, metadata: { pattern: 'hierarchical' } });
    expect(root.steps.map((s: any) => [s.decision, s.resumedAfterSync])).toEqual([['spawn', false], ['complete', true]]);
    expect(root.branch.result).toEqual({ report: root.aggregate });

    const { body: writer } = await get(`/runs/${runId}/branches/root.0.2`);
    expect(writer.syncPoints).toEqual([]);
    expect(writer.aggregate).toBeNull();
    expect(writer.steps.map((s: any) => `${s.agent}:${s.decision}`)).toEqual(['Writer:handoff', 'Editor:complete']);

    const { body: listed } = await get(`/runs/${runId}/branches`);
    const chains = Object.fromEntries(listed.branches.map((b: any) => [b.id, b.agentChain]));
    expect(chains).toMatchObject({ root: ['Director'], 'root.0': ['TeamLead'], 'root.0.2': ['Writer', 'Editor'] });
    expect(listed.branches.find((b: any) => b.id === 'root.0.2').agent).toBe('Editor');
    expect((await get(`/runs/${runId}/branches/root.9`)).status).toBe(404);
  });

  it('runs an example that names its aggregator module, and refuses any other module with a 400 saying why', async () => {
    const quorum = example('quorum-custom-aggregator.yaml');
    const started = await post('/runs', JSON.stringify(quorum));
    expect(started.status).toBe(202);
    expect((await server.runtime.waitForRun(started.body.runId)).result).toEqual({ median_days: 12 });

    const refused = await post('/runs', JSON.stringify({ ...quorum, aggregators: './my-aggregators.ts' }));
    expect(refused).toMatchObject({
      status: 400,
      body: { error: 'ValidationError', field: 'aggregators', message: expect.stringMatching(/cannot load code.*\.\/my-aggregators\.ts.*ignored/) },
    });
  });

  it('keeps teams apart: the x-team header picks the team, as the API handler does', async () => {
    const started = await post('/runs', JSON.stringify(example('simple-parallel.yaml')), { 'x-team': 'blue' });
    expect(started.status).toBe(202);
    await server.runtime.waitForRun(started.body.runId, 'blue');
    expect((await get(`/runs/${started.body.runId}`)).status).toBe(404);
    expect((await get(`/runs/${started.body.runId}`, { 'x-team': 'blue' })).body.status).toBe('COMPLETED');
    expect((await get('/runs', { 'x-team': 'blue' })).body.runs.map((r: any) => r.runId)).toEqual([started.body.runId]);
    expect((await get('/runs')).body.runs.map((r: any) => r.runId)).not.toContain(started.body.runId);
  });

  it('the CLI on the dev server (--api <its address>, no signing region): callback answers once (exit 0), again is refused (exit 1); show reads the run', async () => {
    const key = 'dev-test-callback-cli';
    const runId = runIdFor('local', key);
    const asked = eventStream(`/runs/${runId}/events`, (e) => e.type === 'BranchWaitingForCallback');
    await asked.ready;
    const approver = { kind: 'script', responses: [{ next_action: 'wait_for_callback', timeout_seconds: 600, message: 'ship it?' }, { next_action: 'final_response', content: '$input' }] };
    expect((await post('/runs', JSON.stringify({ name: 'approve', request: 'r', entry: 'Approver', agents: { Approver: approver } }), { 'idempotency-key': key })).status).toBe(202);
    const waiting = (await asked.done).find((e) => e.type === 'BranchWaitingForCallback')!;
    const token = String(waiting.detail.token);

    // The dev server has no auth: a loopback address without a region is called unsigned.
    const saved = { ...process.env };
    for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'BRANCH_SPAWNER_TOKEN', 'BRANCH_SPAWNER_API']) delete process.env[name];
    try {
      // An answer past 64 KiB is bad input (exit 2), as on a data folder; the callback stays open.
      const large = captureIo();
      expect(await main(['callback', runId, token, '--api', server.url, '--answer', JSON.stringify('x'.repeat(70_000))], large)).toBe(2);
      expect(large.errText()).toMatch(/413 PayloadTooLargeError/);
      const first = captureIo();
      expect(await main(['callback', runId, token, '--api', server.url, '--answer', '{"approved": true}'], first), first.errText()).toBe(0);
      expect(first.errText()).toBe(`run ${runId}: callback answered, branch root goes on\n`);
      const again = captureIo();
      expect(await main(['callback', runId, token, '--api', server.url, '--answer', '{"approved": false}'], again)).toBe(1);
      expect(again.errText()).toMatch(/409 ConflictError: callback of branch root was answered already/);
      expect((await server.runtime.waitForRun(runId)).result).toEqual({ approved: true });
      const shown = captureIo();
      expect(await main(['show', runId, '--api', server.url, '--json'], shown), shown.errText()).toBe(0);
      expect(JSON.parse(shown.outText())).toMatchObject({ runId, status: 'COMPLETED', result: { approved: true } });
      // Anywhere else a request without a region cannot be signed: refused before it is sent.
      const remote = captureIo();
      expect(await main(['callback', runId, token, '--api', 'https://api.example.com/v1/', '--answer', 'true'], remote)).toBe(2);
      expect(remote.errText()).toMatch(/^error: --region: api\.example\.com is not an execute-api URL/);
    } finally {
      process.env = saved;
    }
  });

  it('run --api <dev address> says how to answer a callback its run awaits, with the token, and completes once it is answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bs-dev-callback-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'approve.yaml');
    writeFileSync(file, 'name: approve-remote\nentry: A\nagents:\n  A:\n    kind: script\n    responses:\n      - { next_action: wait_for_callback, timeout_seconds: 600, message: "ship it?" }\n      - { next_action: final_response, content: "$input" }\n');
    const asked = eventStream('/events', (e) => e.type === 'BranchWaitingForCallback' && e.detail.message === 'ship it?');
    await asked.ready;
    const saved = { ...process.env };
    for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'BRANCH_SPAWNER_TOKEN', 'BRANCH_SPAWNER_API']) delete process.env[name];
    try {
      const io = captureIo();
      const run = main(['run', file, '--api', server.url, '--json'], io);
      const waiting = (await asked.done).filter((e) => e.type === 'BranchWaitingForCallback').at(-1)!;
      const token = String(waiting.detail.token);
      const answered = captureIo();
      expect(await main(['callback', waiting.runId, token, '--api', server.url, '--answer', '"shipped"'], answered), answered.errText()).toBe(0);
      expect(await run, io.errText()).toBe(0);
      expect(JSON.parse(io.outText())).toMatchObject({ runId: waiting.runId, status: 'COMPLETED', result: 'shipped' });
      expect(io.errText()).toContain(
        `branch root awaits a callback until ${new Date(Number(waiting.detail.timeoutAt)).toISOString()} ("ship it?"); answer it with: npx branch-spawner callback ${waiting.runId} ${token} --api ${server.url}`,
      );
    } finally {
      process.env = saved;
    }
  });

  it('refuses a body over API Gateway\'s own cap itself, with the handler\'s error shape', async () => {
    const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = httpRequest(`${server.url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      // The server may close the connection once it has answered: that is the point.
      req.on('error', (error) => (error as NodeJS.ErrnoException).code === 'EPIPE' || (error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error));
      req.end(Buffer.alloc(GATEWAY_MAX_BODY_BYTES + 1024, 'x'));
    });
    expect(answer).toMatchObject({ status: 413, body: { error: 'PayloadTooLargeError', message: expect.stringContaining(`${GATEWAY_MAX_BODY_BYTES}`) } });
  });
});

describe('dev server: bad input is refused with the field, never a 500', () => {
  it('POST /runs nested 5,000 deep: 400 naming the field; too large to keep: 413 naming it; over a ceiling: 400 naming limits.<field>', async () => {
    const before = (await get('/runs')).body.runs.length;
    const agents = '"agents":{"A":{"kind":"script","responses":[{"next_action":"final_response","content":"$input"}]}}';
    const deep = await post('/runs', `{"name":"deep","entry":"A","request":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)},${agents}}`);
    expect(deep).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'request.a.a', message: expect.stringMatching(/nested more than 64 levels/) } });
    const big = await post('/runs', `{"name":"big","entry":"A","request":"${'x'.repeat(500_000)}",${agents}}`);
    expect(big).toMatchObject({ status: 413, body: { error: 'PayloadTooLargeError', field: 'request' } });
    for (const [field, value] of [['maxStepsPerBranch', 1e9], ['branchTimeoutSeconds', 31_536_000], ['maxInvalidResponses', 1e9], ['maxBranches', 1e6]] as const) {
      const answer = await post('/runs', JSON.stringify({ ...example('simple-parallel.yaml'), limits: { [field]: value } }));
      expect(answer, field).toMatchObject({ status: 400, body: { field: `limits.${field}`, message: expect.stringMatching(/the ceiling/) } });
    }
    const yaml = await post('/scenarios/parse', `request: ${'['.repeat(5000)}${']'.repeat(5000)}`, { 'content-type': 'application/yaml' });
    expect(yaml.status).toBe(400);
    expect((await get('/runs')).body.runs.length).toBe(before);
  });
});

describe('dev server: what a web page could send is refused', () => {
  /** A raw request (fetch will not let a test set Host), answered with status and JSON body. */
  const raw = (method: string, path: string, headers: Record<string, string>, body?: string) =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = httpRequest(`${server.url}${path}`, { method, headers }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const scenario = JSON.stringify(example('simple-parallel.yaml'));
  const runCount = async () => (await get('/runs')).body.runs.length;

  it('a body that is not JSON: 415, nothing started (text/plain is what a page may send cross-site unasked)', async () => {
    const before = await runCount();
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const answer = await raw('POST', '/runs', { 'content-type': type }, scenario);
      expect(answer, type).toMatchObject({ status: 415, body: { error: 'UnsupportedMediaTypeError', field: 'Content-Type' } });
    }
    expect(await raw('POST', '/runs', {}, scenario)).toMatchObject({ status: 415 });
    expect(await raw('POST', '/scenarios/parse', { 'content-type': 'text/plain' }, 'name: x')).toMatchObject({ status: 415 });
    expect(await runCount()).toBe(before);
  });

  it('a foreign Origin: 403 on every route, nothing started or cancelled', async () => {
    const before = await runCount();
    for (const origin of ['http://attacker.example', 'null', 'http://127.0.0.1:1', 'https://127.0.0.1:' + server.port, 'http://localhost.attacker.example']) {
      const start = await raw('POST', '/runs', { 'content-type': 'application/json', origin }, scenario);
      expect(start, origin).toMatchObject({ status: 403, body: { error: 'ForeignRequestError', field: 'Origin' } });
      expect((await raw('GET', '/runs', { origin })).status, origin).toBe(403);
      expect((await raw('POST', '/runs/any-run/cancel', { origin })).status, origin).toBe(403);
    }
    expect(await runCount()).toBe(before);
  });

  it('a Host other than the loopback name and address it printed: 403 (DNS rebinding)', async () => {
    for (const host of ['attacker.example', `attacker.example:${server.port}`, `127.0.0.1:${server.port + 1}`, '127.0.0.1', `0.0.0.0:${server.port}`]) {
      const answer = await raw('GET', '/runs', { host });
      expect(answer, host).toMatchObject({ status: 403, body: { error: 'ForeignRequestError', field: 'Host' } });
    }
    expect((await raw('POST', '/runs', { host: 'attacker.example', 'content-type': 'application/json' }, scenario)).status).toBe(403);
  });

  it('its own page is served: the printed address and localhost, its own Origin, JSON and YAML bodies', async () => {
    expect((await raw('GET', '/runs', { host: `localhost:${server.port}` })).status).toBe(200);
    expect((await raw('GET', '/runs', { host: `127.0.0.1:${server.port}`, origin: server.url })).status).toBe(200);
    const started = await raw('POST', '/runs', { 'content-type': 'application/json; charset=utf-8', origin: `http://localhost:${server.port}` }, scenario);
    expect(started.status).toBe(202);
    await server.runtime.waitForRun(started.body.runId);
    expect((await raw('POST', '/scenarios/parse', { 'content-type': 'application/yaml', origin: server.url }, 'name: y')).body).toEqual({ document: { name: 'y' } });
  });
});

describe('toProxyEvent', () => {
  it('builds the REST proxy event the deployed API sends: its resource and path parameters, method, path, headers, query, body, no base64', async () => {
    const probe = createServer((req, res) => {
      void toProxyEvent(req, new URL(req.url!, 'http://127.0.0.1')).then((event) => res.end(JSON.stringify(event)));
    });
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = probe.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/runs/r1/tree?format=ascii&x=1&x=2`, {
        method: 'POST',
        body: '{"é":1}',
        headers: { 'Idempotency-Key': 'k1', 'x-team': 'red' },
      });
      const event: any = await response.json();
      expect(event).toMatchObject({
        // infra/ deploys a resource per path (not a greedy {proxy+}): the event names the one reached.
        resource: '/runs/{id}/tree',
        pathParameters: { id: 'r1' },
        httpMethod: 'POST',
        path: '/runs/r1/tree',
        queryStringParameters: { format: 'ascii', x: '2' },
        multiValueQueryStringParameters: { format: ['ascii'], x: ['1', '2'] },
        body: '{"é":1}',
        isBase64Encoded: false,
        headers: { 'idempotency-key': 'k1', 'x-team': 'red' },
        requestContext: { httpMethod: 'POST', path: '/runs/r1/tree', stage: 'dev', resourcePath: '/runs/{id}/tree' },
      });
      const bare = await (await fetch(`http://127.0.0.1:${port}/runs`)).json();
      expect(bare).toMatchObject({ httpMethod: 'GET', queryStringParameters: null, body: null });
    } finally {
      await new Promise((resolve) => probe.close(resolve));
    }
  });
});

describe('branch-spawner dev', () => {
  it('prints exactly its address line, serves the API and the page, and stops cleanly on SIGINT', async () => {
    const child = spawn(join(ROOT, 'node_modules', '.bin', 'node'), [join(ROOT, 'bin', 'branch-spawner.mjs'), 'dev'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c) => {
        stdout += c;
        if (stdout.includes('\n')) resolve(stdout.split('\n')[0]);
      });
      void exited.then((code) => reject(new Error(`dev exited with ${code} before printing its address: ${stderr}`)));
    });
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${url}/`)).status).toBe(200);
      const started = await fetch(`${url}/runs`, {
        method: 'POST',
        body: JSON.stringify(example('simple-parallel.yaml')),
        headers: { 'content-type': 'application/json' },
      });
      expect(started.status).toBe(202);
      const { runId } = (await started.json()) as { runId: string };
      expect(((await (await fetch(`${url}/runs/${runId}`)).json()) as { runId: string }).runId).toBe(runId);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(stdout).toBe(`${url}\n`);
    expect(stderr).toContain('stopped');
  });

  it('exit 2 for a port that is not a number', async () => {
    const io = captureIo();
    expect(await main(['dev', '--port', 'eighty'], io)).toBe(2);
    expect(io.errText()).toMatch(/--port must be an integer/);
    expect(io.outText()).toBe('');
  });
});

/**
 * docs/openapi.yaml against the handler's REAL answers: every documented route and status is
 * called through the dev server (which feeds `runtime.api` API Gateway proxy events), and each
 * body is validated with ajv against the schema the document gives for that status.
 */
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { LifecycleEvent } from '../../core/events';
import { LIMIT_TABLE } from '../../core/limit-table';
import { API_ERROR_NAMES } from '../../functions/handlers/http-errors';
import { startDevServer, type DevServer } from '../../local/dev-server';
import { startOpenAiStub } from '../support/model-stubs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const ROOT = join(import.meta.dirname, '..', '..');
const doc = parseYaml(readFileSync(join(ROOT, 'docs', 'openapi.yaml'), 'utf8'));
const example = (file: string) => parseYaml(readFileSync(join(ROOT, 'examples', file), 'utf8'));

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
addFormats(ajv);
// OpenAPI's own top-level fields are not JSON Schema keywords; declare them so strict mode accepts the document.
for (const keyword of ['openapi', 'info', 'servers', 'tags', 'paths', 'components']) ajv.addKeyword(keyword);
ajv.addSchema(doc, 'openapi.yaml');

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const validatorFor = (path: string) => ajv.getSchema(`openapi.yaml#/${path}`) ?? ajv.compile({ $ref: `openapi.yaml#/${path}` });

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const documented = new Set<string>();
for (const [path, item] of Object.entries<any>(doc.paths)) {
  for (const method of METHODS) {
    for (const status of Object.keys(item[method]?.responses ?? {})) documented.add(`${method.toUpperCase()} ${path} ${status}`);
  }
}
const exercised = new Set<string>();

interface Answer {
  status: number;
  contentType: string;
  body: any;
}

let server: DevServer;

/** Calls the dev server and checks the answer against what the document says for `template`. */
async function call(method: string, template: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(`${server.url}${path}`, { method, body: init.body, headers: init.headers });
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
  const text = await response.text();
  const body = contentType === 'application/json' ? JSON.parse(text) : text;
  const operation = doc.paths[template]?.[method.toLowerCase()];
  expect(operation, `${method} ${template} is documented`).toBeDefined();
  let responsePath = pointer('paths', template, method.toLowerCase(), 'responses', String(response.status));
  let documentedResponse = operation.responses[String(response.status)];
  expect(documentedResponse, `${method} ${template} documents status ${response.status} (${text.slice(0, 200)})`).toBeDefined();
  if (documentedResponse.$ref) {
    responsePath = documentedResponse.$ref.slice(2);
    documentedResponse = documentedResponse.$ref.split('/').slice(1).reduce((node: any, key: string) => node[key], doc);
  }
  expect(Object.keys(documentedResponse.content), `${method} ${template} ${response.status} documents ${contentType}`).toContain(contentType);
  const validate = validatorFor(`${responsePath}/${pointer('content', contentType, 'schema')}`);
  expect(validate(body), `${method} ${path} ${response.status}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  exercised.add(`${method} ${template} ${response.status}`);
  return { status: response.status, contentType, body };
}

const json = (value: unknown) => ({ body: JSON.stringify(value), headers: { 'content-type': 'application/json' } });

beforeAll(async () => {
  server = await startDevServer({ port: 0 });
});
afterAll(async () => {
  await server?.close();
});

describe('docs/openapi.yaml', () => {
  it('is an OpenAPI 3.1 document whose every operation and response schema compiles', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(documented.size).toBeGreaterThan(10);
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const method of METHODS.filter((m) => item[m])) {
        expect(item[method].operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
        for (const [status, response] of Object.entries<any>(item[method].responses)) {
          const target = response.$ref ? response.$ref.split('/').slice(1).reduce((n: any, k: string) => n[k], doc) : response;
          expect(target?.description, `${method} ${path} ${status}`).toBeTruthy();
          for (const media of Object.keys(target.content ?? {})) {
            const base = response.$ref ? response.$ref.slice(2) : pointer('paths', path, method, 'responses', status);
            expect(() => validatorFor(`${base}/${pointer('content', media, 'schema')}`)).not.toThrow();
          }
        }
      }
    }
  });

  it('documents the request body: every example scenario fits the Scenario schema', () => {
    const validate = validatorFor(pointer('components', 'schemas', 'Scenario'));
    for (const file of ['simple-parallel.yaml', 'hierarchical.yaml', 'dynamic-workflow.yaml', 'recursion.yaml', 'failures.yaml', 'quorum-custom-aggregator.yaml']) {
      expect(validate(example(file)), `${file}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
  });

  it('documents every limit with its minimum, default and ceiling (core/limit-table.ts)', () => {
    const documentedLimits = Object.fromEntries(
      Object.entries<any>(doc.components.schemas.Limits.properties).map(([name, p]) => [name, { min: p.minimum, default: p.default, ceiling: p.maximum }]),
    );
    const table = Object.fromEntries(Object.entries(LIMIT_TABLE).map(([name, row]) => [name, { min: row.min, default: row.default, ceiling: row.ceiling }]));
    expect(documentedLimits).toEqual(table);
  });

  it('documents the one set of error names the API answers with', () => {
    expect([...doc.components.schemas.Error.properties.error.enum].sort()).toEqual([...API_ERROR_NAMES].sort());
  });
});

describe('the handler answers as documented', () => {
  let completedRunId: string;

  it('POST /runs → 202 {runId, created}; the same Idempotency-Key → the same run, created false', async () => {
    const headers = { 'content-type': 'application/json', 'idempotency-key': 'openapi-test-1' };
    const first = await call('POST', '/runs', '/runs', { body: JSON.stringify(example('hierarchical.yaml')), headers });
    expect(first).toMatchObject({ status: 202, body: { created: true } });
    const again = await call('POST', '/runs', '/runs', { body: JSON.stringify(example('hierarchical.yaml')), headers });
    expect(again.body).toEqual({ runId: first.body.runId, created: false });
    completedRunId = first.body.runId;
    expect((await server.runtime.waitForRun(completedRunId)).status).toBe('COMPLETED');
  });

  it('GET /runs → the runs newest first, a page at a time; 400 for a bad limit or cursor', async () => {
    const all = await call('GET', '/runs', '/runs');
    expect(all.body.runs[0]).toMatchObject({ runId: completedRunId, status: 'COMPLETED' });
    const first = await call('GET', '/runs', '/runs?limit=1');
    expect(first.body.runs).toHaveLength(1);
    if (all.body.runs.length > 1) expect(typeof first.body.cursor).toBe('string');
    expect((await call('GET', '/runs', '/runs?limit=0')).body).toMatchObject({ error: 'ValidationError', field: 'limit' });
    expect((await call('GET', '/runs', '/runs?cursor=nonsense')).status).toBe(400);
  });

  it('GET /runs/{id}, /branches, /tree (json, ascii, mermaid) and /metrics → 200', async () => {
    const id = completedRunId;
    const run = await call('GET', '/runs/{runId}', `/runs/${id}`);
    expect(run.body).toMatchObject({ runId: id, name: 'hierarchical-research-team', status: 'COMPLETED', error: null });
    const branches = await call('GET', '/runs/{runId}/branches', `/runs/${id}/branches`);
    expect(branches.body.branches).toHaveLength(9);
    expect(branches.body.cursor).toBeNull();
    // Pages of 4: 4 + 4 + 1, joined they are the whole list.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Answer = await call('GET', '/runs/{runId}/branches', `/runs/${id}/branches?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.body.branches.length).toBeLessThanOrEqual(4);
      paged.push(...page.body.branches.map((b: { id: string }) => b.id));
      cursor = page.body.cursor;
    } while (cursor);
    expect(paged.sort()).toEqual(branches.body.branches.map((b: { id: string }) => b.id).sort());
    const badCursor = await call('GET', '/runs/{runId}/branches', `/runs/${id}/branches?cursor=nonsense`);
    expect(badCursor).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'cursor' } });
    // The tree in pages of 4 (json, then ascii): tops whose parent is on an earlier page name it; joined, they are the tree.
    const treePaged: { id: string; parentId: string | null }[] = [];
    const flat = (nodes: any[]): any[] => nodes.flatMap(({ children, ...node }) => [node, ...flat(children)]);
    cursor = null;
    do {
      const page: Answer = await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(flat(page.body.tree).length).toBeLessThanOrEqual(4);
      treePaged.push(...flat(page.body.tree));
      cursor = page.body.cursor;
    } while (cursor);
    expect(treePaged.map((b) => [b.id, b.parentId]).sort()).toEqual(branches.body.branches.map((b: { id: string; parentId: string | null }) => [b.id, b.parentId]).sort());
    const asciiPage = await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree?format=ascii&limit=4`);
    expect(asciiPage.body.split('\n')).toHaveLength(5);
    expect(asciiPage.body).toMatch(/\n… more branches: ask again with cursor=[A-Za-z0-9_-]+$/);
    expect((await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree?limit=10001`)).body).toMatchObject({ error: 'ValidationError', field: 'limit' });
    const tree = await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree`);
    expect(tree.body).toMatchObject({ cursor: null, tree: [{ id: 'root', parentId: null, agent: 'Director', children: [{ id: 'root.0', parentId: 'root' }, { id: 'root.1' }] }] });
    const ascii = await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree?format=ascii`);
    expect(ascii).toMatchObject({ contentType: 'text/plain', body: expect.stringMatching(/^root Director \(nested\) \[COMPLETED\]\n├─ root\.0 TeamLead/) });
    const mermaid = await call('GET', '/runs/{runId}/tree', `/runs/${id}/tree?format=mermaid`);
    expect(mermaid.body).toMatch(/^flowchart TD\n/);
    const branch = await call('GET', '/runs/{runId}/branches/{branchId}', `/runs/${id}/branches/root.0`);
    expect(branch.body.syncPoints[0]).toMatchObject({ outcome: 'resume', children: [{ id: 'root.0.0' }, { id: 'root.0.1' }, { id: 'root.0.2' }] });
    const noBranch = await call('GET', '/runs/{runId}/branches/{branchId}', `/runs/${id}/branches/root.9`);
    expect(noBranch.body).toMatchObject({ error: 'NotFoundError', message: `branch root.9 of run ${id} not found` });
    const metrics = await call('GET', '/runs/{runId}/metrics', `/runs/${id}/metrics`);
    const { cost, ...counts } = metrics.body;
    const { cost: costBefore, ...countsBefore } = run.body.metrics;
    expect(counts).toEqual(countsBefore);
    // The reads these calls made are billed to the run, as DynamoDB bills them, and each flush of
    // the cost meter writes the run's cost item: once flushed, the DynamoDB units can only grow.
    expect(cost.dynamodb.readUnits).toBeGreaterThanOrEqual(costBefore.dynamodb.readUnits);
    expect(cost.dynamodb.writeUnits).toBeGreaterThanOrEqual(costBefore.dynamodb.writeUnits);
    const otherServices = (c: typeof cost) => ({ ...c, dynamodb: undefined, usd: undefined });
    expect(otherServices(cost)).toEqual(otherServices(costBefore));
  });

  it('POST /runs/{id}/callbacks/{token} → 202 once (the run completes with the answer), 409 again, 410 after a cancel; 400 / 404 / 413 for a malformed token, an unknown one, a large answer', async () => {
    const seen: LifecycleEvent[] = [];
    const stop = server.runtime.bus.subscribe((e) => void seen.push(e));
    const token = async (runId: string) => {
      await new Promise<void>((resolve) => {
        const check = () => (seen.some((e) => e.runId === runId && e.type === 'BranchWaitingForCallback') ? resolve() : setImmediate(check));
        check();
      });
      return String(seen.filter((e) => e.type === 'BranchWaitingForCallback').find((e) => e.runId === runId)!.detail.token);
    };
    const approval = {
      name: 'approval',
      request: 'deploy v2',
      entry: 'Approver',
      agents: { Approver: { kind: 'script', responses: [{ next_action: 'wait_for_callback', timeout_seconds: 600, message: 'deploy v2?' }, { next_action: 'final_response', content: '$input' }] } },
    };
    try {
      const started = await call('POST', '/runs', '/runs', json(approval));
      const runId = started.body.runId as string;
      const answer = (t: string, body: string) => call('POST', '/runs/{runId}/callbacks/{token}', `/runs/${runId}/callbacks/${encodeURIComponent(t)}`, { body, headers: { 'content-type': 'application/json' } });
      const t = await token(runId);
      const branch = await call('GET', '/runs/{runId}/branches/{branchId}', `/runs/${runId}/branches/root`);
      expect(branch.body.branch).toMatchObject({ status: 'RUNNING', waiting: { kind: 'callback', token: t, message: 'deploy v2?' } });
      expect(await answer('not-a-token', '"yes"')).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'token' } });
      expect(await answer(`root~1~${'0'.repeat(32)}`, '"yes"')).toMatchObject({ status: 404, body: { error: 'NotFoundError' } });
      expect(await answer(t, JSON.stringify('x'.repeat(70_000)))).toMatchObject({ status: 413, body: { error: 'PayloadTooLargeError', field: 'answer' } });
      expect(await answer(t, '{"approved": true}')).toMatchObject({ status: 202, body: { runId, branchId: 'root', status: 'ANSWERED' } });
      expect(await answer(t, '{"approved": false}')).toMatchObject({ status: 409, body: { error: 'ConflictError', message: expect.stringMatching(/answered already/) } });
      const run = await server.runtime.waitForRun(runId);
      expect(run).toMatchObject({ status: 'COMPLETED', result: { approved: true } });

      const cancelled = (await call('POST', '/runs', '/runs', json(approval))).body.runId as string;
      const t2 = await token(cancelled);
      await call('POST', '/runs/{runId}/cancel', `/runs/${cancelled}/cancel`);
      const late = await call('POST', '/runs/{runId}/callbacks/{token}', `/runs/${cancelled}/callbacks/${t2}`, json('yes'));
      expect(late).toMatchObject({ status: 410, body: { error: 'GoneError', message: expect.stringMatching(/the branch was cancelled/) } });
      expect((await server.runtime.waitForRun(cancelled)).status).toBe('CANCELLED');
      // The events read back from the records show the callback the branch was paused on, with its token.
      const read = await call('GET', '/runs/{runId}/events', `/runs/${cancelled}/events`);
      expect(read.body.events.map((e: { type: string }) => e.type)).toEqual(['RunStarted', 'BranchCreated', 'BranchWaitingForCallback', 'BranchCancelled', 'RunCancelled']);
      expect(read.body.events[2].detail).toMatchObject({ token: t2, message: 'deploy v2?' });
      expect(await call('POST', '/runs/{runId}/callbacks/{token}', `/runs/no-such-run/callbacks/${t2}`, json('yes'))).toMatchObject({ status: 404 });
    } finally {
      stop();
    }
  });

  it('GET /runs/{id}/events → the lifecycle events after a cursor; the same cursor back when nothing is new', async () => {
    const id = completedRunId;
    const first = await call('GET', '/runs/{runId}/events', `/runs/${id}/events?limit=3`);
    expect(first.body.events.map((e: { type: string }) => e.type)).toEqual(['RunStarted', 'BranchCreated', 'BranchCreated']);
    expect(first.body.done).toBe(false);
    const rest = await call('GET', '/runs/{runId}/events', `/runs/${id}/events?after=${encodeURIComponent(first.body.cursor)}`);
    // 9 branches' two events each, the run's two, and the sync points' (the stored stream has them all).
    const syncPoints = [...first.body.events, ...rest.body.events].filter((e: { type: string }) => e.type === 'SyncPointReached').length;
    expect(syncPoints).toBeGreaterThan(0);
    expect(rest.body.events).toHaveLength(9 * 2 + 2 + syncPoints - 3);
    expect(rest.body.events.at(-1).type).toBe('RunCompleted');
    expect(rest.body.done).toBe(true);
    const none = await call('GET', '/runs/{runId}/events', `/runs/${id}/events?cursor=${encodeURIComponent(rest.body.cursor)}`);
    expect(none.body).toEqual({ runId: id, status: 'COMPLETED', events: [], cursor: rest.body.cursor, done: true });
    const bad = await call('GET', '/runs/{runId}/events', `/runs/${id}/events?after=nonsense`);
    expect(bad).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'after' } });
  });

  it('GET /runs/{id}/branches/{branchId}/result → 200 with the whole result the views only preview; 404 for an unknown branch', async () => {
    const wide = {
      name: 'large-result',
      request: 'go',
      entry: 'Fanner',
      limits: { maxFanOut: 40 },
      agents: {
        Fanner: {
          kind: 'script',
          allowed: ['Worker'],
          rules: [{ when: 'child_count', responses: [{ next_action: 'final_response', content: '$input' }] }],
          responses: [{ next_action: 'parallel_invoke', agents: Array(40).fill('Worker') }],
        },
        Worker: { kind: 'script', responses: [{ next_action: 'final_response', content: { text: 'x'.repeat(2_000) } }] },
      },
    };
    const { body } = await call('POST', '/runs', '/runs', json(wide));
    expect((await server.runtime.waitForRun(body.runId)).status).toBe('COMPLETED');
    // An 82 KB aggregate: the run's view shows a preview that says so, its small members whole.
    const run = await call('GET', '/runs/{runId}', `/runs/${body.runId}`);
    expect(run.body).toMatchObject({ resultTruncated: true, resultBytes: expect.any(Number), result: { child_count: 40 } });
    expect(run.body.resultBytes).toBeGreaterThan(80_000);
    expect(JSON.stringify(run.body.result).length).toBeLessThan(64 * 1024);
    const whole = await call('GET', '/runs/{runId}/branches/{branchId}/result', `/runs/${body.runId}/branches/root/result`);
    expect(whole.body).toMatchObject({ runId: body.runId, branchId: 'root', status: 'COMPLETED' });
    expect(Object.values(whole.body.result.results)).toEqual(Array(40).fill({ text: 'x'.repeat(2_000) }));
    expect(JSON.stringify(whole.body.result).length).toBe(run.body.resultBytes);
    const child = await call('GET', '/runs/{runId}/branches/{branchId}/result', `/runs/${body.runId}/branches/root.7/result`);
    expect(child.body.result).toEqual({ text: 'x'.repeat(2_000) });
    const missing = await call('GET', '/runs/{runId}/branches/{branchId}/result', `/runs/${body.runId}/branches/root.40/result`);
    expect(missing).toMatchObject({ status: 404, body: { error: 'NotFoundError', message: `branch root.40 of run ${body.runId} not found` } });
  });

  it('GET /runs/{id}/values/{ref} → the whole output a ToolCalled event keeps by reference; 404 for a reference the run has none by', async () => {
    const page = 'p'.repeat(3_000);
    const tool = createServer((_req, res) => res.end(page));
    await new Promise<void>((resolve) => tool.listen(0, '127.0.0.1', resolve));
    const model = await startOpenAiStub((view) =>
      view.results.length === 0 ? { calls: [{ name: 'fetch_page', args: { n: 1 } }] } : { calls: [{ name: 'final_response', args: { content: 'read' } }] },
    );
    try {
      const scenario = {
        name: 'tool-values',
        request: 'read it',
        entry: 'Reader',
        agents: {
          Reader: {
            kind: 'openai',
            baseUrl: model.url,
            model: 'stub',
            toolCalling: 'on',
            tools: [{ kind: 'http', name: 'fetch_page', url: `http://127.0.0.1:${(tool.address() as AddressInfo).port}/page` }],
          },
        },
      };
      const { body } = await call('POST', '/runs', '/runs', json(scenario));
      expect((await server.runtime.waitForRun(body.runId)).status).toBe('COMPLETED');
      const events = await call('GET', '/runs/{runId}/events', `/runs/${body.runId}/events`);
      const called = (events.body.events as LifecycleEvent[]).find((e) => e.type === 'ToolCalled')!;
      // Past 1 KB the event carries a preview and the reference; the route gives the whole output.
      expect(called.detail).toMatchObject({ tool: 'fetch_page', status: 'ok', outputBytes: 3_000, outputRef: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(String(called.detail.output)).toContain('more characters');
      const whole = await call('GET', '/runs/{runId}/values/{ref}', `/runs/${body.runId}/values/${String(called.detail.outputRef)}`);
      expect(whole.body).toEqual({ runId: body.runId, ref: called.detail.outputRef, value: page });
      const missing = await call('GET', '/runs/{runId}/values/{ref}', `/runs/${body.runId}/values/${'0'.repeat(64)}`);
      expect(missing).toMatchObject({ status: 404, body: { error: 'NotFoundError' } });
    } finally {
      await model.close();
      await new Promise<void>((resolve) => tool.close(() => resolve()));
    }
  });

  it('POST /runs/{id}/cancel → 202 for a running run (and again once cancelled), 409 for a finished one', async () => {
    const slow = {
      name: 'slow',
      request: 'wait',
      entry: 'Sleeper',
      agents: { Sleeper: { kind: 'script', responses: [{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }] } },
    };
    const { body } = await call('POST', '/runs', '/runs', json(slow));
    const cancelled = await call('POST', '/runs/{runId}/cancel', `/runs/${body.runId}/cancel`);
    expect(cancelled.body).toEqual({ runId: body.runId, status: 'CANCELLED' });
    expect((await server.runtime.waitForRun(body.runId)).status).toBe('CANCELLED');
    expect((await call('POST', '/runs/{runId}/cancel', `/runs/${body.runId}/cancel`)).status).toBe(202);
    const conflict = await call('POST', '/runs/{runId}/cancel', `/runs/${completedRunId}/cancel`);
    expect(conflict).toMatchObject({ status: 409, body: { error: 'ConflictError', message: expect.stringContaining('COMPLETED') } });
  });

  it('400 for a missing body, a body that is not JSON, an invalid scenario, a bad Idempotency-Key, an unknown tree format', async () => {
    const cases: [Answer, string | undefined][] = [
      [await call('POST', '/runs', '/runs'), '(root)'],
      [await call('POST', '/runs', '/runs', { body: '{"name": ', headers: { 'content-type': 'application/json' } }), '(root)'],
      [await call('POST', '/runs', '/runs', json({ name: 'x', entry: 'A', agents: { A: { kind: 'telepathy' } } })), 'agents.A.kind'],
      [await call('POST', '/runs', '/runs', json([1, 2])), '(root)'],
      [
        await call('POST', '/runs', '/runs', {
          ...json(example('simple-parallel.yaml')),
          headers: { 'content-type': 'application/json', 'idempotency-key': 'k'.repeat(257) },
        }),
        'Idempotency-Key',
      ],
      [await call('GET', '/runs/{runId}/tree', `/runs/${completedRunId}/tree?format=xml`), 'format'],
    ];
    for (const [answer, field] of cases) {
      expect(answer.status).toBe(400);
      // One name for one kind of error: an invalid scenario is a ValidationError too (field names it).
      expect(answer.body).toMatchObject({ error: 'ValidationError', field });
    }
  });

  it('404 for an unknown run on every run route', async () => {
    const routes: [string, string][] = [
      ['GET', '/runs/{runId}'],
      ['GET', '/runs/{runId}/branches'],
      ['GET', '/runs/{runId}/tree'],
      ['GET', '/runs/{runId}/metrics'],
      ['POST', '/runs/{runId}/cancel'],
      ['GET', '/runs/{runId}/events'],
      ['GET', '/runs/{runId}/branches/{branchId}/result'],
      ['GET', '/runs/{runId}/values/{ref}'],
    ];
    for (const [method, template] of routes) {
      const answer = await call(method, template, template.replace('{runId}', 'no-such-run').replace('{branchId}', 'root').replace('{ref}', 'a'.repeat(64)));
      expect(answer).toMatchObject({ status: 404, body: { error: 'NotFoundError', message: 'run no-such-run not found' } });
    }
  });

  it('413 for a body over the limit, before anything parses it, and for a scenario too large to keep, naming the field', async () => {
    const huge = JSON.stringify({ ...example('simple-parallel.yaml'), request: 'x'.repeat(1100 * 1024) });
    const body = await call('POST', '/runs', '/runs', { body: huge, headers: { 'content-type': 'application/json' } });
    expect(body).toMatchObject({ status: 413, body: { error: 'PayloadTooLargeError', message: expect.stringMatching(/at most 1048576 are accepted/) } });
    const big = JSON.stringify({ ...example('simple-parallel.yaml'), request: 'x'.repeat(300 * 1024) });
    const answer = await call('POST', '/runs', '/runs', { body: big, headers: { 'content-type': 'application/json' } });
    expect(answer).toMatchObject({
      status: 413,
      body: { error: 'PayloadTooLargeError', field: 'request', message: expect.stringMatching(/at most 262144 are accepted/) },
    });
  });

  it('405 for a method a path does not take, 404 NotFound for a path no route matches (components.responses)', async () => {
    const errorSchema = validatorFor(pointer('components', 'schemas', 'Error'));
    for (const [method, path, status, error] of [
      ['DELETE', `/runs/${completedRunId}`, 405, 'MethodNotAllowedError'],
      ['PUT', '/runs', 405, 'MethodNotAllowedError'],
      ['GET', '/nowhere', 404, 'NotFoundError'],
    ] as const) {
      const response = await fetch(`${server.url}${path}`, { method });
      const body: any = await response.json();
      expect(response.status).toBe(status);
      expect(errorSchema(body), ajv.errorsText(errorSchema.errors)).toBe(true);
      expect(body.error).toBe(error);
    }
    expect(doc.components.responses.MethodNotAllowed.content['application/json']).toBeDefined();
  });

  it('every documented route and status was exercised', () => {
    expect([...documented].filter((d) => !exercised.has(d))).toEqual([]);
  });
});

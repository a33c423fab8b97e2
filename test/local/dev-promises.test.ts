/**
 * What docs/dev-server.md promises, checked against the running server: every route its tables
 * list answers (none is a 404), the examples run from the page's path (`POST /scenarios/parse`
 * then `POST /runs`) with their `module` agents found next to the example, and a request whose
 * module file or export is missing is refused as `run` refuses it (400 naming the field).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../local/dev-server';

const ROOT = join(import.meta.dirname, '..', '..');

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ port: 0 });
});
afterAll(async () => {
  await server?.close();
});

const send = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
  const abort = new AbortController();
  const response = await fetch(`${server.url}${path}`, { method, body, headers: { 'content-type': 'application/json', ...headers }, signal: abort.signal });
  // The event streams never end: their status and type are the answer.
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    abort.abort();
    return { status: response.status, body: null as any };
  }
  const text = await response.text();
  return { status: response.status, body: (response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text) as any };
};

/** What the page does: the example's text through /scenarios/parse (naming the example), then POST /runs. */
async function startFromPage(file: string, text = readFileSync(join(ROOT, 'examples', file), 'utf8')) {
  const parsed = await send('POST', `/scenarios/parse?example=${encodeURIComponent(file)}`, text, { 'content-type': 'application/yaml' });
  expect(parsed.status, JSON.stringify(parsed.body)).toBe(200);
  return send('POST', '/runs', JSON.stringify(parsed.body.document), { 'idempotency-key': `page-${file}-${Math.random()}` });
}

/** The routes docs/dev-server.md lists, as `METHOD /path` (a row may list several paths). */
function documentedRoutes(): string[] {
  const text = readFileSync(join(ROOT, 'docs', 'dev-server.md'), 'utf8');
  const routes: string[] = [];
  for (const line of text.split('\n')) {
    const cell = /^\| (`[A-Z]+ \/(?:\\\||[^|])*)\|/.exec(line)?.[1];
    if (!cell) continue;
    const tokens = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    const method = tokens[0].split(' ')[0];
    routes.push(tokens[0], ...tokens.slice(1).filter((t) => t.startsWith('/')).map((t) => `${method} ${t}`));
  }
  return routes;
}

describe('docs/dev-server.md', () => {
  it('every route it lists answers (requested for real, none is a 404 or 405)', async () => {
    const started = await startFromPage('simple-parallel.yaml');
    expect(started.status).toBe(202);
    const runId = started.body.runId as string;
    await server.runtime.waitForRun(runId);
    const bodies: Record<string, string> = {
      'POST /runs': readFileSync(join(ROOT, 'examples', 'simple-parallel.yaml'), 'utf8'),
      'POST /scenarios/parse': 'name: x\n',
    };
    const routes = documentedRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(15);
    for (const route of routes) {
      const [method, template] = route.split(' ');
      const path = template.replace('{id}', runId).replace('{branchId}', 'root.0').replace(/format=\S*$/, 'format=ascii');
      let body = bodies[route];
      if (route === 'POST /runs') body = JSON.stringify((await send('POST', '/scenarios/parse', body, { 'content-type': 'application/yaml' })).body.document);
      const answer = await send(method, path, body, route === 'POST /runs' ? { 'idempotency-key': 'routes-doc' } : {});
      expect([404, 405], `${route} answered ${answer.status}: ${JSON.stringify(answer.body)}`).not.toContain(answer.status);
      expect(answer.status, route).toBeLessThan(500);
    }
  });
});

describe('examples started the way the page starts them', () => {
  it('module-agents.yaml finds ./module-agents.ts next to the example, not in the folder dev started in', async () => {
    const started = await startFromPage('module-agents.yaml');
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const run = await server.runtime.waitForRun(started.body.runId);
    expect(run.error ?? null).toBeNull();
    expect(run.status).toBe('COMPLETED');
  });

  it('an example name that is not one of the examples is refused, naming it', async () => {
    const answer = await send('POST', '/scenarios/parse?example=..%2Fpackage.json', 'name: x\n', { 'content-type': 'application/yaml' });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'ValidationError', field: 'example' });
  });
});

describe('a module agent whose file or export is missing', () => {
  const scenario = (module: string, exportName: string) =>
    JSON.stringify({ name: 'm', request: 'x', entry: 'A', agents: { A: { kind: 'module', module, export: exportName } } });

  it('is refused with 400 naming the field, as run refuses it with exit 2 (202 and a failed run before)', async () => {
    const missingFile = await send('POST', '/runs', scenario(join(ROOT, 'examples', 'no-such-file.ts'), 'planner'), { 'idempotency-key': 'm-1' });
    expect(missingFile.status).toBe(400);
    expect(missingFile.body).toMatchObject({ error: 'ValidationError', field: 'agents.A.module' });
    expect(missingFile.body.message).toMatch(/^agents\.A\.module: /);

    const missingExport = await send('POST', '/runs', scenario(join(ROOT, 'examples', 'module-agents.ts'), 'nope'), { 'idempotency-key': 'm-2' });
    expect(missingExport.status).toBe(400);
    expect(missingExport.body).toMatchObject({ error: 'ValidationError', field: 'agents.A.export' });
    expect(missingExport.body.message).toContain('function exports: planner, worker');
  });
});

describe('POST /scenarios/parse', () => {
  it('reports a YAML alias inside its own anchor as a cycle, naming where (400, not a 500)', async () => {
    const answer = await send('POST', '/scenarios/parse', 'name: x\nentry: A\nrequest: &r { again: *r }\n', { 'content-type': 'application/yaml' });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'ValidationError', field: 'request.again' });
    expect(answer.body.message).toContain('refers to itself');
  });
});

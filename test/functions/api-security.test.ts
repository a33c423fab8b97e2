/**
 * Who may call and whose runs they see, through the real API handler: a token of a foreign
 * Cognito app client is refused; an Idempotency-Key never reaches another caller's run, and
 * another caller's run reads as missing (unless the team shares runs).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createApiHandler, type ApiConfig } from '../../functions/handlers/api';
import { runIdFor } from '../../functions/messages';
import { createMemoryHarness } from '../support/memory-harness';

const scenario = { name: 's', request: 'x', entry: 'A', agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'done' }] } } };

type Caller = { claims?: Record<string, string>; userArn?: string };

function event(method: string, path: string, caller: Caller, options: { body?: unknown; key?: string; query?: Record<string, string> } = {}): APIGatewayProxyEvent {
  return {
    httpMethod: method, path, headers: options.key ? { 'Idempotency-Key': options.key } : {},
    body: options.body === undefined ? null : JSON.stringify(options.body), isBase64Encoded: false, queryStringParameters: options.query ?? null,
    multiValueHeaders: {}, multiValueQueryStringParameters: null, pathParameters: null, stageVariables: null, resource: path,
    requestContext: { authorizer: caller.claims ? { claims: caller.claims } : null, identity: { userArn: caller.userArn ?? null } } as never,
  };
}

function api(extra: Partial<ApiConfig> = {}) {
  const h = createMemoryHarness();
  const handler = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't', ...extra });
  const call = async (e: APIGatewayProxyEvent) => {
    const response = (await handler(e, {} as Context)) as APIGatewayProxyResult;
    return { status: response.statusCode, body: JSON.parse(response.body) };
  };
  return { h, call };
}

describe('the API and its callers', () => {
  it('refuses a token of a Cognito app client that is not an audience of the API', async () => {
    const { h, call } = api({ audience: ['app-client-1'] });
    const foreign = await call(event('POST', '/runs', { claims: { sub: 'u1', client_id: 'app-client-2' } }, { body: scenario }));
    expect(foreign).toMatchObject({ status: 403, body: { error: 'ForeignRequestError', message: 'the token\'s app client "app-client-2" is not an audience of this API' } });
    const idToken = await call(event('POST', '/runs', { claims: { sub: 'u1', aud: 'app-client-3' } }, { body: scenario }));
    expect(idToken).toMatchObject({ status: 403, body: { error: 'ForeignRequestError' } });
    const own = await call(event('POST', '/runs', { claims: { sub: 'u1', client_id: 'app-client-1' } }, { body: scenario }));
    expect(own.status).toBe(202);
    h.stop();
  });

  it("another caller's Idempotency-Key starts that caller's own run; another caller's run reads and cancels as missing", async () => {
    const { h, call } = api();
    const alice = { userArn: 'arn:aws:sts::111111111111:assumed-role/Analyst/alice' };
    const mallory = { userArn: 'arn:aws:sts::111111111111:assumed-role/Analyst/mallory' };
    const first = await call(event('POST', '/runs', alice, { body: scenario, key: 'q4-report' }));
    expect(first).toMatchObject({ status: 202, body: { created: true } });
    const again = await call(event('POST', '/runs', alice, { body: scenario, key: 'q4-report' }));
    expect(again.body).toEqual({ runId: first.body.runId, created: false });
    // The id is random, kept for the key apart: nothing about it follows from the key or the caller.
    expect(first.body.runId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(first.body.runId).not.toBe(runIdFor('t', 'q4-report', alice.userArn));
    // The same key from another caller never names Alice's run.
    const other = await call(event('POST', '/runs', mallory, { body: scenario, key: 'q4-report' }));
    expect(other).toMatchObject({ status: 202, body: { created: true } });
    expect(other.body.runId).not.toBe(first.body.runId);
    const runId = first.body.runId;
    // Every route of one run: none tells Mallory anything of Alice's run.
    const routes = [
      ['GET', `/runs/${runId}`],
      ['GET', `/runs/${runId}/branches`],
      ['GET', `/runs/${runId}/branches/root`],
      ['GET', `/runs/${runId}/branches/root/result`],
      ['GET', `/runs/${runId}/tree`],
      ['GET', `/runs/${runId}/metrics`],
      ['GET', `/runs/${runId}/events`],
      ['POST', `/runs/${runId}/cancel`],
    ];
    for (const [method, path] of routes) {
      expect(await call(event(method, path, mallory)), `${method} ${path}`).toMatchObject({ status: 404, body: { error: 'NotFoundError' } });
    }
    for (const [method, path] of routes.filter(([method]) => method === 'GET')) expect((await call(event(method, path, alice))).status, path).toBe(200);
    h.stop();
  });

  it('a team that shares runs lets its callers read each other’s runs', async () => {
    const { h, call } = api({ shareRuns: true });
    const started = await call(event('POST', '/runs', { claims: { sub: 'u1' } }, { body: scenario }));
    expect((await call(event('GET', `/runs/${started.body.runId}`, { claims: { sub: 'u2' } }))).status).toBe(200);
    h.stop();
  });

  it("GET /runs lists the caller's own runs newest first, a page at a time; with shareRuns the team's", async () => {
    for (const shareRuns of [false, true]) {
      const { h, call } = api({ shareRuns });
      // Each run a second after the one before (runs of one millisecond would list in id order).
      let offset = 0;
      h.deps.clock = { now: () => Date.now() + offset };
      const alice = { userArn: 'arn:aws:iam::1:user/alice' };
      const bob = { userArn: 'arn:aws:iam::1:user/bob' };
      const started: Record<string, string[]> = { alice: [], bob: [] };
      for (const [name, caller] of [['alice', alice], ['bob', bob], ['alice', alice], ['bob', bob], ['alice', alice]] as const) {
        offset += 1000;
        started[name].push((await call(event('POST', '/runs', caller, { body: scenario }))).body.runId);
      }
      const listed: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await call(event('GET', '/runs', alice, { query: { limit: '2', ...(cursor ? { cursor } : {}) } }));
        expect(page.status).toBe(200);
        expect(page.body.runs.length).toBeLessThanOrEqual(2);
        listed.push(...page.body.runs.map((r: { runId: string }) => r.runId));
        cursor = page.body.cursor ?? undefined;
      } while (cursor);
      const everyone = [started.alice[2], started.bob[1], started.alice[1], started.bob[0], started.alice[0]];
      expect(listed).toEqual(shareRuns ? everyone : [...started.alice].reverse());
      expect(await call(event('GET', '/runs', alice, { query: { limit: '101' } }))).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'limit' } });
      expect(await call(event('GET', '/runs', alice, { query: { cursor: 'nonsense' } }))).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'cursor' } });
      h.stop();
    }
  });
});

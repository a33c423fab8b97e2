/**
 * The list routes page, through the real API handler: a 30,000-branch run (its branches written
 * to the store directly: running them would only make the test slow) is read a page at a time,
 * and the pages join to exactly its branches, each answer under Lambda's 6 MB.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MAX_PAGE_LIMIT } from '../../core/page-cursor';
import { createApiHandler } from '../../functions/handlers/api';
import { branchRecord, runRecord } from '../adapters/branch-store-conformance';
import { createMemoryHarness } from '../support/memory-harness';

const BRANCHES = 30_000;
const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;

function get(path: string, query: Record<string, string> = {}): APIGatewayProxyEvent {
  return {
    httpMethod: 'GET', path, headers: {}, body: null, isBase64Encoded: false, queryStringParameters: Object.keys(query).length ? query : null,
    multiValueHeaders: {}, multiValueQueryStringParameters: null, pathParameters: null, stageVariables: null, resource: path, requestContext: {} as never,
  };
}

describe('GET /runs/{id}/branches pages', () => {
  it('a 30,000-branch run: the pages join to exactly its branches, each page within its limit and under 6 MB', async () => {
    const h = createMemoryHarness();
    const scope = { team: 't', runId: 'wide-30k' };
    await h.store.createRun(runRecord(scope, { branchCount: BRANCHES }));
    const ids = ['root', ...Array.from({ length: BRANCHES - 1 }, (_, i) => `root.${i}`)];
    // A result of a few hundred bytes each, as small agents answer.
    const result = { summary: 'x'.repeat(200) };
    for (let i = 0; i < ids.length; i += 5_000) {
      await h.store.createBranches(
        ids.slice(i, i + 5_000).map((id) => branchRecord(scope, id, id === 'root' ? null : 'root', { status: 'COMPLETED', result })),
      );
    }
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't' });
    const call = (event: APIGatewayProxyEvent) => api(event, {} as Context) as Promise<APIGatewayProxyResult>;
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await call(get(`/runs/${scope.runId}/branches`, cursor ? { cursor } : {}));
      expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
      expect(Buffer.byteLength(response.body)).toBeLessThan(LAMBDA_RESPONSE_BYTES);
      const page = JSON.parse(response.body) as { branches: { id: string }[]; cursor: string | null };
      expect(page.branches.length).toBeLessThanOrEqual(MAX_PAGE_LIMIT);
      seen.push(...page.branches.map((b) => b.id));
      cursor = page.cursor;
      pages++;
    } while (cursor && pages <= BRANCHES);
    expect(pages).toBe(BRANCHES / MAX_PAGE_LIMIT);
    expect(seen).toHaveLength(BRANCHES);
    expect(new Set(seen).size).toBe(BRANCHES);
    expect([...seen].sort()).toEqual([...ids].sort());

    // A smaller limit pages the same way; a cursor that this API did not give, or a limit out of range, is refused naming it.
    const small = JSON.parse((await call(get(`/runs/${scope.runId}/branches`, { limit: '3' }))).body);
    expect(small.branches.map((b: { id: string }) => b.id)).toEqual(['root', 'root.0', 'root.1']);
    const next = JSON.parse((await call(get(`/runs/${scope.runId}/branches`, { limit: '3', cursor: small.cursor }))).body);
    expect(next.branches.map((b: { id: string }) => b.id)).toEqual(['root.10', 'root.100', 'root.1000']);
    for (const [query, field] of [[{ cursor: 'bm9wZQ' }, 'cursor'], [{ limit: '0' }, 'limit'], [{ limit: '1001' }, 'limit']] as const) {
      const refused = await call(get(`/runs/${scope.runId}/branches`, query));
      expect([refused.statusCode, JSON.parse(refused.body).field]).toEqual([400, field]);
    }
    // The tree is one answer: past 10,000 branches it is refused with a pointer to the pages.
    const tree = await call(get(`/runs/${scope.runId}/tree`, { format: 'ascii' }));
    expect(tree.statusCode).toBe(413);
    expect(JSON.parse(tree.body).message).toMatch(/page through GET \/runs\/wide-30k\/branches/);
    h.stop();
  }, 120_000);
});

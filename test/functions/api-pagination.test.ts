/**
 * The list routes page, through the real API handler: a 30,000-branch run (its branches written
 * to the store directly: running them would only make the test slow) is read a page at a time,
 * and the pages join to exactly its branches, each answer under Lambda's 6 MB.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MAX_PAGE_LIMIT } from '../../core/page-cursor';
import { flattenTree, renderAscii, renderMermaid, type TreeNode } from '../../core/tree';
import { TREE_PAGE } from '../../core/use-cases/queries';
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
    // The tree pages too (below).
    h.stop();
  }, 120_000);
});

describe('GET /runs/{id}/tree pages', () => {
  it('a 30,000-branch run two levels deep: the json pages join to exactly its tree, the text pages say there is more', async () => {
    const h = createMemoryHarness();
    const scope = { team: 't', runId: 'deep-30k' };
    await h.store.createRun(runRecord(scope, { branchCount: BRANCHES }));
    // root, 99 children, each with 302 or 303 children: 30,000 branches in all.
    const ids = ['root'];
    const parentOf = new Map<string, string | null>([['root', null]]);
    for (let i = 0; ids.length < BRANCHES; i++) {
      const child = `root.${i % 99}`;
      if (!parentOf.has(child)) {
        ids.push(child);
        parentOf.set(child, 'root');
        continue;
      }
      const grandchild = `${child}.${Math.floor(i / 99) - 1}`;
      ids.push(grandchild);
      parentOf.set(grandchild, child);
    }
    for (let i = 0; i < ids.length; i += 5_000) {
      await h.store.createBranches(ids.slice(i, i + 5_000).map((id) => branchRecord(scope, id, parentOf.get(id)!, { status: 'COMPLETED', result: { summary: 'x'.repeat(200) } })));
    }
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't' });
    const call = (event: APIGatewayProxyEvent) => api(event, {} as Context) as Promise<APIGatewayProxyResult>;

    // json, the default: three pages of 10,000 branches, each a forest whose tops name their parentId.
    const seen: TreeNode[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await call(get(`/runs/${scope.runId}/tree`, cursor ? { cursor } : {}));
      expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
      expect(Buffer.byteLength(response.body)).toBeLessThan(LAMBDA_RESPONSE_BYTES);
      const page = JSON.parse(response.body) as { runId: string; tree: TreeNode[]; cursor: string | null };
      expect(page.runId).toBe(scope.runId);
      expect(response.headers?.['next-cursor']).toBe(page.cursor ?? undefined);
      const flat = flattenTree(page.tree);
      expect(flat.length).toBeLessThanOrEqual(TREE_PAGE.defaultLimit);
      seen.push(...page.tree);
      cursor = page.cursor;
      pages++;
    } while (cursor && pages <= BRANCHES);
    expect(pages).toBe(BRANCHES / TREE_PAGE.defaultLimit);
    const joined = flattenTree(seen);
    expect(joined.map((b) => b.id).sort()).toEqual([...ids].sort());
    for (const b of joined) expect(b.parentId).toBe(parentOf.get(b.id));
    // Drawn again from the pages, the tree is the one a single answer draws of all the branches.
    const all = await h.store.listBranches(scope);
    expect(renderAscii(joined)).toBe(renderAscii(all));
    expect(renderMermaid(joined)).toBe(renderMermaid(all));

    // ascii and mermaid: a page of `limit` branches, the cursor in the next-cursor header and a last line for people.
    const ascii = await call(get(`/runs/${scope.runId}/tree`, { format: 'ascii', limit: '5' }));
    const asciiLines = ascii.body.split('\n');
    expect(asciiLines.slice(0, 5)).toEqual(['root Worker (simple) [COMPLETED]', '└─ root.0 Worker (simple) [COMPLETED]', '   ├─ root.0.0 Worker (simple) [COMPLETED]', '   ├─ root.0.1 Worker (simple) [COMPLETED]', '   └─ root.0.10 Worker (simple) [COMPLETED]']);
    expect(asciiLines[5]).toBe(`… more branches: ask again with cursor=${ascii.headers!['next-cursor']}`);
    const nextAscii = await call(get(`/runs/${scope.runId}/tree`, { format: 'ascii', limit: '2', cursor: String(ascii.headers!['next-cursor']) }));
    expect(nextAscii.body.split('\n').slice(0, 2)).toEqual(['root.0.100 Worker (simple) [COMPLETED]', 'root.0.101 Worker (simple) [COMPLETED]']);
    const mermaid = await call(get(`/runs/${scope.runId}/tree`, { format: 'mermaid', limit: '3' }));
    expect(mermaid.body.split('\n').at(-1)).toBe(`%% … more branches: ask again with cursor=${mermaid.headers!['next-cursor']}`);
    // A limit out of range or a cursor this API did not give is refused naming it.
    for (const [query, field] of [[{ cursor: 'bm9wZQ' }, 'cursor'], [{ limit: '0' }, 'limit'], [{ limit: String(TREE_PAGE.max + 1) }, 'limit']] as const) {
      const refused = await call(get(`/runs/${scope.runId}/tree`, query));
      expect([refused.statusCode, JSON.parse(refused.body).field]).toEqual([400, field]);
    }
    h.stop();
  }, 120_000);
});

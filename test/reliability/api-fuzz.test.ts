/**
 * API fuzz: generated methods, paths, headers and bodies against the real api handler on the
 * in-memory ports. Every answer is a 2xx or a JSON 4xx {error, message} — never a 500 — a run is
 * created only by a 202, and a body over the limit is a 413.
 */
import type { APIGatewayProxyResult } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apiEvent, apiUnderTest } from './api-support';
import { report } from '../support/report';

const LONG = process.env.RELIABILITY_LONG === '1';
const RUNS = LONG ? 20_000 : 3_000;
const SEED = Number(process.env.RELIABILITY_SEED ?? 20_261_122);

const validScenario = {
  name: 'fuzzed',
  request: 'go',
  entry: 'A',
  agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'done' }] } },
};

/** Scenario documents: valid, one field wrong, or anything at all. */
const scenarioBody = fc.oneof(
  { arbitrary: fc.constant(validScenario), weight: 1 },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('name', 'request', 'entry', 'agents', 'limits', 'failurePolicy', 'aggregators', 'extra'), fc.anything({ maxDepth: 3 }))
      .map(([key, value]) => ({ ...validScenario, [key]: value })),
    weight: 3,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('kind', 'responses', 'allowed', 'url', 'functionName', 'model', 'baseUrl', 'rules', 'x'), fc.anything({ maxDepth: 2 }))
      .map(([key, value]) => ({ ...validScenario, agents: { A: { ...validScenario.agents.A, [key]: value } } })),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      limits: fc.dictionary(fc.constantFrom('maxDepth', 'maxFanOut', 'maxBranches', 'maxStepsPerBranch', 'bogus'), fc.oneof(fc.integer(), fc.double(), fc.string())),
    }).map((x) => ({ ...validScenario, ...x })),
    weight: 1,
  },
  { arbitrary: fc.anything({ maxDepth: 3 }), weight: 2 },
);

const rawBody = fc.oneof(
  { arbitrary: scenarioBody.map((b) => JSON.stringify(b) ?? 'undefined'), weight: 6 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 2 },
  { arbitrary: fc.json({ maxDepth: 3 }), weight: 1 },
  { arbitrary: fc.constantFrom('', '{', 'null', '[]', '"x"', '{"__proto__":{"entry":"A"}}', '\uFEFF{}'), weight: 1 },
);

const runIdPart = fc.oneof(
  fc.constantFrom('r1', 'k-0123', 'a'.repeat(64), 'a'.repeat(65), '..', '%2e%2e', 'r1%00', 'ünïcode', ''),
  fc.string({ maxLength: 80 }),
);

const path = fc.oneof(
  fc.constantFrom('/runs', '/runs/', '//runs', '/RUNS', '/runs?x=1', '/'),
  runIdPart.map((id) => `/runs/${id}`),
  fc.tuple(runIdPart, fc.constantFrom('branches', 'tree', 'metrics', 'cancel', 'nope', 'tree/', '')).map(([id, sub]) => `/runs/${id}/${sub}`),
  fc.webPath(),
  fc.string({ maxLength: 100 }),
);

const headers = fc.record(
  {
    'Idempotency-Key': fc.oneof(fc.constantFrom('', 'k'.repeat(256), 'k'.repeat(257), 'same-key'), fc.string({ maxLength: 40 })),
    'x-team': fc.oneof(fc.constantFrom('team-a', 'team-b', '#', 'T#x#R#y', 'a'.repeat(3000)), fc.string({ maxLength: 20 })),
    'content-type': fc.constantFrom('application/json', 'text/plain', ''),
  },
  { requiredKeys: [] },
);

const query = fc.option(fc.dictionary(fc.constantFrom('format', 'x'), fc.oneof(fc.constantFrom('ascii', 'mermaid', 'json', 'svg'), fc.string())), { nil: null });

const request = fc.oneof(
  // Run requests: the route that creates runs, with generated documents and headers.
  {
    arbitrary: fc.record({
      method: fc.constant('POST'),
      path: fc.constantFrom('/runs', '/runs/'),
      body: fc.option(rawBody, { nil: null, freq: 20 }),
      headers,
      base64: fc.boolean(),
      query,
    }),
    weight: 6,
  },
  // Anything else: other methods, paths and bodies.
  {
    arbitrary: fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'get', 'BREW'),
      path,
      body: fc.option(rawBody, { nil: null }),
      headers,
      base64: fc.boolean(),
      query,
    }),
    weight: 4,
  },
);

function checkAnswer(response: APIGatewayProxyResult, label: string) {
  expect(response.statusCode, label).toBeLessThan(500);
  const type = response.headers?.['content-type'];
  if (response.statusCode >= 400) {
    expect(type, label).toBe('application/json');
    const body = JSON.parse(response.body);
    expect(typeof body.error, label).toBe('string');
    expect(typeof body.message, label).toBe('string');
  } else if (type === 'application/json') {
    JSON.parse(response.body);
  }
}

describe('api handler fuzz (in-memory ports)', () => {
  it(`${RUNS} generated requests: a JSON 4xx or a success, never a 500; runs only from a 202`, async () => {
    for (const [i, inline] of (['any', 'script', 'none'] as const).entries()) {
      const { h, created, call } = apiUnderTest({ registry: { Reg: { kind: 'script', responses: [{ next_action: 'final_response', content: 'r' }] } }, inline });
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const body = r.body === null ? null : r.base64 ? Buffer.from(r.body).toString('base64') : r.body;
          const before = created.length;
          const response = await call(apiEvent(r.method, r.path, body, r.headers as Record<string, string>, { isBase64Encoded: r.base64, queryStringParameters: r.query }));
          const label = `${r.method} ${r.path} (${inline}) → ${response.statusCode} ${response.body.slice(0, 200)}`;
          checkAnswer(response, label);
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
          const answer = response.statusCode === 202 && r.method === 'POST' ? JSON.parse(response.body) : undefined;
          // A run is created by a 202 that says so, and by nothing else.
          expect(created.length - before, label).toBe(answer?.created ? 1 : 0);
        }),
        { numRuns: Math.round(RUNS / 3), seed: SEED + i, endOnFailure: true },
      );
      report(`api fuzz, inline ${inline}: statuses`, Object.fromEntries(statuses), `runs created ${created.length}`);
      h.stop();
    }
  }, 120_000);

  it('a body over the limit is a 413, whatever it holds (raw or base64), and creates nothing', async () => {
    const { h, created, call } = apiUnderTest({ registry: {}, inline: 'any' }, 1024);
    const big = JSON.stringify({ ...validScenario, request: 'x'.repeat(2000) });
    for (const event of [
      apiEvent('POST', '/runs', big),
      apiEvent('POST', '/runs', Buffer.from(big).toString('base64'), {}, { isBase64Encoded: true }),
      apiEvent('POST', '/runs', 'é'.repeat(600)), // 1200 bytes in 600 characters
      apiEvent('GET', '/runs/r1', 'z'.repeat(5000)),
    ]) {
      const response = await call(event);
      expect(response.statusCode).toBe(413);
      expect(JSON.parse(response.body)).toMatchObject({ error: 'PayloadTooLargeError', message: expect.stringMatching(/at most 1024/) });
    }
    expect(created).toEqual([]);
    // At the limit it is read.
    const fits = JSON.stringify({ ...validScenario, request: 'x'.repeat(1024 - JSON.stringify({ ...validScenario, request: '' }).length) });
    expect(Buffer.byteLength(fits)).toBe(1024);
    expect((await call(apiEvent('POST', '/runs', fits))).statusCode).toBe(202);
    h.stop();
  });
});

/**
 * Isolation and trust. Every read and write is scoped by team: a run of team A does not exist for
 * team B (404), at the API and at the worker. (The store's own scoping, keys that cannot be forged
 * with separators included, is proven by the conformance suite both stores run:
 * test/adapters/branch-store-conformance.ts, "team scoping".) And a request cannot make the
 * backend call anything the team did not configure: with inline agents off (or script only), a
 * request naming an http agent with its own URL, a Lambda ARN or a model is refused with 400 —
 * through the API and through the EventBridge trigger — and nothing is created.
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { ForbiddenError } from '../../core/errors';
import type { AgentRegistry } from '../../core/model';
import type { AgentPolicy } from '../../core/run-request';
import { executeStep } from '../../core/use-cases';
import { createTriggerHandler } from '../../functions/handlers/trigger';
import { apiEvent, apiUnderTest } from './api-support';

const scenario = {
  name: 'isolated',
  request: 'x',
  entry: 'A',
  agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'secret of team A' }] } },
};

describe('team isolation at the API and the worker', () => {
  it("team B gets 404 for every route of team A's run, and cannot reach it with the same Idempotency-Key", async () => {
    const { h, created, call } = apiUnderTest({ registry: {}, inline: 'any' });
    const asA = { 'x-team': 'team-a', 'Idempotency-Key': 'shared-key' };
    const asB = { 'x-team': 'team-b', 'Idempotency-Key': 'shared-key' };
    const started = await call(apiEvent('POST', '/runs', JSON.stringify(scenario), asA));
    expect(started.statusCode).toBe(202);
    const { runId } = JSON.parse(started.body);

    for (const [method, path] of [
      ['GET', `/runs/${runId}`],
      ['GET', `/runs/${runId}/branches`],
      ['GET', `/runs/${runId}/tree`],
      ['GET', `/runs/${runId}/metrics`],
      ['POST', `/runs/${runId}/cancel`],
    ]) {
      const b = await call(apiEvent(method, path, null, { 'x-team': 'team-b' }));
      expect(b.statusCode, `${method} ${path} as team B`).toBe(404);
      expect(JSON.parse(b.body)).toEqual({ error: 'NotFoundError', message: `run ${runId} not found` });
      expect(b.body).not.toContain('secret');
    }
    // Team A still sees its run, untouched by B's cancel.
    const a = await call(apiEvent('GET', `/runs/${runId}`, null, { 'x-team': 'team-a' }));
    expect(a.statusCode).toBe(200);
    expect(JSON.parse(a.body).status).toBe('RUNNING');

    // The same key from team B names a different run (the key is scoped by team).
    const other = await call(apiEvent('POST', '/runs', JSON.stringify(scenario), asB));
    expect(other.statusCode).toBe(202);
    expect(JSON.parse(other.body).runId).not.toBe(runId);
    expect(created.map((r) => [r.team, r.runId])).toEqual([
      ['team-a', runId],
      ['team-b', JSON.parse(other.body).runId],
    ]);

    // A step message forged with team B's scope and team A's run id moves nothing.
    expect(await executeStep(h.deps, { team: 'team-b', runId, branchId: 'root', step: 0 }, { messageId: 'forged' })).toBe('skipped');
    const root = await h.store.getBranch({ team: 'team-a', runId }, 'root');
    expect(root).toMatchObject({ status: 'PENDING', version: 0 });
    h.stop();
  });
});

const registry: AgentRegistry = {
  Researcher: { kind: 'http', url: 'https://agents.internal.example/researcher', allowed: ['Summarizer'] },
  Summarizer: { kind: 'lambda', functionName: 'arn:aws:lambda:eu-west-1:111122223333:function:summarizer' },
};

/** Requests that try to make the backend call something the team did not configure. */
const intrusions: [string, Record<string, unknown>][] = [
  ['an inline http agent with its own URL', { Researcher2: { kind: 'http', url: 'https://attacker.example/collect' } }],
  ['an inline lambda agent naming an ARN', { Thief: { kind: 'lambda', functionName: 'arn:aws:lambda:us-east-1:999999999999:function:x' } }],
  ['an inline openai agent with a base URL and model', { Chat: { kind: 'openai', baseUrl: 'https://attacker.example/v1', model: 'gpt' } }],
  ['an inline bedrock agent naming a model', { Claude: { kind: 'bedrock', modelId: 'anthropic.claude-3-opus' } }],
  ['a registry agent redefined with another URL', { Researcher: { kind: 'http', url: 'https://attacker.example/researcher' } }],
  ['a registry agent redefined as a script', { Researcher: { kind: 'script', responses: [1] } }],
  ['an agent without a kind', { Ghost: { url: 'https://attacker.example' } }],
];

function documentWith(agents: Record<string, unknown>, entry = Object.keys(agents)[0]) {
  return { name: 'intrusion', request: 'x', entry, agents };
}

describe('a request cannot make the backend call what the team did not configure', () => {
  for (const inline of ['none', 'script'] as const) {
    const policy: AgentPolicy = { registry, inline };

    it(`API (inline ${inline}): each intrusion is a 400 ForbiddenError and creates nothing`, async () => {
      const { h, created, call } = apiUnderTest(policy);
      for (const [what, agents] of intrusions) {
        const response = await call(apiEvent('POST', '/runs', JSON.stringify(documentWith(agents))));
        expect(response.statusCode, what).toBe(400);
        expect(JSON.parse(response.body), what).toMatchObject({ error: 'ForbiddenError', message: expect.stringMatching(/^agents\./) });
      }
      expect(created).toEqual([]);
      h.stop();
    });

    it(`API (inline ${inline}): registry agents run with the registry's definitions only`, async () => {
      const { h, created, call } = apiUnderTest(policy);
      const response = await call(apiEvent('POST', '/runs', JSON.stringify({ name: 'ok', request: 'q', entry: 'Researcher' })));
      expect(response.statusCode).toBe(202);
      expect(created).toHaveLength(1);
      expect(created[0].agents).toEqual(registry);
      h.stop();
    });

    it(`trigger (inline ${inline}): each intrusion is refused (ForbiddenError) and creates nothing`, async () => {
      const { h, created } = apiUnderTest(policy);
      const trigger = createTriggerHandler(h.deps, { team: 'team-a', policy });
      for (const [what, agents] of intrusions) {
        const event = {
          id: `evt-${what}`,
          'detail-type': 'RunRequested',
          source: 'team-a.app',
          detail: documentWith(agents),
        } as unknown as EventBridgeEvent<string, unknown>;
        await expect(trigger(event), what).rejects.toBeInstanceOf(ForbiddenError);
      }
      expect(created).toEqual([]);
      h.stop();
    });
  }

  it("an inline script agent is accepted where the stack allows scripts, never where it does not", async () => {
    const script = { Helper: { kind: 'script', responses: [{ next_action: 'final_response', content: 'ok' }] } };
    const allowed = apiUnderTest({ registry, inline: 'script' });
    expect((await allowed.call(apiEvent('POST', '/runs', JSON.stringify(documentWith(script))))).statusCode).toBe(202);
    expect(allowed.created[0].agents).toEqual({ ...registry, ...script });
    allowed.h.stop();
    const refused = apiUnderTest({ registry, inline: 'none' });
    const response = await refused.call(apiEvent('POST', '/runs', JSON.stringify(documentWith(script))));
    expect(response.statusCode).toBe(400);
    expect(refused.created).toEqual([]);
    refused.h.stop();
  });
});

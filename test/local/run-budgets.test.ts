/**
 * Run budgets through the CLI: `openai` agents against a loopback chat-completions stub that
 * reports 15 tokens a call, and slow script agents against `maxRunSeconds`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitExceededError } from '../../core/errors';
import { resolveLimits } from '../../core/limits';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-budget-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

let server: Server;
let baseUrl: string;
let calls = 0;

beforeAll(async () => {
  // Every call costs 10 + 5 tokens. The Planner spawns six Workers; a Worker answers at once.
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      calls++;
      const body = JSON.parse(raw) as { messages: { role: string; content: string }[] };
      const agent = /You are the agent "([^"]+)"/.exec(body.messages[0].content)?.[1];
      const decision =
        agent === 'Planner'
          ? { next_action: 'parallel_invoke', branches: Array.from({ length: 6 }, (_, i) => ({ agent: 'Worker', input: `part ${i}` })) }
          : { next_action: 'final_response', content: 'done' };
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          choices: [{ index: 0, message: { role: 'assistant', content: JSON.stringify(decision) }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('run budgets', () => {
  it('maxRunTokens 50 at 15 tokens a call, one branch at a time: FAILED naming the budget after at most 4 calls', async () => {
    const path = file(
      'tokens.yaml',
      `name: tokens
request: split the work
entry: Planner
limits: { maxConcurrentBranches: 1, maxRunTokens: 50 }
agents:
  Planner: { kind: openai, model: stub, baseUrl: "${baseUrl}", allowed: [Worker], retries: 0 }
  Worker: { kind: openai, model: stub, baseUrl: "${baseUrl}", retries: 0 }
`,
    );
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(doc.status).toBe('FAILED');
    expect(doc.error).toBe('BudgetExceeded: maxRunTokens 50, used 60');
    expect(calls).toBeLessThanOrEqual(4);
    expect(doc.metrics.usage).toEqual({ inputTokens: 40, outputTokens: 20 });
    expect(doc.metrics.budgets).toEqual({ maxRunTokens: { limit: 50, used: 60 }, maxRunSeconds: { limit: 3600, used: expect.any(Number) } });
    // Nothing is left running; what had not ended was cancelled with the budget's message.
    expect(doc.metrics.activeCount).toBe(0);
    const cancelled = doc.branches.filter((b: { status: string }) => b.status === 'CANCELLED');
    expect(cancelled.length).toBeGreaterThan(1);
    // Every one of them, children too, carries the budget's message (docs/agents.md).
    expect(new Set(cancelled.map((b: { error: string }) => b.error))).toEqual(new Set(['BudgetExceeded: maxRunTokens 50, used 60']));
    expect(doc.branches.find((b: { id: string }) => b.id === 'root')).toMatchObject({
      status: 'CANCELLED',
      error: 'BudgetExceeded: maxRunTokens 50, used 60',
    });
  });

  it('maxRunSeconds with slow script agents: the call in flight is aborted and the run FAILED naming the budget', async () => {
    const path = file(
      'seconds.yaml',
      `name: seconds
request: go
entry: Planner
limits: { maxConcurrentBranches: 1, maxRunSeconds: 1 }
agents:
  Planner:
    kind: script
    allowed: [Slow]
    responses:
      - { next_action: parallel_invoke, agents: [Slow, Slow, Slow, Slow, Slow] }
      - { next_action: final_response, content: "$input" }
  Slow:
    kind: script
    responses: [ { $delayMs: 600, next_action: final_response, content: "slow" } ]
`,
    );
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(doc.status).toBe('FAILED');
    expect(doc.error).toMatch(/^BudgetExceeded: maxRunSeconds 1, used \d+(\.\d)?$/);
    expect(doc.metrics.activeCount).toBe(0);
    // Five 600 ms children one at a time cannot finish in 1 s.
    expect(doc.branches.filter((b: { agent: string; status: string }) => b.agent === 'Slow' && b.status === 'COMPLETED').length).toBeLessThan(5);
    expect(doc.metrics.budgets.maxRunSeconds.limit).toBe(1);
  });

  it('budgets are rows of the limits table: defaults, team caps (the budget of a run that names none), ceilings', () => {
    expect(resolveLimits({}, { maxRunTokens: 1000, maxRunSeconds: 60 })).toMatchObject({ maxRunTokens: 1000, maxRunSeconds: 60 });
    expect(resolveLimits({ maxRunTokens: 10 }, { maxRunTokens: 1000 }).maxRunTokens).toBe(10);
    expect(() => resolveLimits({ maxRunSeconds: 120 }, { maxRunSeconds: 60 })).toThrow(LimitExceededError);
    expect(resolveLimits({}, {})).toMatchObject({ maxRunTokens: 1_000_000, maxRunSeconds: 3_600 });
    expect(() => resolveLimits({ maxRunSeconds: 86_401 })).toThrow(/limits\.maxRunSeconds is 86401; the ceiling for every run is 86400/);
  });
});

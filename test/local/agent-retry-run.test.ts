/**
 * An agent's retry policy through the CLI on the embedded engines (`run --engines`, dynalite and
 * fauxqs): a script agent and a module agent that fail their first two attempts complete with
 * `retry: { attempts: 3 }`, with each failed attempt in the trace and the retries in the metrics;
 * without `retry` the first failure fails the run. An http agent whose server answers 503 twice
 * is retried the same way, its failures named transport failures.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-agent-retry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Fails the first two attempts of each call (the policy's attempt number is in the context).
writeFileSync(
  join(dir, 'flaky.ts'),
  `export default async (context: { attempt: number; input: unknown }) => {
  if (context.attempt <= 2) throw new Error(\`connection reset (attempt \${context.attempt})\`);
  return { next_action: 'final_response', content: { answered: context.input, attempt: context.attempt } };
};
`,
);

const AGENTS: Record<string, string> = {
  script: `    kind: script
    responses: [ { $failures: 2, next_action: final_response, content: "answered" } ]`,
  module: `    kind: module
    module: ./flaky.ts`,
};

async function run(kind: string, retry: string, agent = AGENTS[kind]) {
  const name = `${kind}-${retry ? 'retry' : 'none'}`;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nrequest: "go"\nentry: Flaky\nagents:\n  Flaky:\n${agent}\n${retry}`);
  const trace = join(dir, `${name}.jsonl`);
  const io = captureIo();
  const code = await main(['run', file, '--engines', '--json', '--trace', trace], io);
  const events = readFileSync(trace, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as LifecycleEvent);
  return { code, doc: JSON.parse(io.outText()), events, err: io.errText() };
}

describe('retry: { attempts: 3 } on an agent whose first two attempts fail (run --engines)', () => {
  it.each(['script', 'module'] as const)('%s agent: the run completes; the trace shows the three attempts; the metrics count 2 retries', async (kind) => {
    const { code, doc, events, err } = await run(kind, '    retry: { attempts: 3, backoff: { initialMs: 20 } }\n');
    expect(code, err).toBe(0);
    expect(doc.status).toBe('COMPLETED');
    if (kind === 'module') expect(doc.result).toEqual({ answered: 'go', attempt: 3 });
    const retried = events.filter((e) => e.type === 'AgentRetryScheduled');
    expect(retried.map((e) => [e.branchId, e.detail.step, e.detail.attempt, e.detail.attempts, e.detail.kind])).toEqual([
      ['root', 0, 1, 3, 'error'],
      ['root', 0, 2, 3, 'error'],
    ]);
    expect(String(retried[0].detail.error)).toContain(kind === 'script' ? 'failed on attempt 1' : 'connection reset (attempt 1)');
    // Attempts 1 and 2 failed and were retried; the third answered: the branch completed in one step.
    expect(events.filter((e) => e.type === 'BranchCompleted').map((e) => e.branchId)).toEqual(['root']);
    expect(doc.metrics).toMatchObject({ steps: 1, retries: 2 });
  });

  it.each(['script', 'module'] as const)('%s agent without retry: the first failure fails the run', async (kind) => {
    const { code, doc, events } = await run(kind, '');
    expect(code).toBe(1);
    expect(doc.status).toBe('FAILED');
    expect(doc.error).toContain(kind === 'script' ? 'failed on attempt 1' : 'connection reset (attempt 1)');
    expect(events.filter((e) => e.type === 'AgentRetryScheduled')).toEqual([]);
    expect(doc.metrics).toMatchObject({ steps: 1, retries: 0 });
  });

  it('http agent whose server answers 503 twice: retried as transport failures, one request per attempt; the run completes', async () => {
    let requests = 0;
    const server = createServer((req, res) => {
      req.resume().on('end', () => {
        requests++;
        if (requests <= 2) {
          res.writeHead(503).end('overloaded');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ next_action: 'final_response', content: { served: requests } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/agent`;
      const { code, doc, events, err } = await run('http', '    retry: { attempts: 3, backoff: { initialMs: 20 } }\n', `    kind: http\n    url: ${url}`);
      expect(code, err).toBe(0);
      // The policy retries transport failures itself: the invoker's own retries are off.
      expect(doc.result).toEqual({ served: 3 });
      expect(requests).toBe(3);
      const retried = events.filter((e) => e.type === 'AgentRetryScheduled');
      expect(retried.map((e) => [e.detail.attempt, e.detail.kind])).toEqual([
        [1, 'transport'],
        [2, 'transport'],
      ]);
      expect(String(retried[0].detail.error)).toContain('503');
      expect(doc.metrics).toMatchObject({ steps: 1, retries: 2 });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('examples/flaky-agent.yaml completes after two retries of its Researcher', async () => {
    const trace = join(dir, 'example.jsonl');
    const io = captureIo();
    expect(await main(['run', 'examples/flaky-agent.yaml', '--json', '--trace', trace], io), io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    expect(doc.result).toEqual({ summary: 'quarter summarized', parts: expect.anything() });
    expect(doc.metrics.retries).toBe(2);
    const events = readFileSync(trace, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as LifecycleEvent);
    expect(events.filter((e) => e.type === 'AgentRetryScheduled').map((e) => [e.detail.agent, e.detail.attempt])).toEqual([
      ['Researcher', 1],
      ['Researcher', 2],
    ]);
  });
});

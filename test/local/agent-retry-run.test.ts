/**
 * An agent's retry policy through the CLI on the embedded engines (`run --engines`, dynalite and
 * fauxqs): a script agent and a module agent that fail their first two attempts complete with
 * `retry: { attempts: 3 }`, with each failed attempt in the trace and the retries in the metrics;
 * without `retry` the first failure fails the run. An http agent whose server answers 503 twice
 * is retried the same way, its failures named transport failures. An openai agent whose
 * chat-completions server answers 503 twice, and a lambda agent whose function raises twice (on the
 * rehearsal's AWS endpoint, which speaks the Lambda Invoke API: no Lambda engine exists to run
 * locally), are retried the same way; so is a bedrock agent whose Converse endpoint (a loopback
 * server speaking the Bedrock Runtime wire format, reached by the real AWS SDK client through
 * AWS_ENDPOINT_URL_BEDROCK_RUNTIME, in a `run --engines` child process) throttles and is
 * unavailable before it answers. A failure whose kind the policy's `on` leaves out fails the run
 * at its first attempt.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LambdaInvoker } from '../../adapters/agents/lambda-invoker';
import type { LifecycleEvent } from '../../core/events';
import { main } from '../../local/cli';
import { LocalRuntime } from '../../local/runtime';
import { captureIo } from '../support/io';
import { runCli } from '../support/killed-run';
import { startConverseStub, type Decision } from '../support/model-stubs';
import { startS3Endpoint } from '../support/s3-endpoint';

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

async function run(kind: string, retry: string, agent = AGENTS[kind], name = `${kind}-${retry ? 'retry' : 'none'}`) {
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

  describe('openai agent against a local chat-completions server', () => {
    /** Answers 503 to its first `failures` requests, then `final_response`; `status` is the failures' status. */
    async function withChatServer(failures: number, status: number, body: (url: string) => Promise<void>): Promise<number> {
      let requests = 0;
      const server = createServer((req, res) => {
        req.resume().on('end', () => {
          requests++;
          if (req.url !== '/v1/chat/completions' || requests <= failures) {
            res.writeHead(req.url === '/v1/chat/completions' ? status : 404, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: `unavailable (request ${requests})` } }));
            return;
          }
          const content = JSON.stringify({ next_action: 'final_response', content: { served: requests } });
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              id: 'chatcmpl-stub',
              object: 'chat.completion',
              model: 'stub-model',
              choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
              usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
            }),
          );
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      return requests;
    }
    const openai = (url: string) => `    kind: openai\n    baseUrl: ${url}\n    model: stub-model`;

    it('503 twice: retried as transport failures, one request per attempt; the run completes', async () => {
      const requests = await withChatServer(2, 503, async (url) => {
        const { code, doc, events, err } = await run('openai', '    retry: { attempts: 3, backoff: { initialMs: 20 } }\n', openai(url));
        expect(code, err).toBe(0);
        expect(doc.result).toEqual({ served: 3 });
        const retried = events.filter((e) => e.type === 'AgentRetryScheduled');
        expect(retried.map((e) => [e.detail.agent, e.detail.attempt, e.detail.attempts, e.detail.kind])).toEqual([
          ['Flaky', 1, 3, 'transport'],
          ['Flaky', 2, 3, 'transport'],
        ]);
        expect(String(retried[0].detail.error)).toContain('HTTP 503');
        expect(doc.metrics).toMatchObject({ steps: 1, retries: 2 });
      });
      // The policy retries transport failures itself: the invoker's own retries are off.
      expect(requests).toBe(3);
    });

    it('a 400 under on: [transport] is an agent error the policy leaves alone: the run fails at the first attempt', async () => {
      const requests = await withChatServer(2, 400, async (url) => {
        const { code, doc, events } = await run('openai', '    retry: { attempts: 3, backoff: { initialMs: 20 }, on: [transport] }\n', openai(url), 'openai-filtered');
        expect(code).toBe(1);
        expect(doc.status).toBe('FAILED');
        expect(doc.error).toContain('HTTP 400');
        expect(events.filter((e) => e.type === 'AgentRetryScheduled')).toEqual([]);
        expect(doc.metrics).toMatchObject({ steps: 1, retries: 0 });
      });
      expect(requests).toBe(1);
    });
  });

  describe('lambda agent on a local endpoint speaking the Lambda Invoke API', () => {
    /** The rehearsal's AWS endpoint serving Invoke: the function raises its first `failures` calls. */
    async function withFunction(failures: number, body: (rt: LocalRuntime, events: LifecycleEvent[]) => Promise<void>): Promise<number> {
      let invocations = 0;
      const endpoint = await startS3Endpoint(undefined, {
        invokeLambda: async (_caller, functionName) => {
          invocations++;
          if (invocations <= failures) return { payload: { errorMessage: `${functionName} cold start failed (call ${invocations})` }, functionError: true };
          return { payload: { next_action: 'final_response', content: { invoked: functionName, call: invocations } } };
        },
      });
      const client = new LambdaClient({ region: 'us-east-1', endpoint: endpoint.url, credentials: { accessKeyId: 'WORKERKEY', secretAccessKey: 'test' }, maxAttempts: 1 });
      try {
        const rt = await LocalRuntime.start({ tier: 'engines', invokers: { lambda: new LambdaInvoker({ client }) } });
        const events: LifecycleEvent[] = [];
        rt.bus.subscribe((event) => void events.push(event));
        try {
          await body(rt, events);
        } finally {
          await rt.close();
        }
      } finally {
        client.destroy();
        await endpoint.close();
      }
      return invocations;
    }
    const scenario = (retry: { attempts: number; backoff: { initialMs: number }; on?: ('timeout' | 'transport')[] }) => ({
      name: 'lambda-retry',
      request: 'go',
      entry: 'Flaky',
      agents: { Flaky: { kind: 'lambda' as const, functionName: 'flaky-fn', retry } },
    });

    it('a function error twice: retried as agent errors, one invoke per attempt; the run completes', async () => {
      const invocations = await withFunction(2, async (rt, events) => {
        const runId = await rt.startRun(scenario({ attempts: 3, backoff: { initialMs: 20 } }));
        const record = await rt.waitForRun(runId);
        expect(record.error).toBeUndefined();
        expect(record.status).toBe('COMPLETED');
        expect(record.result).toEqual({ invoked: 'flaky-fn', call: 3 });
        const retried = events.filter((e) => e.type === 'AgentRetryScheduled');
        expect(retried.map((e) => [e.detail.agent, e.detail.attempt, e.detail.attempts, e.detail.kind])).toEqual([
          ['Flaky', 1, 3, 'error'],
          ['Flaky', 2, 3, 'error'],
        ]);
        expect(String(retried[0].detail.error)).toContain('flaky-fn raised Unhandled');
        const { view } = await rt.describe(runId);
        expect(view.metrics).toMatchObject({ steps: 1, retries: 2 });
      });
      expect(invocations).toBe(3);
    });

    it('a function error under on: [timeout, transport] is left alone: the run fails at the first attempt', async () => {
      const invocations = await withFunction(2, async (rt, events) => {
        const runId = await rt.startRun(scenario({ attempts: 3, backoff: { initialMs: 20 }, on: ['timeout', 'transport'] }));
        const record = await rt.waitForRun(runId);
        expect(record.status).toBe('FAILED');
        expect(record.error).toContain('flaky-fn raised Unhandled');
        expect(events.filter((e) => e.type === 'AgentRetryScheduled')).toEqual([]);
        const { view } = await rt.describe(runId);
        expect(view.metrics).toMatchObject({ steps: 1, retries: 0 });
      });
      expect(invocations).toBe(1);
    });
  });

  describe('bedrock agent against a local Converse endpoint (the AWS SDK client, AWS_ENDPOINT_URL_BEDROCK_RUNTIME)', () => {
    const final = JSON.stringify({ next_action: 'final_response', content: { served: 'by the model' } });
    /** `run --engines` in a child process whose Bedrock endpoint is the stub: the SDK's own setting, as in a deployment. */
    async function runBedrock(name: string, retry: string, answers: Decision[]) {
      const stub = await startConverseStub(() => answers.shift() ?? { text: final });
      try {
        const file = join(dir, `${name}.yaml`);
        writeFileSync(file, `name: ${name}\nrequest: "go"\nentry: Flaky\nagents:\n  Flaky:\n    kind: bedrock\n    modelId: stub.model-v1:0\n    region: us-east-1\n${retry}`);
        const trace = join(dir, `${name}.jsonl`);
        const out = await runCli(['run', file, '--engines', '--json', '--trace', trace], {
          AWS_ENDPOINT_URL_BEDROCK_RUNTIME: stub.url,
          AWS_ACCESS_KEY_ID: 'stub',
          AWS_SECRET_ACCESS_KEY: 'stub',
          AWS_SESSION_TOKEN: '',
          AWS_PROFILE: '',
        });
        const events = readFileSync(trace, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as LifecycleEvent);
        return { ...out, doc: JSON.parse(out.stdout), events, requests: stub.requests.length };
      } finally {
        await stub.close();
      }
    }

    it('throttled (429 ThrottlingException), then unavailable (503 ServiceUnavailableException): retried as transport failures, one request per attempt; the run completes', async () => {
      const { code, stderr, doc, events, requests } = await runBedrock('bedrock-retry', '    retry: { attempts: 3, backoff: { initialMs: 20 } }\n', [
        { status: 429, errorType: 'ThrottlingException', error: 'Too many requests, please wait before trying again.' },
        { status: 503, errorType: 'ServiceUnavailableException', error: 'Bedrock is unable to process your request.' },
      ]);
      expect(code, stderr).toBe(0);
      expect(doc.status).toBe('COMPLETED');
      expect(doc.result).toEqual({ served: 'by the model' });
      const retried = events.filter((e) => e.type === 'AgentRetryScheduled');
      expect(retried.map((e) => [e.detail.agent, e.detail.attempt, e.detail.attempts, e.detail.kind])).toEqual([
        ['Flaky', 1, 3, 'transport'],
        ['Flaky', 2, 3, 'transport'],
      ]);
      expect(String(retried[0].detail.error)).toContain('ThrottlingException');
      expect(String(retried[1].detail.error)).toContain('ServiceUnavailableException');
      expect(doc.metrics).toMatchObject({ steps: 1, retries: 2 });
      // The policy retries transport failures itself: the invoker's and the SDK's own retries are off.
      expect(requests).toBe(3);
    });

    it('a 400 ValidationException under on: [transport] is an agent error the policy leaves alone: the run fails at the first attempt, one request', async () => {
      const { code, doc, events, requests } = await runBedrock('bedrock-filtered', '    retry: { attempts: 3, backoff: { initialMs: 20 }, on: [transport] }\n', [
        { status: 400, errorType: 'ValidationException', error: 'Malformed input request, please reformat your input and try again.' },
      ]);
      expect(code).toBe(1);
      expect(doc.status).toBe('FAILED');
      expect(doc.error).toContain('ValidationException');
      expect(events.filter((e) => e.type === 'AgentRetryScheduled')).toEqual([]);
      expect(doc.metrics).toMatchObject({ steps: 1, retries: 0 });
      expect(requests).toBe(1);
    });
  });
});

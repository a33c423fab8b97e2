/**
 * A full hierarchical run whose agents are all `openai` agents, through the embedded runtime,
 * against a real local chat-completions stub (loopback only). The stub answers as each agent by
 * reading the system prompt (which agent) and the last user message (which step).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiInvoker } from '../../adapters/agents/openai-invoker';
import { LocalRuntime } from '../../local/runtime';
import { loadScenarioFile } from '../../local/scenario-file';
import type { OpenAiAgentDefinition } from '../../core/agent-kinds';

const REQUEST = 'Compare the Q4 revenue of ACME and Globex';
const ACME = { company: 'ACME', q4_revenue_musd: 1200, source: 'annual report' };
const GLOBEX = { company: 'Globex', q4_revenue_musd: 800, source: 'press release' };

interface Stub {
  server: Server;
  baseUrl: string;
  /** Requests per `${agent}: ${last user message}`, failed ones included. */
  calls: Map<string, number>;
  /** Token usage the stub reported in its successful answers. */
  reported: { inputTokens: number; outputTokens: number };
  systemPrompts: Map<string, string>;
  unexpected: string[];
}

type Answer = { status: number; headers?: Record<string, string>; body: unknown };

function chat(content: string, promptTokens: number, completionTokens: number, stub: Stub): Answer {
  stub.reported.inputTokens += promptTokens;
  stub.reported.outputTokens += completionTokens;
  return {
    status: 200,
    body: {
      id: 'chatcmpl-stub',
      object: 'chat.completion',
      model: 'stub-model',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    },
  };
}

/** The agents' "reasoning": what each one answers, given who it is and what it was asked. */
function answer(stub: Stub, agent: string, last: string, nth: number): Answer {
  if (agent === 'Planner' && last === REQUEST) {
    const decision = {
      next_action: 'parallel_invoke',
      agents: ['Worker', 'Analyst'],
      action_input: { Worker: 'ACME Q4 revenue', Analyst: 'Globex Q4 revenue' },
      wait_for: 'all',
      metadata: { pattern: 'hierarchical' },
    };
    return chat(JSON.stringify(decision), 410, 60, stub);
  }
  if (agent === 'Planner' && last.includes('"child_count"')) {
    // The aggregate arrives as JSON text; the planner reports it as its final answer.
    return chat(JSON.stringify({ next_action: 'final_response', content: JSON.parse(last) }), 530, 75, stub);
  }
  if (agent === 'Worker' && last === 'ACME Q4 revenue') {
    const fenced = `I checked the filings.\n\n\`\`\`json\n${JSON.stringify({ next_action: 'final_response', content: ACME }, null, 2)}\n\`\`\`\n\nLet me know if you need more.`;
    return chat(fenced, 220, 48, stub);
  }
  if (agent === 'Analyst' && last === 'Globex Q4 revenue') {
    if (nth === 1) return { status: 429, headers: { 'retry-after': '0' }, body: { error: { message: 'Rate limit reached' } } };
    return chat(JSON.stringify({ next_action: 'final_response', content: GLOBEX }), 240, 33, stub);
  }
  stub.unexpected.push(`${agent}: ${last}`);
  return { status: 400, body: { error: { message: `the stub has no answer for ${agent}: ${last.slice(0, 80)}` } } };
}

type Answerer = (stub: Stub, agent: string, last: string, nth: number) => Answer;

async function startStub(): Promise<Stub & { answerer: Answerer }> {
  const stub = {
    calls: new Map<string, number>(),
    reported: { inputTokens: 0, outputTokens: 0 },
    systemPrompts: new Map<string, string>(),
    unexpected: [] as string[],
    answerer: answer,
  } as Stub & { answerer: Answerer };
  stub.server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      let reply: Answer;
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        reply = { status: 404, body: { error: { message: `no route ${req.method} ${req.url}` } } };
      } else {
        const body = JSON.parse(raw) as { messages: { role: string; content: string }[] };
        const system = body.messages[0]?.role === 'system' ? body.messages[0].content : '';
        const agent = /You are the agent "([^"]+)"/.exec(system)?.[1] ?? '(unknown)';
        stub.systemPrompts.set(agent, system);
        const last = body.messages.at(-1)?.content ?? '';
        const key = `${agent}: ${last}`;
        const nth = (stub.calls.get(key) ?? 0) + 1;
        stub.calls.set(key, nth);
        reply = stub.answerer(stub, agent, last, nth);
      }
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => stub.server.listen(0, '127.0.0.1', resolve));
  stub.baseUrl = `http://127.0.0.1:${(stub.server.address() as AddressInfo).port}/v1`;
  return stub;
}

describe('a hierarchical run of openai agents on the embedded runtime', () => {
  let stub: Stub & { answerer: Answerer };

  beforeAll(async () => {
    stub = await startStub();
  });
  afterAll(async () => {
    stub.server.closeAllConnections();
    await new Promise<void>((resolve) => stub.server.close(() => resolve()));
  });

  it('plans, fans out to two LLM workers (one rate-limited once), and reports the aggregate and token usage', async () => {
    const sleeps: number[] = [];
    const openai = new OpenAiInvoker({ sleep: async (ms) => void sleeps.push(ms), backoffMs: 1, env: {} });
    const rt = await LocalRuntime.start({ invokers: { openai } });
    try {
      const llm = { kind: 'openai', baseUrl: stub.baseUrl, model: 'stub-model', temperature: 0 } satisfies OpenAiAgentDefinition;
      const runId = await rt.startRun({
        name: 'openai-hierarchical',
        request: REQUEST,
        entry: 'Planner',
        agents: {
          Planner: { ...llm, allowed: ['Worker', 'Analyst'], description: 'Splits the question and reports the findings.' },
          Worker: { ...llm, description: 'Finds one company figure.' },
          Analyst: { ...llm, description: 'Finds one company figure.' },
        },
      });
      const run = await rt.waitForRun(runId);
      const { branches, view } = await rt.describe(runId);

      expect(stub.unexpected).toEqual([]);
      expect(run.error).toBeUndefined();
      expect(run.status).toBe('COMPLETED');

      // The aggregate holds both workers' contents (the Worker's came out of prose + a fenced block).
      const result = run.result as { child_count: number; results: Record<string, unknown>; failures?: Record<string, unknown> };
      expect(result.child_count).toBe(2);
      expect(Object.values(result.results)).toEqual(expect.arrayContaining([ACME, GLOBEX]));
      expect(Object.keys(result.failures ?? {})).toEqual([]);

      // The 429 was retried: two requests for that step, one wait of retry-after 0 s.
      expect(stub.calls.get('Analyst: Globex Q4 revenue')).toBe(2);
      expect(stub.calls.get('Worker: ACME Q4 revenue')).toBe(1);
      expect(sleeps).toEqual([0]);

      // The prompts carried the topology.
      expect(stub.systemPrompts.get('Planner')).toContain('Agents you may call: "Worker", "Analyst".');
      expect(stub.systemPrompts.get('Worker')).toContain('You may not call any other agent.');

      expect(branches.map((b) => [b.id, b.agent, b.status]).sort()).toEqual([
        ['root', 'Planner', 'COMPLETED'],
        ['root.0', 'Worker', 'COMPLETED'],
        ['root.1', 'Analyst', 'COMPLETED'],
      ]);
      // Token usage: per branch, and summed in the run's metrics, equal to what the server reported.
      const root = branches.find((b) => b.id === 'root')!;
      expect(root.usage).toEqual({ inputTokens: 410 + 530, outputTokens: 60 + 75 });
      expect(stub.reported).toEqual({ inputTokens: 410 + 530 + 220 + 240, outputTokens: 60 + 75 + 48 + 33 });
      expect(view.metrics.usage).toEqual(stub.reported);
      expect(rt.errors).toEqual([]);
    } finally {
      await rt.close();
    }
  });
  it('runs examples/llm-research.yaml (Researcher copies, aggregator agent:Summarizer) against the stub', async () => {
    const { scenario } = await loadScenarioFile(fileURLToPath(new URL('../../examples/llm-research.yaml', import.meta.url)));
    const question = scenario.request as string;
    const summary = { summary: 'Heat pumps cost more up front and less to run.', key_points: ['efficiency', 'install cost'] };
    stub.calls.clear();
    stub.unexpected.length = 0;
    stub.answerer = (s, agent, last) => {
      const final = (content: unknown) => chat(JSON.stringify({ next_action: 'final_response', content }), 100, 10, s);
      if (agent === 'Planner' && last === question) {
        return chat(
          JSON.stringify({
            next_action: 'parallel_invoke',
            branches: [
              { agent: 'Researcher', input: 'running costs' },
              { agent: 'Researcher', input: 'installation' },
            ],
            aggregator: 'agent:Summarizer',
          }),
          100,
          10,
          s,
        );
      }
      if (agent === 'Researcher') return final({ question: last, findings: [`about ${last}`] });
      if (agent === 'Summarizer' && last.includes('about running costs') && last.includes('about installation')) {
        return final(summary);
      }
      if (agent === 'Planner' && last === JSON.stringify(summary)) return final(JSON.parse(last));
      s.unexpected.push(`${agent}: ${last}`);
      return { status: 400, body: { error: { message: 'unexpected' } } };
    };
    const agents = Object.fromEntries(
      Object.entries(scenario.agents).map(([name, def]) => [name, { ...def, baseUrl: stub.baseUrl }]),
    );
    const rt = await LocalRuntime.start({ invokers: { openai: new OpenAiInvoker({ sleep: async () => {}, env: {} }) } });
    try {
      const runId = await rt.startRun({ ...scenario, agents });
      const run = await rt.waitForRun(runId);
      const { branches } = await rt.describe(runId);
      expect(stub.unexpected).toEqual([]);
      expect(run.status).toBe('COMPLETED');
      expect(run.result).toEqual(summary);
      expect(branches.map((b) => b.agent).sort()).toEqual(['Planner', 'Researcher', 'Researcher', 'Summarizer']);
      expect(branches.find((b) => b.agent === 'Summarizer')?.type).toBe('AGGREGATION');
    } finally {
      await rt.close();
    }
  });
});

/**
 * OpenAiInvoker against a real local server speaking the chat-completions API (loopback only):
 * request shape, API key, retries on 429 / 5xx / network errors, no retry on 4xx, timeouts.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chatCompletionsUrl, OpenAiInvoker } from '../../../adapters/agents/openai-invoker';
import { AgentInvocationError, AgentTimeoutError, AgentTransportError } from '../../../core/errors';
import type { OpenAiAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';
import { parseAgentResponse } from '../../../core/protocol';

interface Scripted {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string as it is. */
  body?: unknown;
  /** Never answer (to exercise the timeout). */
  hang?: boolean;
}

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: any;
}

let server: Server;
let baseUrl: string;
let script: Scripted[] = [];
const received: Received[] = [];

function completion(content: unknown, usage = { prompt_tokens: 200, completion_tokens: 40 }) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'llama3.1',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: raw ? JSON.parse(raw) : undefined });
      const next = script.shift() ?? { body: completion('{"next_action":"final_response","content":"default"}') };
      if (next.hang) return;
      const body = typeof next.body === 'string' ? next.body : JSON.stringify(next.body ?? {});
      res.writeHead(next.status ?? 200, { 'content-type': 'application/json', ...next.headers });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  script = [];
  received.length = 0;
});

function call(definition: Partial<OpenAiAgentDefinition> = {}, overrides: Partial<AgentInvocation<OpenAiAgentDefinition>> = {}): AgentInvocation<OpenAiAgentDefinition> {
  return {
    team: 't',
    runId: 'r1',
    agentName: 'Planner',
    definition: { kind: 'openai', model: 'llama3.1', baseUrl, ...definition },
    branchId: 'root',
    step: 1,
    input: 'What changed in Q4?',
    memory: [
      { role: 'user', agent: 'Planner', content: 'Analyze Q4 sales' },
      { role: 'assistant', agent: 'Planner', content: '{"next_action":"invoke_agent","action_input":"Researcher"}' },
    ],
    allowed: ['Researcher'],
    ...overrides,
  };
}

function invoker(options: ConstructorParameters<typeof OpenAiInvoker>[0] = {}) {
  const sleeps: number[] = [];
  const instance = new OpenAiInvoker({
    env: { TEST_LLM_KEY: 'sk-test-123' },
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...options,
  });
  return { instance, sleeps };
}

const final = '{"next_action":"final_response","content":"ok"}';

describe('OpenAiInvoker request', () => {
  it('POSTs model, system + history + input, temperature and max_tokens, with the key from the env var', async () => {
    script = [{ body: completion(final) }];
    await invoker().instance.invoke(
      call({ apiKeyEnv: 'TEST_LLM_KEY', temperature: 0.1, maxTokens: 512, system: 'Answer in English.' }),
    );
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/v1/chat/completions');
    expect(request.headers.authorization).toBe('Bearer sk-test-123');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.body.model).toBe('llama3.1');
    expect(request.body.temperature).toBe(0.1);
    expect(request.body.max_tokens).toBe(512);
    expect(request.body.stream).toBe(false);
    const [system, ...rest] = request.body.messages;
    expect(system.role).toBe('system');
    expect(system.content).toContain('You are the agent "Planner"');
    expect(system.content).toContain('Agents you may call: "Researcher".');
    expect(system.content).toContain('"next_action":"final_response"');
    expect(system.content.endsWith('Instructions for this agent:\nAnswer in English.')).toBe(true);
    expect(rest).toEqual([
      { role: 'user', content: 'Analyze Q4 sales' },
      { role: 'assistant', content: '{"next_action":"invoke_agent","action_input":"Researcher"}' },
      { role: 'user', content: 'What changed in Q4?' },
    ]);
  });

  it('sends no Authorization header and no sampling fields when none are configured (local servers)', async () => {
    script = [{ body: completion(final) }];
    await invoker().instance.invoke(call());
    expect(received[0].headers.authorization).toBeUndefined();
    expect(received[0].body).not.toHaveProperty('temperature');
    expect(received[0].body).not.toHaveProperty('max_tokens');
  });

  it('names the missing environment variable and sends nothing', async () => {
    const error = await invoker({ env: {} })
      .instance.invoke(call({ apiKeyEnv: 'MISSING_LLM_KEY' }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect((error as Error).message).toContain('MISSING_LLM_KEY');
    expect(received).toHaveLength(0);
  });

  it('uses defaultBaseUrl when the agent gives no baseUrl', async () => {
    script = [{ body: completion(final) }];
    await invoker({ defaultBaseUrl: `${baseUrl}/` }).instance.invoke(call({ baseUrl: undefined }));
    expect(received[0].url).toBe('/v1/chat/completions');
  });

  it('builds the endpoint from a base URL', () => {
    expect(chatCompletionsUrl('http://h:1/v1')).toBe('http://h:1/v1/chat/completions');
    expect(chatCompletionsUrl('http://h:1/v1//')).toBe('http://h:1/v1/chat/completions');
    expect(chatCompletionsUrl('http://h:1/v1/chat/completions')).toBe('http://h:1/v1/chat/completions');
  });
});

describe('OpenAiInvoker reply', () => {
  it('returns the message content and the usage', async () => {
    script = [{ body: completion(final, { prompt_tokens: 321, completion_tokens: 12 }) }];
    expect(await invoker().instance.invoke(call())).toEqual({ response: final, usage: { inputTokens: 321, outputTokens: 12 } });
  });

  it('returns prose around a fenced JSON block raw; the protocol parser reads it', async () => {
    const text =
      'Sure! Here is my decision:\n\n```json\n{"next_action": "invoke_agent", "action_input": {"agent": "Researcher", "input": "Q4 numbers"}}\n```\nLet me know.';
    script = [{ body: completion(text) }];
    const { response } = await invoker().instance.invoke(call());
    expect(response).toBe(text);
    expect(parseAgentResponse(response, { currentAgent: 'Planner', currentInput: 'x' })).toEqual({
      kind: 'handoff',
      agent: 'Researcher',
      input: 'Q4 numbers',
    });
  });

  it('reads content given as text parts, and a reply without usage', async () => {
    const body = completion([{ type: 'text', text: final }]);
    delete (body as { usage?: unknown }).usage;
    script = [{ body }];
    expect(await invoker().instance.invoke(call())).toEqual({ response: final });
  });

  it('fails clearly when there is no message content', async () => {
    script = [{ body: { choices: [{ message: { role: 'assistant', content: null }, finish_reason: 'length' }] } }];
    await expect(invoker().instance.invoke(call())).rejects.toThrow(/no message content \(finish_reason length\)/);
  });
});

describe('OpenAiInvoker retries and timeouts', () => {
  it('retries a 429, waiting what retry-after says', async () => {
    script = [
      { status: 429, headers: { 'retry-after': '0' }, body: { error: { message: 'Rate limit reached' } } },
      { body: completion(final, { prompt_tokens: 7, completion_tokens: 3 }) },
    ];
    const { instance, sleeps } = invoker();
    expect(await instance.invoke(call())).toEqual({ response: final, usage: { inputTokens: 7, outputTokens: 3 } });
    expect(received).toHaveLength(2);
    expect(sleeps).toEqual([0]);
  });

  it('caps a long retry-after, and backs off when there is none', async () => {
    script = [
      { status: 429, headers: { 'retry-after': '3600' }, body: {} },
      { status: 429, body: {} },
      { body: completion(final) },
    ];
    const { instance, sleeps } = invoker({ maxRetryAfterMs: 2_000, backoffMs: 100 });
    await instance.invoke(call());
    expect(sleeps).toEqual([2_000, 150]);
  });

  it('retries a 500 with exponential backoff, then succeeds', async () => {
    script = [{ status: 500, body: 'upstream died' }, { status: 503, body: {} }, { body: completion(final) }];
    const { instance, sleeps } = invoker({ backoffMs: 200, random: () => 0 });
    expect((await instance.invoke(call())).response).toBe(final);
    expect(received).toHaveLength(3);
    expect(sleeps).toEqual([100, 200]);
  });

  it('gives up after maxAttempts', async () => {
    script = [{ status: 502, body: 'bad gateway' }, { status: 502, body: 'bad gateway' }];
    const error = await invoker({ maxAttempts: 2 }).instance.invoke(call()).catch((e: unknown) => e);
    // A transport failure, as an agent's retry policy names it (`on: [transport]`).
    expect(error).toBeInstanceOf(AgentTransportError);
    expect((error as Error).message).toMatch(/HTTP 502 .*bad gateway \(after 2 attempts\)/);
    expect(received).toHaveLength(2);
  });

  it('does not retry a 400, and quotes the server error', async () => {
    script = [{ status: 400, body: { error: { message: "model 'nope' not found", type: 'invalid_request_error' } } }];
    const { instance, sleeps } = invoker();
    const error = await instance.invoke(call({ model: 'nope' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect(error).not.toBeInstanceOf(AgentTransportError);
    expect((error as Error).message).toContain("HTTP 400 from ");
    expect((error as Error).message).toContain("model 'nope' not found");
    expect(received).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('does not put the API key in errors', async () => {
    script = [{ status: 401, body: { error: { message: 'Incorrect API key provided' } } }];
    const error = await invoker().instance.invoke(call({ apiKeyEnv: 'TEST_LLM_KEY' })).catch((e: unknown) => e);
    expect((error as Error).message).toContain('HTTP 401');
    expect((error as Error).message).not.toContain('sk-test-123');
  });

  it('retries network errors (connection refused)', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { instance, sleeps } = invoker({ maxAttempts: 2 });
    const error = await instance.invoke(call({ baseUrl: `http://127.0.0.1:${port}/v1` })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTransportError);
    expect((error as Error).message).toMatch(/failed: ECONNREFUSED \(after 2 attempts\)/);
    expect(sleeps).toHaveLength(1);
  });

  it('times out a call that never answers with an AgentTimeoutError (not retried)', async () => {
    script = [{ hang: true }];
    const { instance, sleeps } = invoker({ maxAttempts: 3 });
    const error = await instance.invoke(call({ timeoutMs: 50 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toMatch(/within 50 ms/);
    // No second attempt was scheduled (the server may not even have read the first request by then).
    expect(sleeps).toEqual([]);
  });

  it('stops at once when the branch is cancelled', async () => {
    script = [{ hang: true }];
    const controller = new AbortController();
    const pending = invoker().instance.invoke(call({}, { signal: controller.signal }));
    controller.abort();
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect(error).not.toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toMatch(/aborted/);
  });
});

import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpInvoker } from '../../../adapters/agents/http-invoker';
import { LambdaInvoker } from '../../../adapters/agents/lambda-invoker';
import { ScriptInvoker } from '../../../adapters/agents/script-invoker';
import { KindRouter } from '../../../adapters/agents/agent-invoker';
import { AgentInvocationError, AgentTimeoutError, AgentTransportError, TransientError } from '../../../core/errors';
import type { AgentDefinition, ScriptAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';

const call = <D extends AgentDefinition>(definition: D, extra: Partial<AgentInvocation<D>> = {}): AgentInvocation<D> => ({
  team: 't', runId: 'r', agentName: 'A', definition, branchId: 'root', step: 0,
  input: 'hello', memory: [], allowed: ['B'], ...extra,
});
const scriptCall = (definition: Omit<ScriptAgentDefinition, 'kind'>, extra: Partial<AgentInvocation<ScriptAgentDefinition>> = {}) =>
  call({ kind: 'script', ...definition }, extra);

describe('script invoker', () => {
  const script = new ScriptInvoker();

  it('answers responses[n] for the n-th step of this agent in the branch, the last repeating', async () => {
    const def = { responses: [{ n: 0 }, { n: 1 }] };
    const assistant = (agent: string, inherited = false) => ({ role: 'assistant' as const, agent, content: null, inherited });
    expect((await script.invoke(scriptCall(def))).response).toEqual({ n: 0 });
    expect((await script.invoke(scriptCall(def, { memory: [assistant('A')] }))).response).toEqual({ n: 1 });
    expect((await script.invoke(scriptCall(def, { memory: [assistant('A'), assistant('A'), assistant('A')] }))).response).toEqual({ n: 1 });
    // Steps of other agents and memory inherited from a parent do not count.
    expect((await script.invoke(scriptCall(def, { memory: [assistant('B'), assistant('A', true)] }))).response).toEqual({ n: 0 });
  });

  it('the first rule whose `when` is in the stringified input wins; "$input" is replaced anywhere', async () => {
    const def = {
      responses: [{ default: true }],
      rules: [
        { when: 'urgent', responses: [{ next_action: 'final_response', content: { echo: '$input', list: ['$input'] } }] },
        { when: 'hello', responses: [{ second: true }] },
      ],
    };
    expect((await script.invoke(scriptCall(def, { input: { text: 'urgent hello' } }))).response).toEqual({
      next_action: 'final_response', content: { echo: { text: 'urgent hello' }, list: [{ text: 'urgent hello' }] },
    });
    expect((await script.invoke(scriptCall(def))).response).toEqual({ second: true });
    expect((await script.invoke(scriptCall(def, { input: 42 }))).response).toEqual({ default: true });
  });

  it('$fail throws, $raw returns text, $delayMs waits and is aborted by the signal', async () => {
    await expect(script.invoke(scriptCall({ responses: [{ $fail: 'boom' }] }))).rejects.toThrow(AgentInvocationError);
    expect((await script.invoke(scriptCall({ responses: [{ $raw: 'plain text' }] }))).response).toBe('plain text');
    expect((await script.invoke(scriptCall({ responses: [{ $delayMs: 5, ok: 1 }] }))).response).toEqual({ ok: 1 });
    const controller = new AbortController();
    const pending = script.invoke(scriptCall({ responses: [{ $delayMs: 60_000, ok: 1 }] }, { signal: controller.signal }));
    controller.abort();
    await expect(pending).rejects.toThrow(/aborted/);
  });

  it('the kind router refuses a kind it has no invoker for, by name', async () => {
    const router = new KindRouter({ script });
    await expect(router.invoke(call({ kind: 'lambda', functionName: 'f' }))).rejects.toThrow(
      /agent kind "lambda" is not available here \(known: script\)/,
    );
  });
});

describe('http invoker (against a local stub server)', () => {
  let server: Server;
  let url: string;
  const seen: { path: string; body: any }[] = [];
  const failures = new Map<string, number[]>();

  beforeAll(async () => {
    server = createServer(async (req: IncomingMessage, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      seen.push({ path: req.url!, body: JSON.parse(text) });
      const queue = failures.get(req.url!) ?? [];
      const status = queue.shift();
      if (status === -1) return; // never answer: the client times out
      if (status) {
        res.writeHead(status).end('upstream trouble');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ next_action: 'final_response', content: 'ok' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const http = new HttpInvoker({ backoffMs: 1 });

  it('POSTs the step as JSON and returns the body as the response', async () => {
    const reply = await http.invoke(call({ kind: 'http', url: `${url}/agent` }, { memory: [{ role: 'user', agent: 'A', content: 'x' }] }));
    expect(reply.response).toEqual({ next_action: 'final_response', content: 'ok' });
    expect(seen.at(-1)!.body).toEqual({
      agent: 'A', input: 'hello', memory: [{ role: 'user', agent: 'A', content: 'x' }], allowed: ['B'],
      branchId: 'root', runId: 'r', team: 't', step: 0,
    });
  });

  it('retries 5xx with backoff, not 4xx', async () => {
    failures.set('/flaky', [503, 500]);
    expect((await http.invoke(call({ kind: 'http', url: `${url}/flaky`, retries: 2 }))).response).toMatchObject({ content: 'ok' });
    expect(seen.filter((s) => s.path === '/flaky')).toHaveLength(3);
    failures.set('/bad', [400]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/bad`, retries: 2 }))).rejects.toThrow(/HTTP 400/);
    expect(seen.filter((s) => s.path === '/bad')).toHaveLength(1);
    failures.set('/down', [502, 502]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/down`, retries: 1 }))).rejects.toThrow(/HTTP 502/);
  });

  it("names its failures for an agent's retry policy: 5xx and network errors are transport, 4xx the agent's", async () => {
    failures.set('/down5', [503]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/down5`, retries: 0 }))).rejects.toThrow(AgentTransportError);
    failures.set('/bad4', [404]);
    const rejected = await http.invoke(call({ kind: 'http', url: `${url}/bad4`, retries: 0 })).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(AgentInvocationError);
    expect(rejected).not.toBeInstanceOf(AgentTransportError);
    await expect(http.invoke(call({ kind: 'http', url: 'http://127.0.0.1:9/closed', retries: 0 }))).rejects.toThrow(AgentTransportError);
  });

  it('times out a call that never answers', async () => {
    failures.set('/hang', [-1]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/hang`, retries: 0, timeoutMs: 200 }))).rejects.toThrow(AgentTimeoutError);
  });

  it('does not retry a call that timed out (a server that took the whole timeout would likely take it again)', async () => {
    failures.set('/hang-twice', [-1, -1, -1]);
    // Counted as sent by the client (the server may not have read a request its client gave up on).
    const sent: string[] = [];
    const counting = new HttpInvoker({ backoffMs: 1, fetch: (input, init) => (sent.push(String(input)), globalThis.fetch(input, init)) });
    const error = await counting.invoke(call({ kind: 'http', url: `${url}/hang-twice`, retries: 2, timeoutMs: 200 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTimeoutError);
    expect(sent).toEqual([`${url}/hang-twice`]);
  });

  it('retries a 429 (throttling) as the openai and AWS agents do', async () => {
    failures.set('/throttled', [429]);
    expect((await http.invoke(call({ kind: 'http', url: `${url}/throttled`, retries: 1 }))).response).toMatchObject({ content: 'ok' });
    expect(seen.filter((s) => s.path === '/throttled')).toHaveLength(2);
    failures.set('/throttled-always', [429]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/throttled-always`, retries: 0 }))).rejects.toThrow(AgentTransportError);
  });

  it('the last transport failure says how many attempts were made', async () => {
    failures.set('/down-thrice', [502, 502, 502]);
    await expect(http.invoke(call({ kind: 'http', url: `${url}/down-thrice`, retries: 2 }))).rejects.toThrow(/HTTP 502 .*\(after 3 attempts\)$/);
  });
});

describe('lambda invoker', () => {
  const lambda = mockClient(LambdaClient);
  // The mock replaces the client class's send for the whole worker: put it back for the files after this one.
  afterAll(() => lambda.restore());
  const invoker = new LambdaInvoker({ client: new LambdaClient({ region: 'us-east-1' }) });

  it('invokes the function with the step and parses its JSON payload', async () => {
    lambda.reset();
    lambda.on(InvokeCommand).resolves({ Payload: new TextEncoder().encode(JSON.stringify({ next_actions: [] })) as never });
    const reply = await invoker.invoke(call({ kind: 'lambda', functionName: 'agent-fn' }));
    expect(reply.response).toEqual({ next_actions: [] });
    const sent = lambda.commandCalls(InvokeCommand)[0].args[0].input;
    expect(sent.FunctionName).toBe('agent-fn');
    expect(JSON.parse(new TextDecoder().decode(sent.Payload as Uint8Array))).toMatchObject({ agent: 'A', input: 'hello', step: 0 });
  });

  it('a function error fails the call; throttling is transient', async () => {
    lambda.reset();
    lambda.on(InvokeCommand).resolves({ FunctionError: 'Unhandled', Payload: new TextEncoder().encode('{"errorMessage":"x"}') as never });
    await expect(invoker.invoke(call({ kind: 'lambda', functionName: 'f' }))).rejects.toThrow(/raised Unhandled/);
    lambda.reset();
    lambda.on(InvokeCommand).rejects(Object.assign(new Error('slow down'), { name: 'TooManyRequestsException' }));
    await expect(invoker.invoke(call({ kind: 'lambda', functionName: 'f' }))).rejects.toThrow(TransientError);
  });

  it("a function that cannot be invoked is a transport failure (for an agent's retry policy); its own error is the agent's", async () => {
    lambda.reset();
    lambda.on(InvokeCommand).rejects(Object.assign(new Error('no such function'), { name: 'ResourceNotFoundException' }));
    await expect(invoker.invoke(call({ kind: 'lambda', functionName: 'f' }))).rejects.toThrow(AgentTransportError);
    lambda.reset();
    lambda.on(InvokeCommand).resolves({ FunctionError: 'Unhandled', Payload: new TextEncoder().encode('{}') as never });
    const rejected = await invoker.invoke(call({ kind: 'lambda', functionName: 'f' })).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(AgentInvocationError);
    expect(rejected).not.toBeInstanceOf(AgentTransportError);
  });

  it('a call the branch aborts ends as aborted, even when the client ignores the abort', async () => {
    lambda.reset();
    let sent!: () => void;
    const sending = new Promise<void>((resolve) => (sent = resolve));
    // The mocked client never answers and does not listen to its abort signal.
    lambda.on(InvokeCommand).callsFake(() => {
      sent();
      return new Promise(() => undefined);
    });
    const controller = new AbortController();
    const pending = invoker.invoke(call({ kind: 'lambda', functionName: 'f' }, { signal: controller.signal })).catch((e: unknown) => e);
    await sending;
    controller.abort();
    const error = await pending;
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect(error).not.toBeInstanceOf(AgentTransportError);
    expect((error as Error).message).toBe('aborted: the branch ended');
  });
});

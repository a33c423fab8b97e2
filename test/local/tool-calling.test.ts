/**
 * The tool loop of `openai` agents on the embedded runtime, against a loopback chat-completions
 * server that answers with tool calls: invalid protocol tool arguments are re-asked and counted,
 * a hanging MCP server times the call out (not the run), cancel aborts a tool call in flight,
 * maxToolCallsPerStep bounds the loop, `auto` falls back to text where tools are refused, and
 * http tools are called.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiInvoker } from '../../adapters/agents/openai-invoker';
import { ToolBox } from '../../adapters/tools/tool-box';
import type { LifecycleEvent } from '../../core/events';
import { answerCallback } from '../../core/use-cases/suspend';
import { LocalRuntime } from '../../local/runtime';
import { startOpenAiStub, STUB_USAGE, type Brain } from '../support/model-stubs';
import type { AgentRegistry, OpenAiAgentDefinition } from '../../core/agent-kinds';

const MCP_SERVER = fileURLToPath(new URL('../support/mcp-test-server.mjs', import.meta.url));
const TOOL_MODULES = fileURLToPath(new URL('../support/tool-modules.ts', import.meta.url));

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function setup(brain: Brain) {
  const stub = await startOpenAiStub(brain);
  const toolBox = new ToolBox();
  const rt = await LocalRuntime.start({ invokers: { openai: new OpenAiInvoker({ toolBox, sleep: async () => {}, env: {} }) } });
  const events: LifecycleEvent[] = [];
  rt.bus.subscribe((event) => void events.push(event));
  cleanup.push(stub.close, () => toolBox.close(), () => rt.close());
  const llm = { kind: 'openai', baseUrl: stub.url, model: 'stub-model', toolCalling: 'on' } satisfies OpenAiAgentDefinition;
  return { stub, rt, events, llm };
}

const toolEvents = (events: LifecycleEvent[]) => events.filter((e) => e.type === 'ToolCalled').map((e) => e.detail);
const final = (content: unknown) => ({ calls: [{ name: 'final_response', args: { content } }] });

describe('the tool loop of an openai agent', () => {
  it('re-asks invalid protocol tool arguments with the validation error, and counts them', async () => {
    const { stub, rt, llm } = await setup((view) => {
      const last = view.users.at(-1) ?? '';
      if (view.agent === 'Worker') return final(`worked on ${last}`);
      if (last.includes('"child_count"')) return final(JSON.parse(last));
      if (last === 'go') return { calls: [{ name: 'parallel_invoke', args: { agents: ['Ghost'] } }] };
      if (last.includes('"Ghost"')) return { calls: [{ name: 'parallel_invoke', args: {}, rawArgs: '{"agents": [' }] };
      return { calls: [{ name: 'parallel_invoke', args: { agents: ['Worker'], action_input: { Worker: 'part 1' } } }] };
    });
    const runId = await rt.startRun({
      name: 'invalid-args',
      request: 'go',
      entry: 'Lead',
      agents: { Lead: { ...llm, allowed: ['Worker'] }, Worker: llm },
    });
    const run = await rt.waitForRun(runId);
    expect(run.error).toBeUndefined();
    expect(run.status).toBe('COMPLETED');
    expect((run.result as { results: Record<string, unknown> }).results).toEqual({ 'root.0': 'worked on part 1' });
    const { branches } = await rt.describe(runId);
    expect(branches.find((b) => b.id === 'root')?.invalidCount).toBe(2);
    // Each re-ask carried the reason, worded for a tool-calling agent.
    const reasks = stub.requests.filter((r) => r.agent === 'Lead').map((r) => r.users.at(-1) ?? '');
    expect(reasks[1]).toMatch(/^Your previous reply was not accepted \(field "agents\.0"\): .*"Ghost" is not a registered agent/);
    expect(reasks[1]).toContain('call one protocol tool with corrected arguments');
    expect(reasks[2]).toMatch(/the arguments of tool parallel_invoke must be a JSON object, got text that is not JSON: \{"agents": \[/);
  });

  it('fails the branch once invalid tool arguments pass maxInvalidResponses', async () => {
    const { rt, llm } = await setup(() => ({ calls: [{ name: 'invoke_agent', args: { agent: 'Nobody' } }] }));
    const runId = await rt.startRun({
      name: 'invalid-args-fail',
      request: 'go',
      entry: 'Lead',
      limits: { maxInvalidResponses: 1 },
      agents: { Lead: { ...llm, allowed: ['Worker'] }, Worker: llm },
    });
    const run = await rt.waitForRun(runId);
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/InvalidAgentResponse after 2 tries: .*"Nobody" is not a registered agent/);
  });

  it('times out a call to a hanging MCP server and lets the model go on: the call fails, not the run', async () => {
    const { rt, events, llm } = await setup((view) => {
      if (view.results.length === 0) return { calls: [{ name: 'hang', args: {} }, { name: 'echo', args: { text: 'hi' } }] };
      return final(view.results);
    });
    const runId = await rt.startRun({
      name: 'hanging-mcp',
      request: 'go',
      entry: 'A',
      agents: { A: { ...llm, tools: [{ kind: 'mcp', command: 'node', args: [MCP_SERVER], timeoutMs: 300 }] } },
    });
    const run = await rt.waitForRun(runId);
    expect(run.status).toBe('COMPLETED');
    expect(run.result).toEqual([
      { name: 'hang', text: 'tool hang timed out after 300 ms', isError: false },
      { name: 'echo', text: 'echo: hi', isError: false },
    ]);
    expect(toolEvents(events).map((d) => [d.tool, d.kind, d.status]).sort()).toEqual([
      ['echo', 'mcp', 'ok'],
      ['hang', 'mcp', 'timeout'],
    ]);
    const { view } = await rt.describe(runId);
    expect(view.metrics.tools).toEqual({
      hang: expect.objectContaining({ calls: 1, errors: 1 }),
      echo: expect.objectContaining({ calls: 1, errors: 0 }),
    });
  });

  it('cancel aborts a tool call in flight: the tool sees its signal, the call is traced as aborted', async () => {
    const seen: string[] = [];
    let started!: () => void;
    let aborted!: () => void;
    const whenStarted = new Promise<void>((resolve) => (started = resolve));
    const whenAborted = new Promise<void>((resolve) => (aborted = resolve));
    const server = createServer((req, res) => {
      const event = new URL(req.url ?? '/', 'http://x').searchParams.get('event')!;
      seen.push(event);
      res.end('ok');
      if (event === 'started') started();
      if (event === 'aborted') aborted();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const { rt, events, llm } = await setup(() => ({ calls: [{ name: 'slow', args: { url } }] }));
    const runId = await rt.startRun({
      name: 'cancel-tool',
      request: 'go',
      entry: 'A',
      agents: { A: { ...llm, tools: [{ kind: 'module', module: TOOL_MODULES, export: 'slow' }] } },
    });
    await whenStarted;
    await rt.cancel(runId);
    const run = await rt.waitForRun(runId);
    expect(run.status, String(run.error)).toBe('CANCELLED');
    await whenAborted;
    expect(seen).toEqual(['started', 'aborted']);
    expect(toolEvents(events).map((d) => [d.tool, d.kind, d.status])).toEqual([['slow', 'module', 'aborted']]);
  });

  it('stops offering user tools after maxToolCallsPerStep calls, refusing the calls past it', async () => {
    const { stub, rt, events, llm } = await setup((view) => {
      if (!view.offered.includes('add')) return final({ offered: view.offered, choice: view.choice, results: view.results.map((r) => r.text) });
      return { calls: [1, 2, 3].map((a) => ({ name: 'add', args: { a, b: 10 } })) };
    });
    const runId = await rt.startRun({
      name: 'tool-limit',
      request: 'go',
      entry: 'A',
      limits: { maxToolCallsPerStep: 2 },
      agents: { A: { ...llm, toolCalling: 'auto', tools: [{ kind: 'module', module: TOOL_MODULES, export: 'add' }] } },
    });
    const run = await rt.waitForRun(runId);
    expect(run.status).toBe('COMPLETED');
    expect(run.result).toEqual({
      offered: ['final_response', 'parallel_invoke', 'next_actions'],
      choice: 'required',
      results: ['{"sum":11}', '{"sum":12}', expect.stringMatching(/^refused: the 2 tool calls of this step \(maxToolCallsPerStep\) are used/)],
    });
    expect(stub.requests[0].choice).toBe('auto');
    expect(toolEvents(events).map((d) => d.status).sort()).toEqual(['ok', 'ok', 'refused']);
  });

  it('fails the step when the model calls its tools again past the limit, counting the tokens of every turn', async () => {
    const { rt, llm } = await setup(() => ({ calls: [{ name: 'add', args: { a: 1, b: 2 } }] }));
    const runId = await rt.startRun({
      name: 'tool-limit-fail',
      request: 'go',
      entry: 'A',
      limits: { maxToolCallsPerStep: 1 },
      agents: { A: { ...llm, tools: [{ kind: 'module', module: TOOL_MODULES, export: 'add' }] } },
    });
    const run = await rt.waitForRun(runId);
    expect(run.status).toBe('FAILED');
    expect(run.error).toBe('agent A failed: LimitExceeded maxToolCallsPerStep: A called tools again after its 1 tool calls of this step');
    const { branches } = await rt.describe(runId);
    expect(branches[0].usage).toEqual({ inputTokens: 2 * STUB_USAGE.input, outputTokens: 2 * STUB_USAGE.output });
  });

  it('calls http tools with the arguments and gives the model the answer', async () => {
    const received: unknown[] = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        received.push(JSON.parse(raw));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ temperature_c: 21 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/weather`;
    const { rt, llm } = await setup((view) =>
      view.results.length ? final(view.results[0].text) : { calls: [{ name: 'weather', args: { city: 'Oslo' } }] },
    );
    const runId = await rt.startRun({
      name: 'http-tool',
      request: 'go',
      entry: 'A',
      agents: { A: { ...llm, tools: [{ kind: 'http', name: 'weather', url }] } },
    });
    const run = await rt.waitForRun(runId);
    expect(run.status).toBe('COMPLETED');
    expect(run.result).toBe('{"temperature_c":21}');
    expect(received).toEqual([{ tool: 'weather', arguments: { city: 'Oslo' }, agent: 'A', runId, branchId: 'root' }]);
  });

  it('auto: a server that refuses tools gets the text protocol instead, from then on', async () => {
    const { stub, rt, llm } = await setup((view) => {
      if (view.body.tools) return { status: 400, error: 'this model does not support tools' };
      return { text: JSON.stringify({ next_action: 'final_response', content: 'in text' }) };
    });
    const agents = { A: { ...llm, toolCalling: 'auto' } } satisfies AgentRegistry;
    const first = await rt.waitForRun(await rt.startRun({ name: 'auto-1', request: 'go', entry: 'A', agents }));
    const second = await rt.waitForRun(await rt.startRun({ name: 'auto-2', request: 'go', entry: 'A', agents }));
    expect([first.status, first.result, second.status, second.result]).toEqual(['COMPLETED', 'in text', 'COMPLETED', 'in text']);
    // One refused request, then text only; the text prompt teaches the JSON forms.
    expect(stub.requests.map((r) => Boolean(r.body.tools))).toEqual([true, false, false]);
    expect(stub.requests[1].system).toContain('exactly one JSON object');
  });

  it('on: a server that refuses tools fails the step with its message', async () => {
    const { rt, llm } = await setup(() => ({ status: 400, error: 'this model does not support tools' }));
    const run = await rt.waitForRun(await rt.startRun({ name: 'on', request: 'go', entry: 'A', agents: { A: llm } }));
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/HTTP 400 from .*: this model does not support tools/);
  });

  it('pauses: true offers wait and wait_for_callback as tools (toolCalling on): the branch awaits the answer, which the model is then given', async () => {
    const { stub, rt, events, llm } = await setup((view) => {
      const last = view.users.at(-1) ?? '';
      if (last === 'deploy v2') return { calls: [{ name: 'wait_for_callback', args: { timeout_seconds: 600, message: 'deploy v2?' } }] };
      return final({ told: last });
    });
    const asked = new Promise<LifecycleEvent<'BranchWaitingForCallback'>>((resolve) => {
      const stop = rt.bus.subscribe((event) => {
        if (event.type !== 'BranchWaitingForCallback') return;
        stop();
        resolve(event);
      });
    });
    const runId = await rt.startRun({ name: 'llm-approval', request: 'deploy v2', entry: 'Approver', agents: { Approver: { ...llm, pauses: true } } });
    const waiting = await asked;
    expect(waiting.detail).toMatchObject({ agent: 'Approver', message: 'deploy v2?' });
    await answerCallback(rt.deps, { team: rt.team, runId }, String(waiting.detail.token), { approved: true });
    const run = await rt.waitForRun(runId);
    expect(run.error).toBeUndefined();
    expect(run.result).toEqual({ told: '{"approved":true}' });
    expect(stub.requests[0].offered).toEqual(['final_response', 'parallel_invoke', 'next_actions', 'wait', 'wait_for_callback']);
    expect(stub.requests[0].system).toContain('- wait_for_callback:');
    expect(events.filter((e) => e.type === 'BranchResumed').map((e) => e.detail.reason)).toEqual(['callback-answered']);
  });
});

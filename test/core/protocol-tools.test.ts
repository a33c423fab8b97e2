/** The protocol as tools (schemas generated from the protocol's) and the scenario's `tools:` checks. */
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../core/errors';
import { parseAgentResponse } from '../../core/protocol';
import { protocolTools, responseOfToolCall } from '../../core/protocol-tools';
import { parseScenario } from '../../core/scenario';

describe('protocolTools', () => {
  it('offers each action as a tool, with the allowed agents (and itself, for copies) as an enum', () => {
    const tools = protocolTools({ agentName: 'Lead', allowed: ['Researcher', 'Writer'] });
    expect(tools.map((t) => t.name)).toEqual(['final_response', 'invoke_agent', 'parallel_invoke', 'next_actions']);
    const byName = Object.fromEntries(tools.map((t) => [t.name, t.parameters as { properties: Record<string, Record<string, unknown>> }]));
    const names = { type: 'string', enum: ['Researcher', 'Writer', 'Lead'] };
    expect(byName.parallel_invoke.properties.agents).toEqual({ type: 'array', items: names });
    expect((byName.parallel_invoke.properties.branches.items as { properties: Record<string, unknown> }).properties.agent).toEqual(names);
    expect(byName.invoke_agent.properties.agent).toEqual(names);
    // The tool's name is the action: no next_action argument.
    for (const t of tools.slice(0, 3)) expect(Object.keys((t.parameters as { properties: object }).properties)).not.toContain('next_action');
    expect(byName.parallel_invoke.properties.wait_for).toBeDefined();
  });

  it('offers wait and wait_for_callback only to an agent that may pause (pauses: true), read back as those answers', () => {
    expect(protocolTools({ agentName: 'A', allowed: [], isCopyAllowed: false, pauses: true }).map((t) => t.name)).toEqual(['final_response', 'wait', 'wait_for_callback']);
    const [, wait, callback] = protocolTools({ agentName: 'A', allowed: [], isCopyAllowed: false, pauses: true });
    expect(Object.keys((wait.parameters as { properties: object }).properties).sort()).toEqual(['input', 'seconds', 'until']);
    expect(Object.keys((callback.parameters as { properties: object }).properties).sort()).toEqual(['message', 'timeout_seconds']);
    const read = responseOfToolCall('wait_for_callback', { timeout_seconds: 60, message: 'ok?' });
    if (!read.ok) throw new Error('unreachable');
    expect(parseAgentResponse(read.response, { currentAgent: 'A', currentInput: 'x' })).toEqual({ kind: 'callback', timeoutSeconds: 60, message: 'ok?' });
    const slept = responseOfToolCall('wait', { seconds: 30 });
    if (!slept.ok) throw new Error('unreachable');
    expect(parseAgentResponse(slept.response, { currentAgent: 'A', currentInput: 'x' })).toEqual({ kind: 'wait', seconds: 30 });
  });

  it('offers only final_response when the agent may neither call others nor copy itself', () => {
    expect(protocolTools({ agentName: 'A', allowed: [], isCopyAllowed: false }).map((t) => t.name)).toEqual(['final_response']);
  });

  it('reads a tool call as the protocol response it stands for', () => {
    const read = responseOfToolCall('parallel_invoke', { agents: ['R', 'R'], next_action: 'final_response' });
    expect(read).toEqual({ ok: true, response: { agents: ['R', 'R'], next_action: 'parallel_invoke' } });
    if (!read.ok) throw new Error('unreachable');
    expect(parseAgentResponse(read.response, { currentAgent: 'A', currentInput: 'x' })).toMatchObject({ kind: 'spawn' });
    expect(responseOfToolCall('final_response', '{"content":')).toEqual({
      ok: false,
      field: '(root)',
      message: 'the arguments of tool final_response must be a JSON object, got text that is not JSON: {"content":',
    });
  });
});

describe('tools in a scenario', () => {
  const scenario = (agent: Record<string, unknown>) => ({ name: 's', entry: 'A', agents: { A: agent } });
  const llm = { kind: 'openai', model: 'm' };
  const refused = (agent: Record<string, unknown>): string => {
    try {
      parseScenario(scenario(agent), 's.yaml');
    } catch (error) {
      if (error instanceof ScenarioError) return error.message;
      throw error;
    }
    return 'accepted';
  };

  it('accepts module, http and mcp tools on LLM agents', () => {
    expect(
      refused({
        ...llm,
        toolCalling: 'on',
        tools: [
          { kind: 'module', module: './t.ts', export: 'lookup' },
          { kind: 'http', name: 'weather', url: 'http://127.0.0.1:1/w' },
          { kind: 'lambda', name: 'price', functionName: 'arn:aws:lambda:us-east-1:123456789012:function:price' },
          { kind: 'mcp', command: 'node', args: ['server.mjs'], timeoutMs: 1000 },
          { kind: 'mcp', url: 'http://127.0.0.1:1/mcp', prefix: 'remote' },
        ],
      }),
    ).toBe('accepted');
  });

  it('names the field of each mistake', () => {
    expect(refused({ kind: 'script', responses: [1], tools: [] })).toBe('s.yaml: agents.A.tools: only openai and bedrock agents call tools (this agent is script)');
    expect(refused({ ...llm, toolCalling: 'off', tools: [{ kind: 'http', name: 'w', url: 'http://x.test' }] })).toBe(
      's.yaml: agents.A.tools: tools need toolCalling auto or on (it is off)',
    );
    expect(refused({ ...llm, toolCalling: 'sometimes' })).toMatch(/^s\.yaml: agents\.A\.toolCalling: Invalid option/);
    expect(refused({ ...llm, tools: [{ kind: 'mcp', command: 'node', url: 'http://x.test' }] })).toMatch(
      /agents\.A\.tools\.0\.command: an mcp tool needs either "command" \(stdio\) or "url"/,
    );
    expect(refused({ ...llm, tools: [{ kind: 'module', module: './t.ts' }] })).toMatch(/agents\.A\.tools\.0\.name: a module tool needs "name" or "export"/);
    expect(refused({ ...llm, tools: [{ kind: 'http', name: 'final_response', url: 'http://x.test' }] })).toMatch(
      /agents\.A\.tools\.0\.name: is a protocol tool's name/,
    );
    expect(refused({ ...llm, tools: [{ kind: 'http', name: 'has space', url: 'http://x.test' }] })).toMatch(/agents\.A\.tools\.0\.name: must be 1-64/);
    expect(refused({ ...llm, parallel_tool_calls: 'branch' })).toBe('s.yaml: agents.A.parallel_tool_calls: "branch" needs tools to call (the agent has none)');
    expect(refused({ ...llm, parallel_tool_calls: 'sideways' })).toMatch(/^s\.yaml: agents\.A\.parallel_tool_calls: Invalid option/);
  });
});

import { describe, expect, it } from 'vitest';
import type { MemoryEntry } from '../../core/model';
import { buildMessages, buildSystemPrompt, stringifyContent } from '../../core/prompt';
import { parseAgentResponse } from '../../core/protocol';
import type { OpenAiAgentDefinition } from '../../core/agent-kinds';

const planner = {
  agentName: 'Planner',
  definition: { kind: 'openai', model: 'm', description: 'Splits research questions into parts.', system: 'Be terse. Cite sources.' } satisfies OpenAiAgentDefinition,
  allowed: ['Researcher', 'Summarizer'],
  isCopyAllowed: true,
};

/** Every JSON object written on a line of its own or inline in the prompt's examples. */
function examplesIn(prompt: string): unknown[] {
  const found: unknown[] = [];
  for (const match of prompt.matchAll(/\{"next_action[^\n]*?\}(?=( spawns| makes| finishes| \(|$|\n))/gm)) {
    found.push(JSON.parse(match[0]));
  }
  return found;
}

describe('buildSystemPrompt', () => {
  const prompt = buildSystemPrompt(planner);

  it('states the role: the agent name and its description', () => {
    expect(prompt).toMatch(/You are the agent "Planner"/);
    expect(prompt).toContain('Your role: Splits research questions into parts.');
  });

  it('lists the agents it may call and says it may spawn copies of itself', () => {
    expect(prompt).toContain('Agents you may call: "Researcher", "Summarizer".');
    expect(prompt).toContain('spawn copies of yourself ("Planner")');
  });

  it('teaches every protocol form with an example', () => {
    for (const text of [
      '"next_action":"final_response"',
      '"next_action":"invoke_agent"',
      '"next_action":"parallel_invoke"',
      '"agents":["Researcher","Summarizer"]',
      '"action_input":{"Researcher"',
      '"branches":[',
      '"wait_for":"all"',
      '"aggregator":"default"',
      '"agent:<Name>"',
      '"weighted_average"',
      '{"next_actions":[["sub-task 1","sub-task 2"]]}',
      '{"next_actions":[],"content"',
    ]) {
      expect(prompt).toContain(text);
    }
    expect(prompt).toContain('exactly one JSON object');
  });

  it('gives examples the protocol parser accepts', () => {
    const examples = examplesIn(prompt);
    expect(examples).toHaveLength(7);
    for (const example of examples) {
      expect(() => parseAgentResponse(example, { currentAgent: 'Planner', currentInput: 'x' })).not.toThrow();
    }
  });

  it('teaches wait and wait_for_callback only to an agent that may pause (pauses: true), with examples the parser accepts', () => {
    expect(prompt).not.toContain('"next_action":"wait');
    const pausing = buildSystemPrompt({ ...planner, definition: { ...planner.definition, pauses: true } });
    expect(pausing).toContain('"next_action":"wait_for_callback"');
    expect(pausing).toContain('"next_action":"wait"');
    const examples = examplesIn(pausing);
    expect(examples).toHaveLength(9);
    for (const example of examples) expect(() => parseAgentResponse(example, { currentAgent: 'Planner', currentInput: 'x' })).not.toThrow();
    const tools = buildSystemPrompt({ ...planner, definition: { ...planner.definition, pauses: true }, mode: 'tools' });
    expect(tools).toContain('- wait: ');
    expect(tools).toContain('- wait_for_callback: ');
    expect(buildSystemPrompt({ ...planner, mode: 'tools' })).not.toContain('- wait');
  });

  it("appends the user's own system prompt last", () => {
    expect(prompt.endsWith('Instructions for this agent:\nBe terse. Cite sources.')).toBe(true);
  });

  it('with no allowed agents: no hand-off form, copies of itself in the examples', () => {
    const leaf = buildSystemPrompt({ agentName: 'Researcher', definition: { kind: 'openai', model: 'm' }, allowed: [], isCopyAllowed: true });
    expect(leaf).toContain('You may not call any other agent.');
    expect(leaf).not.toContain('invoke_agent');
    expect(leaf).toContain('"agents":["Researcher","Researcher"]');
    expect(leaf).not.toContain('Instructions for this agent');
    expect(leaf).not.toContain('Your role');
  });

  it('leaves itself and duplicates out of the allowed list', () => {
    const p = buildSystemPrompt({ agentName: 'A', definition: { kind: 'openai', model: 'm' }, allowed: ['B', 'A', 'B'] });
    expect(p).toContain('Agents you may call: "B".');
  });

  it('without copies: no branched-recursion form', () => {
    const p = buildSystemPrompt({ agentName: 'A', definition: { kind: 'openai', model: 'm' }, allowed: ['B'], isCopyAllowed: false });
    expect(p).not.toContain('next_actions');
    expect(p).not.toContain('copies of yourself');
  });
});

describe('buildMessages', () => {
  it('turns the memory into history and the input into the last user message', () => {
    const memory: MemoryEntry[] = [
      { role: 'user', agent: 'Planner', content: 'Analyze Q4' },
      { role: 'assistant', agent: 'Planner', content: { next_action: 'parallel_invoke', agents: ['Researcher'] } },
    ];
    expect(buildMessages(memory, { child_count: 1 })).toEqual([
      { role: 'user', content: 'Analyze Q4' },
      { role: 'assistant', content: '{"next_action":"parallel_invoke","agents":["Researcher"]}' },
      { role: 'user', content: '{"child_count":1}' },
    ]);
  });

  it('skips nothing: null, numbers, inherited entries and empty strings all stay', () => {
    const memory: MemoryEntry[] = [
      { role: 'user', agent: 'A', content: null, inherited: true },
      { role: 'assistant', agent: 'A', content: 42, inherited: true },
      { role: 'user', agent: 'A', content: '' },
    ];
    expect(buildMessages(memory, undefined).map((m) => m.content)).toEqual(['null', '42', '', 'null']);
  });

  it('makes an invalid-response input a corrective message quoting the error', () => {
    const input = { error: 'InvalidAgentResponse', field: 'next_action', message: 'next_action must be one of ...' };
    const [message] = buildMessages([], input);
    expect(message.role).toBe('user');
    expect(message.content).toContain('Your previous reply was not accepted (field "next_action")');
    expect(message.content).toContain('next_action must be one of ...');
    expect(message.content).toContain('exactly one JSON object');
  });

  it('does the same for a corrective input kept in the history', () => {
    const memory: MemoryEntry[] = [
      { role: 'user', agent: 'A', content: { error: 'InvalidAgentResponse', message: 'response is not JSON' } },
      { role: 'assistant', agent: 'A', content: '{"next_action":"final_response"}' },
    ];
    expect(buildMessages(memory, 'x')[0].content).toMatch(/^Your previous reply was not accepted: response is not JSON/);
  });

  it('explains a refused spawn', () => {
    const input = { error: 'LimitExceeded', limit: 'maxDepth', max: 3, requested: 4, message: 'depth 4 > 3' };
    const [message] = buildMessages([], input);
    expect(message.content).toContain('refused (limit maxDepth): depth 4 > 3');
  });

  it("labels other agents' entries when the current agent is given", () => {
    const memory: MemoryEntry[] = [
      { role: 'user', agent: 'Writer', content: 'draft' },
      { role: 'assistant', agent: 'Writer', content: '{"next_action":"invoke_agent","action_input":"Editor"}' },
    ];
    const messages = buildMessages(memory, 'draft', { agentName: 'Editor' });
    expect(messages[0].content).toBe('[input to agent Writer]\ndraft');
    expect(messages[1].content).toMatch(/^\[reply of agent Writer\]\n\{/);
    expect(messages[2]).toEqual({ role: 'user', content: 'draft' });
    expect(buildMessages(memory, 'x', { agentName: 'Writer' })[0].content).toBe('draft');
  });

  it('stringifies any value', () => {
    expect(stringifyContent('a')).toBe('a');
    expect(stringifyContent({ a: [1] })).toBe('{"a":[1]}');
    expect(stringifyContent(undefined)).toBe('null');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(stringifyContent(circular)).toBe('[object Object]');
  });
});

describe('buildMessages within a token budget (values of any size)', () => {
  const aggregate = (children: number) => {
    const results: Record<string, unknown> = {};
    for (let i = 0; i < children; i++) results[`root.${i}`] = { v: i, text: 'x'.repeat(2_000) };
    return { child_count: children, results, failures: {}, metadata: { aggregation_method: 'default', succeeded: children } };
  };

  it("renders a 20 MB aggregate within the call's budget, saying how many children were left out and where they are", () => {
    const input = aggregate(10_000);
    const messages = buildMessages([], input, { promptTokens: 8_000, runId: 'run-1' });
    const text = messages[0].content;
    expect(text.length).toBeLessThan(8_000 * 4 + 600);
    expect(text).toMatch(/^\{"child_count":10000,"results":\{"root\.0":/);
    const note = /\[This value is (\d+) bytes; it was cut to fit this call's budget of 8000 tokens; \d+ entries \(marked "…"\) were left out\. It holds the results of 10000 children; (\d+) of them are not shown here\. Each child's whole result: GET \/runs\/run-1\/branches\/<childId>\/result\.\]$/.exec(text);
    expect(note).not.toBeNull();
    expect(Number(note![1])).toBe(JSON.stringify(input).length);
    expect(Number(note![2])).toBeGreaterThan(9_900);
    // The metadata (small) is kept whole beside the cut results.
    expect(text).toContain('"metadata":{"aggregation_method":"default","succeeded":10000}');
  });

  it('leaves values within the budget as they are, and shares the budget between memory and input', () => {
    expect(buildMessages([], aggregate(3))[0].content).toBe(JSON.stringify(aggregate(3)));
    const memory: MemoryEntry[] = Array.from({ length: 10 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', agent: 'A', content: 'm'.repeat(10_000) }) as MemoryEntry);
    const messages = buildMessages(memory, 'i'.repeat(100_000), { promptTokens: 10_000 });
    expect(messages).toHaveLength(11);
    const total = messages.reduce((n, m) => n + m.content.length, 0);
    expect(total).toBeLessThan(10_000 * 4 + 11 * 300);
    expect(messages[10].content).toMatch(/^i+… \(\d+ more characters, 100002 bytes in all\)\n\[This value is 100002 bytes/);
  });
});

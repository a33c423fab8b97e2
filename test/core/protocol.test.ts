import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidAgentResponseError } from '../../core/errors';
import { parseAgentResponse } from '../../core/protocol';

const ctx = { currentAgent: 'Planner', currentInput: 'the task' };
const parse = (raw: unknown) => parseAgentResponse(raw, ctx);

function invalid(raw: unknown, field: string, message: RegExp) {
  let caught: unknown;
  try {
    parse(raw);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidAgentResponseError);
  expect((caught as InvalidAgentResponseError).field).toBe(field);
  expect((caught as Error).message).toMatch(message);
}

describe('canonical forms', () => {
  it('invoke_agent with the agent name in action_input hands the current input on', () => {
    expect(parse({ next_action: 'invoke_agent', action_input: 'Validator' })).toEqual({
      kind: 'handoff',
      agent: 'Validator',
      input: 'the task',
    });
  });

  it('invoke_agent with {agent, input}', () => {
    expect(parse({ next_action: 'invoke_agent', action_input: { agent: 'Validator', input: { x: 1 } } })).toEqual({
      kind: 'handoff',
      agent: 'Validator',
      input: { x: 1 },
    });
    expect(parse({ next_action: 'invoke_agent', agent: 'Validator', input: 'check' })).toEqual({
      kind: 'handoff',
      agent: 'Validator',
      input: 'check',
    });
  });

  it('parallel_invoke with agents and action_input, same name twice = two copies', () => {
    const d = parse({
      next_action: 'parallel_invoke',
      agents: ['DataFetcher', 'Calculator', 'DataFetcher'],
      action_input: { DataFetcher: 'Q4', Calculator: { op: 'sum' } },
      wait_for: 'any',
      aggregator: 'weighted_average',
      metadata: { pattern: 'hierarchical' },
    });
    expect(d).toEqual({
      kind: 'spawn',
      grouped: false,
      groups: [[
        { agent: 'DataFetcher', input: 'Q4', type: 'SIMPLE' },
        { agent: 'Calculator', input: { op: 'sum' }, type: 'SIMPLE' },
        { agent: 'DataFetcher', input: 'Q4', type: 'SIMPLE' },
      ]],
      waitFor: 'any',
      aggregator: { kind: 'weighted_average' },
      metadata: { pattern: 'hierarchical' },
      inheritMemory: false,
    });
  });

  it('agent_requests is an alias of action_input; agents default to its keys', () => {
    const d = parse({ next_action: 'parallel_invoke', agent_requests: { A: 1, B: 2 } });
    expect(d.kind === 'spawn' && d.groups[0]).toEqual([
      { agent: 'A', input: 1, type: 'SIMPLE' },
      { agent: 'B', input: 2, type: 'SIMPLE' },
    ]);
  });

  it('agents without inputs get the current input; wait_for_all false means any', () => {
    const d = parse({ next_action: 'parallel_invoke', agents: ['A'], wait_for_all: false });
    expect(d).toMatchObject({ kind: 'spawn', waitFor: 'any', groups: [[{ agent: 'A', input: 'the task' }]] });
  });

  it('the general branches form with conversation branches', () => {
    const d = parse({
      next_action: 'parallel_invoke',
      branches: [
        { agent: 'A', input: 'x' },
        { agent: 'B', input: 'y', type: 'conversation', peers: ['C'], max_turns: 4 },
      ],
      wait_for: 1,
      aggregator: 'agent:Judge',
      inherit_memory: true,
    });
    expect(d).toEqual({
      kind: 'spawn',
      grouped: false,
      groups: [[
        { agent: 'A', input: 'x', type: 'SIMPLE' },
        { agent: 'B', input: 'y', type: 'CONVERSATION', peers: ['C'], maxTurns: 4 },
      ]],
      waitFor: 1,
      aggregator: { kind: 'agent', agent: 'Judge' },
      inheritMemory: true,
    });
  });

  it('final_response with any JSON content, null when absent', () => {
    expect(parse({ next_action: 'final_response', content: { a: [1, 2] } })).toEqual({ kind: 'complete', content: { a: [1, 2] } });
    expect(parse({ next_action: 'final_response' })).toEqual({ kind: 'complete', content: null });
  });

  it('registered aggregator names', () => {
    expect(parse({ next_action: 'parallel_invoke', agents: ['A'], aggregator: 'majority' })).toMatchObject({
      aggregator: { kind: 'registered', name: 'majority' },
    });
  });
});

describe('next_actions (branched recursion) dialect', () => {
  it('[] completes with content (null when absent)', () => {
    expect(parse({ next_actions: [] })).toEqual({ kind: 'complete', content: null });
    expect(parse({ next_actions: [], content: 'done' })).toEqual({ kind: 'complete', content: 'done' });
  });

  it('[[a]] continues the same agent with a', () => {
    expect(parse({ next_actions: [['look closer']] })).toEqual({ kind: 'continue', input: 'look closer' });
  });

  it('groups spawn copies of the same agent, one sync point per group', () => {
    expect(parse({ next_actions: [['a1', 'a2'], ['b1']], inherit_memory: true })).toEqual({
      kind: 'spawn',
      grouped: true,
      groups: [
        [{ agent: 'Planner', input: 'a1', type: 'SIMPLE' }, { agent: 'Planner', input: 'a2', type: 'SIMPLE' }],
        [{ agent: 'Planner', input: 'b1', type: 'SIMPLE' }],
      ],
      waitFor: 'all',
      aggregator: { kind: 'default' },
      inheritMemory: true,
    });
  });
});

describe('text forms', () => {
  it('a JSON string', () => {
    expect(parse('{"next_action":"final_response","content":1}')).toEqual({ kind: 'complete', content: 1 });
  });

  it('a ```json fenced block with prose around it', () => {
    const text = 'Sure, here is my decision:\n```json\n{"next_action": "invoke_agent", "action_input": "Validator"}\n```\nThanks.';
    expect(parse(text)).toMatchObject({ kind: 'handoff', agent: 'Validator' });
  });

  it('prose around a bare JSON object', () => {
    expect(parse('I will finish now: {"next_action":"final_response","content":"ok"} — bye')).toEqual({
      kind: 'complete',
      content: 'ok',
    });
  });
});

describe('invalid shapes name what was wrong', () => {
  it.each([
    [null, '(root)', /must be a JSON object, got null/],
    [[1, 2], '(root)', /got an array/],
    ['not json at all', '(root)', /not JSON/],
    ['```json\n{broken\n```', '(root)', /fenced block is not valid JSON/],
    [{}, 'next_action', /must have "next_action"/],
    [{ next_action: 'dance' }, 'next_action', /must be one of invoke_agent, parallel_invoke, final_response, wait, wait_for_callback, got "dance"/],
    [{ next_action: 'invoke_agent' }, 'action_input', /needs the agent to call/],
    [{ next_action: 'invoke_agent', action_input: '' }, 'action_input', /non-empty agent name/],
    [{ next_action: 'invoke_agent', action_input: 42 }, 'action_input', /action_input/],
    [{ next_action: 'parallel_invoke' }, 'agents', /needs "agents"/],
    [{ next_action: 'parallel_invoke', agents: [] }, 'agents', /at least one agent/],
    [{ next_action: 'parallel_invoke', agents: 'A' }, 'agents', /agents/],
    [{ next_action: 'parallel_invoke', agents: ['A', 7] }, 'agents.1', /agents.1/],
    [{ next_action: 'parallel_invoke', agents: ['A'], action_input: { B: 1 } }, 'action_input.B', /not in "agents"/],
    [{ next_action: 'parallel_invoke', agents: ['A'], wait_for: 'most' }, 'wait_for', /wait_for/],
    [{ next_action: 'parallel_invoke', agents: ['A'], wait_for: 0 }, 'wait_for', /positive/],
    [{ next_action: 'parallel_invoke', agents: ['A'], wait_for: 2 }, 'wait_for', /more than the 1 children/],
    [{ next_action: 'parallel_invoke', agents: ['A'], aggregator: 'agent:' }, 'aggregator', /needs an agent name/],
    [{ next_action: 'parallel_invoke', agents: ['A'], metadata: 'x' }, 'metadata', /metadata/],
    [{ next_action: 'parallel_invoke', branches: [{ input: 1 }] }, 'branches.0.agent', /branches.0.agent/],
    [{ next_action: 'parallel_invoke', branches: [{ agent: 'A', type: 'weird' }] }, 'branches.0.type', /type/],
    [{ next_action: 'parallel_invoke', branches: [{ agent: 'A', peers: ['B'] }] }, 'branches.0.type', /conversation branches only/],
    [{ next_action: 'parallel_invoke', branches: [{ agent: 'A' }], agents: ['A'] }, 'agents', /either "branches" or "agents"/],
    [{ next_actions: 'x' }, 'next_actions', /next_actions/],
    [{ next_actions: [[]] }, 'next_actions.0', /at least one action/],
    [{ next_actions: [['a', 'b']], wait_for: 3 }, 'wait_for', /more than/],
    [{ next_action: 'wait' }, 'seconds', /either "seconds" or "until"/],
    [{ next_action: 'wait', seconds: 1, until: '2030-01-01T00:00:00Z' }, 'seconds', /not both/],
    [{ next_action: 'wait', seconds: 0 }, 'seconds', /positive number of seconds/],
    [{ next_action: 'wait', until: '2030-01-01T09:00:00' }, 'until', /ISO 8601 date-time with its zone/],
    [{ next_action: 'wait', until: 'tomorrow Z' }, 'until', /ISO 8601/],
    [{ next_action: 'wait_for_callback', timeout_seconds: 1.5 }, 'timeout_seconds', /whole number/],
    [{ next_action: 'wait_for_callback', timeout_seconds: -1 }, 'timeout_seconds', /positive/],
  ])('%j', (raw, field, message) => invalid(raw, field, message));

  it('wait and wait_for_callback pause the branch', () => {
    expect(parse({ next_action: 'wait', seconds: 2.5, input: 'again' })).toEqual({ kind: 'wait', seconds: 2.5, input: 'again' });
    expect(parse({ next_action: 'wait', until: '2030-01-01T09:00:00+02:00' })).toEqual({ kind: 'wait', until: Date.UTC(2030, 0, 1, 7) });
    expect(parse({ next_action: 'wait_for_callback', timeout_seconds: 60, message: { approve: 'x' } })).toEqual({ kind: 'callback', timeoutSeconds: 60, message: { approve: 'x' } });
    expect(parse({ next_action: 'wait_for_callback' })).toEqual({ kind: 'callback' });
  });

  it('refuses an over-long text', () => {
    invalid('x'.repeat(1_000_001), '(root)', /at most/);
  });
});

describe('properties', () => {
  it('never throws anything but InvalidAgentResponseError on arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parse(value);
        } catch (error) {
          return error instanceof InvalidAgentResponseError;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws anything but InvalidAgentResponseError on near-valid objects and strings', () => {
    const nearValid = fc.record(
      {
        next_action: fc.constantFrom('invoke_agent', 'parallel_invoke', 'final_response', 'x'),
        action_input: fc.jsonValue(),
        agents: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
        branches: fc.jsonValue(),
        wait_for: fc.jsonValue(),
        aggregator: fc.jsonValue(),
        next_actions: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(nearValid, fc.string(), nearValid.map((v) => JSON.stringify(v))), (value) => {
        try {
          parse(value);
        } catch (error) {
          return error instanceof InvalidAgentResponseError;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('per-fan-out options', () => {
  const spawn = (extra: Record<string, unknown>) => parse({ next_action: 'parallel_invoke', agents: ['A', 'A', 'B'], ...extra });

  it('max_concurrency, tolerated_failures (count or fraction), on_failure and complete_when are read beside wait_for', () => {
    expect(spawn({ max_concurrency: 2, tolerated_failures: 1, on_failure: 'continue', complete_when: 2 })).toMatchObject({
      waitFor: 2,
      options: { maxConcurrency: 2, toleratedFailures: { count: 1 }, onFailure: 'continue' },
    });
    expect(spawn({ tolerated_failures: 0.25 })).toMatchObject({ waitFor: 'all', options: { toleratedFailures: { fraction: 0.25 } } });
    expect(spawn({ complete_when: 'fn:primaryOrBothBackups' })).toMatchObject({ waitFor: 'all', options: { completeFn: 'primaryOrBothBackups' } });
    expect(spawn({ complete_when: 'any' })).toMatchObject({ waitFor: 'any' });
    // Without options nothing is added: a spawn reads as before.
    expect(spawn({})).not.toHaveProperty('options');
    // The next_actions dialect takes them too.
    expect(parse({ next_actions: [['x', 'y']], on_failure: 'continue' })).toMatchObject({ grouped: true, options: { onFailure: 'continue' } });
  });

  it('a bad option is refused naming its field', () => {
    invalid({ next_action: 'parallel_invoke', agents: ['A'], max_concurrency: 0 }, 'max_concurrency', /must be positive/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], max_concurrency: 1.5 }, 'max_concurrency', /must be an integer/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], max_concurrency: 5000 }, 'max_concurrency', /must be ≤ 1000/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], tolerated_failures: -1 }, 'tolerated_failures', /must be ≥ 0/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], tolerated_failures: 1.5 }, 'tolerated_failures', /a count \(an integer\) or a fraction between 0 and 1/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], tolerated_failures: '30%' }, 'tolerated_failures', /number/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], on_failure: 'retry' }, 'on_failure', /fail|continue/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], complete_when: 'most' }, 'complete_when', /"all", "any", a positive integer or "fn:<name>"/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], complete_when: 'fn:' }, 'complete_when', /fn:<name>/);
    invalid({ next_action: 'parallel_invoke', agents: ['A'], complete_when: 0 }, 'complete_when', /positive integer/);
    invalid({ next_action: 'parallel_invoke', agents: ['A', 'B'], complete_when: 3 }, 'complete_when', /complete_when 3 is more than the 2 children spawned/);
    invalid({ next_action: 'parallel_invoke', agents: ['A', 'B'], complete_when: 'any', wait_for: 1 }, 'complete_when', /either "complete_when" or "wait_for"/);
    invalid({ next_actions: [['x']], on_failure: 'maybe' }, 'on_failure', /fail|continue/);
    const wide = Array.from({ length: 101 }, () => 'A');
    invalid({ next_action: 'parallel_invoke', agents: wide, complete_when: 'fn:f' }, 'complete_when', /is for at most 100 children \(it reads every child at each end\); this spawn has 101/);
    invalid({ next_actions: [['x'], wide], complete_when: 'fn:f' }, 'complete_when', /this spawn has 101/);
    expect(parse({ next_action: 'parallel_invoke', agents: wide.slice(1), complete_when: 'fn:f' })).toMatchObject({ options: { completeFn: 'f' } });
  });

  it('complete_when equal to wait_for is accepted (the same rule said twice)', () => {
    expect(spawn({ complete_when: 'any', wait_for: 'any' })).toMatchObject({ waitFor: 'any' });
  });
});

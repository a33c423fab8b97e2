import { describe, expect, it } from 'vitest';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { parseScenario } from '../../core/scenario';
import type { AgentInvocation } from '../../core/ports';

const scenario = (agent: Record<string, unknown>, limits?: Record<string, number>) => ({
  name: 's',
  entry: 'A',
  ...(limits ? { limits } : {}),
  agents: { A: { kind: 'script', ...agent } },
});

describe('script directives', () => {
  it('$transientFailures: n throws a TransientError on the first n deliveries of the step, then answers', async () => {
    const { TransientError } = await import('../../core/errors');
    const call = (attempt: number) =>
      ({
        team: 't', runId: 'r', agentName: 'A', branchId: 'root', step: 0, input: 'in', memory: [], allowed: [], attempt,
        definition: { kind: 'script', responses: [{ $transientFailures: 2, next_action: 'final_response', content: '$input' }] },
      }) satisfies AgentInvocation;
    await expect(new ScriptInvoker().invoke(call(1))).rejects.toBeInstanceOf(TransientError);
    await expect(new ScriptInvoker().invoke(call(2))).rejects.toThrow(/throttled \(delivery 2 of the 2 that fail\)/);
    expect(await new ScriptInvoker().invoke(call(3))).toEqual({ response: { next_action: 'final_response', content: 'in' } });
    expect(() => parseScenario(scenario({ responses: [{ $transientFailures: -1 }] }), 's.yaml')).toThrow(
      /agents\.A\.responses\.0\.\$transientFailures: must be an integer 0\.\.10, got -1/,
    );
  });

  it('a wait or a callback timeout longer than limits.maxWaitSeconds is refused when the scenario is read', () => {
    expect(() => parseScenario(scenario({ responses: [{ next_action: 'wait', seconds: 3601 }] }), 's.yaml')).toThrow(
      /agents\.A\.responses\.0\.seconds: 3601 s is longer than limits\.maxWaitSeconds \(3600 s\)/,
    );
    expect(() => parseScenario(scenario({ rules: [{ when: 'x', responses: [{ next_action: 'wait_for_callback', timeout_seconds: 20 }] }] }, { maxWaitSeconds: 10 }), 's.yaml')).toThrow(
      /agents\.A\.rules\.0\.responses\.0\.timeout_seconds: 20 s is longer than limits\.maxWaitSeconds \(10 s\)/,
    );
    expect(() => parseScenario(scenario({ responses: [{ next_action: 'wait', seconds: 10 }] }, { maxWaitSeconds: 10 }), 's.yaml')).not.toThrow();
  });

  it('a wait or a callback the protocol would refuse is refused when the scenario is read, naming the field (not skipped as an invalid answer at run time)', () => {
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ next_action: 'wait', seconds: 5, until: '2030-01-01T00:00:00Z' }, /agents\.A\.responses\.0\.seconds: wait needs either "seconds" or "until" \(not both\)/],
      [{ next_action: 'wait' }, /agents\.A\.responses\.0\.seconds: wait needs either "seconds" or "until"/],
      [{ next_action: 'wait', until: '2030-01-01T09:00:00' }, /agents\.A\.responses\.0\.until: until must be an ISO 8601 date-time with its zone/],
      [{ next_action: 'wait_for_callback', timeout_seconds: 1.5 }, /agents\.A\.responses\.0\.timeout_seconds: must be a whole number of seconds/],
    ];
    for (const [response, message] of refused) {
      expect(() => parseScenario(scenario({ responses: [response, { next_action: 'final_response', content: 'x' }] }), 's.yaml'), JSON.stringify(response)).toThrow(message);
    }
    // `until` is a time: how far off it is is known when the step runs (held to maxWaitSeconds then).
    expect(() => parseScenario(scenario({ responses: [{ $delayMs: 1, next_action: 'wait', until: '2030-01-01T09:00:00+02:00', input: 'go' }] }), 's.yaml')).not.toThrow();
    // A time given by the step's input is known only then.
    expect(() => parseScenario(scenario({ responses: [{ next_action: 'wait', until: '$input' }] }), 's.yaml')).not.toThrow();
  });

  it('$fail with an object fails with its JSON, not "[object Object]"', async () => {
    const call = {
      team: 't', runId: 'r', agentName: 'A', branchId: 'root', step: 0, input: null, memory: [], allowed: [],
      definition: { kind: 'script', responses: [{ $fail: { reason: 'quota', retryIn: 30 } }] },
    } satisfies AgentInvocation;
    await expect(new ScriptInvoker().invoke(call)).rejects.toThrow('{"reason":"quota","retryIn":30}');
  });

  it('$delayMs over the branch timeout, over the timer range, negative or not a number is refused naming the field', () => {
    const cases: [Record<string, unknown>, Record<string, number> | undefined, RegExp][] = [
      [{ responses: ['x', { $delayMs: 1e12, a: 1 }] }, undefined, /^agents\.A\.responses\.1\.\$delayMs: 1000000000000 ms is longer than an agent call may last \(limits\.agentTimeoutSeconds 240 s\)/],
      [{ responses: [{ $delayMs: 5000 }] }, { branchTimeoutSeconds: 2 }, /agents\.A\.responses\.0\.\$delayMs: 5000 ms is longer than the branch timeout/],
      [{ rules: [{ when: 'x', responses: [{ $delayMs: -1 }] }] }, undefined, /agents\.A\.rules\.0\.responses\.0\.\$delayMs: must be a number of milliseconds ≥ 0/],
      [{ responses: [{ $delayMs: '10' }] }, undefined, /agents\.A\.responses\.0\.\$delayMs: must be a number/],
    ];
    for (const [agent, limits, message] of cases) {
      let error: Error & { field?: string } = new Error('none');
      try {
        parseScenario(scenario(agent, limits), 's.yaml');
      } catch (e) {
        error = e as Error;
      }
      expect(error.message).toMatch(new RegExp(`^s\\.yaml: ${message.source.replace(/^\^/, '')}`));
      expect(error.field).toMatch(/\$delayMs$/);
    }
    expect(parseScenario(scenario({ responses: [{ $delayMs: 239_000, a: 1 }] }), 's.yaml').agents.A.kind).toBe('script');
  });

  it("a spawning response's per-fan-out options are checked when the scenario is read, naming the field", () => {
    const spawn = (extra: Record<string, unknown>) => ({ responses: [{ next_action: 'parallel_invoke', agents: ['A'], ...extra }] });
    expect(() => parseScenario(scenario(spawn({ max_concurrency: 2, tolerated_failures: 0.5, on_failure: 'continue', complete_when: 'fn:f' })), 's.yaml')).not.toThrow();
    expect(() => parseScenario(scenario(spawn({ on_failure: 'ignore' })), 's.yaml')).toThrow(/^s\.yaml: agents\.A\.responses\.0\.on_failure: /);
    expect(() => parseScenario(scenario({ rules: [{ when: 'x', responses: [{ next_actions: [['a']], tolerated_failures: 2.5 }] }] }), 's.yaml')).toThrow(
      /^s\.yaml: agents\.A\.rules\.0\.responses\.0\.tolerated_failures: must be a count \(an integer\) or a fraction between 0 and 1/,
    );
    expect(() => parseScenario(scenario(spawn({ max_concurrency: 11 })), 's.yaml')).toThrow(
      /^s\.yaml: agents\.A\.responses\.0\.max_concurrency: 11 is more than the run allows at once \(limits\.maxConcurrentBranches 10\)/,
    );
    expect(() => parseScenario(scenario(spawn({ max_concurrency: 11 }), { maxConcurrentBranches: 20 }), 's.yaml')).not.toThrow();
  });
});

/** An agent's retry policy: how it is read (fields named in errors, bounds), its backoff, and the step's loop. */
import { describe, expect, it } from 'vitest';
import { AgentInvocationError, AgentTimeoutError, AgentTransportError, InvalidAgentResponseError, ScenarioError, ValidationError } from '../../core/errors';
import { computeMetrics } from '../../core/metrics';
import type { AgentInvoker } from '../../core/ports';
import type { AgentDefinition, AgentRegistry, ScriptAgentDefinition } from '../../core/agent-kinds';
import { agentRetryPolicy, backoffDelay, type RetryKind, RETRY_DEFAULTS, retryDelay, retryKindOf, transportRetries } from '../../core/retry-policy';
import { parseScenario } from '../../core/scenario';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { createMemoryHarness } from '../support/memory-harness';

const scenario = (agent: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name: 'r',
  entry: 'A',
  // A script agent unless `agent` names another kind (then only its own fields).
  agents: { A: agent.kind && agent.kind !== 'script' ? agent : { kind: 'script', responses: [{ next_action: 'final_response', content: 'ok' }], ...agent } },
  ...extra,
});
const refusal = (doc: unknown): string => {
  try {
    parseScenario(doc, 's.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError);
    return `${(error as ScenarioError).field} | ${(error as Error).message}`;
  }
  throw new Error('accepted');
};

describe('retry: in a scenario', () => {
  it('is accepted on every kind, and fills in the defaults', () => {
    for (const kind of ['script', 'http', 'lambda', 'bedrock', 'openai', 'module']) {
      const required = { script: {}, http: { url: 'http://x' }, lambda: { functionName: 'f' }, bedrock: { modelId: 'm' }, openai: { model: 'm' }, module: { module: './m.ts' } }[kind];
      const parsed = parseScenario(scenario({ kind, ...required, retry: { attempts: 4 } }), 's.yaml');
      expect(agentRetryPolicy(parsed.agents.A)).toEqual({ ...RETRY_DEFAULTS, attempts: 4 });
    }
    const full = { attempts: 2, backoff: { initialMs: 10, maxMs: 20, multiplier: 3 }, jitter: 'none', on: ['invalid', 'error'] };
    expect(agentRetryPolicy(parseScenario(scenario({ retry: full }), 's.yaml').agents.A)).toEqual(full);
    expect(agentRetryPolicy(parseScenario(scenario({}), 's.yaml').agents.A)).toBeUndefined();
  });

  it('refuses a bad policy, naming the field', () => {
    expect(refusal(scenario({ retry: { attempts: 0 } }))).toMatch(/^agents\.A\.retry\.attempts \| s\.yaml: agents\.A\.retry\.attempts: must be positive/);
    expect(refusal(scenario({ retry: { attempts: 21 } }))).toMatch(/agents\.A\.retry\.attempts: must be ≤ 20, the ceiling/);
    expect(refusal(scenario({ retry: { attempts: 6 } }))).toMatch(/agents\.A\.retry\.attempts: 6 attempts; limits\.maxAgentAttempts is 5/);
    expect(refusal(scenario({ retry: { attempts: 8 } }, { limits: { maxAgentAttempts: 7 } }))).toMatch(/limits\.maxAgentAttempts is 7/);
    expect(() => parseScenario(scenario({ retry: { attempts: 8 } }, { limits: { maxAgentAttempts: 8 } }), 's.yaml')).not.toThrow();
    expect(refusal(scenario({ retry: { tries: 3 } }))).toMatch(/agents\.A\.retry: unknown field\(s\) "tries"/);
    expect(refusal(scenario({ retry: { on: ['boom'] } }))).toMatch(/^agents\.A\.retry\.on\.0 \|/);
    expect(refusal(scenario({ retry: { on: [] } }))).toMatch(/agents\.A\.retry\.on: needs at least one kind/);
    expect(refusal(scenario({ retry: { jitter: 'equal' } }))).toMatch(/^agents\.A\.retry\.jitter \|/);
    expect(refusal(scenario({ retry: { backoff: { maxMs: 60_000 } } }))).toMatch(/agents\.A\.retry\.backoff\.maxMs: must be ≤ 30000/);
    expect(refusal(scenario({ retry: { backoff: { multiplier: 0.5 } } }))).toMatch(/agents\.A\.retry\.backoff\.multiplier: must be ≥ 1/);
    expect(refusal(scenario({ retry: { backoff: { initialMs: 9_000, maxMs: 100 } } }))).toMatch(/agents\.A\.retry\.backoff\.initialMs: 9000 ms is more than backoff\.maxMs/);
    expect(refusal(scenario({ kind: 'http', url: 'http://x', retries: 2, retry: {} }))).toMatch(/^agents\.A\.retries \| .*retry already retries/);
    // Transport retries and a policy that leaves transport failures to them do not overlap.
    expect(() => parseScenario(scenario({ kind: 'http', url: 'http://x', retries: 2, retry: { on: ['error'] } }), 's.yaml')).not.toThrow();
    expect(refusal(scenario({ responses: [{ $failures: -1 }] }))).toMatch(/agents\.A\.responses\.0\.\$failures: must be an integer 0\.\.20/);
  });

  it('a stack that allows fewer attempts refuses more when the run starts, naming the field', async () => {
    const h = createMemoryHarness();
    try {
      const input = { name: 'r', request: 'x', entry: 'A', agents: { A: { kind: 'script', responses: ['x'], retry: { attempts: 4 } } } satisfies AgentRegistry, limitMaxima: { maxAgentAttempts: 3 } };
      await expect(h.run(input)).rejects.toThrow(ValidationError);
      await expect(h.run(input)).rejects.toThrow(/agents\.A\.retry\.attempts: 4 attempts; limits\.maxAgentAttempts is 3/);
    } finally {
      h.stop();
    }
  });
});

describe('backoff', () => {
  const backoff = { initialMs: 100, maxMs: 1_000, multiplier: 2 };
  it('grows by the multiplier up to maxMs; full jitter is within [0, ceiling], none is the ceiling, equal keeps half', () => {
    expect([1, 2, 3, 4, 5, 10].map((n) => backoffDelay(n, backoff, 'none'))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffDelay(3, { ...backoff, multiplier: 3 }, 'none')).toBe(900);
    expect([0, 0.5, 0.999].map((r) => backoffDelay(2, backoff, 'full', () => r))).toEqual([0, 100, 200]);
    expect([0, 1].map((r) => backoffDelay(2, backoff, 'equal', () => r))).toEqual([100, 200]);
  });

  it("a step's waits are drawn from what the attempt is: the same on a replay, spread across branches", () => {
    const policy = { ...RETRY_DEFAULTS, backoff };
    expect(retryDelay(policy, 2, 't/r/root.1@0')).toBe(retryDelay(policy, 2, 't/r/root.1@0'));
    const waits = Array.from({ length: 50 }, (_, i) => retryDelay(policy, 2, `t/r/root.${i}@0`));
    for (const w of waits) expect(w >= 0 && w <= 200).toBe(true);
    expect(new Set(waits).size).toBeGreaterThan(20);
  });
});

describe('what the policy retries', () => {
  it('names each failure by its class', () => {
    expect(retryKindOf(new AgentTimeoutError('A', 'slow'))).toBe('timeout');
    expect(retryKindOf(new AgentTransportError('A', 'HTTP 503'))).toBe('transport');
    expect(retryKindOf(new AgentInvocationError('A', 'threw'))).toBe('error');
    expect(retryKindOf(new TypeError('bug'))).toBe('error');
    expect(retryKindOf(new InvalidAgentResponseError('bad'))).toBe('invalid');
  });

  it('turns the transport retries off only when it retries transport failures itself', () => {
    expect(transportRetries(agentRetryPolicy({ retry: {} }))).toBe(0);
    expect(transportRetries(agentRetryPolicy({ retry: { on: ['error', 'timeout'] } }))).toBeUndefined();
    expect(transportRetries(undefined)).toBeUndefined();
  });
});

/** Fails the first `failures` attempts of each step with `error`, records what each attempt was given. */
function flaky(failures: number, error: (attempt: number) => Error): { invoker: AgentInvoker; calls: { attempt?: number; retries?: unknown }[] } {
  const script = new KindRouter({ script: new ScriptInvoker() });
  const calls: { attempt?: number; retries?: unknown }[] = [];
  return {
    calls,
    invoker: {
      invoke: async (call) => {
        calls.push({ attempt: call.retryAttempt, retries: 'retries' in call.definition ? call.definition.retries : undefined });
        if ((call.retryAttempt ?? 1) <= failures) throw error(call.retryAttempt ?? 1);
        return script.invoke(call);
      },
    },
  };
}

const run = (agent: Partial<ScriptAgentDefinition>) => ({
  name: 'flaky',
  request: 'x',
  entry: 'A',
  agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'ok' }], ...agent } } satisfies AgentRegistry,
});
const fast = { backoff: { initialMs: 1, maxMs: 5 } };

describe("the step's retry loop (in-memory ports)", () => {
  it('retries a failing agent call: the run succeeds, each retried attempt is in the trace and counted', async () => {
    const { invoker, calls } = flaky(2, (n) => new AgentInvocationError('A', `boom ${n}`));
    const h = createMemoryHarness({ invoker });
    try {
      const outcome = await h.run(run({ retry: { attempts: 3, ...fast } }));
      expect(outcome.run.status).toBe('COMPLETED');
      expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
      const retried = outcome.events.filter((e) => e.type === 'AgentRetryScheduled');
      expect(retried.map((e) => e.detail)).toEqual([1, 2].map((attempt) => ({
        agent: 'A', step: 0, attempt, attempts: 3, delayMs: expect.any(Number), kind: 'error', error: `AgentInvocationError: boom ${attempt}`,
      })));
      expect(new Set(retried.map((e) => e.eventId)).size).toBe(2);
      expect(outcome.branches[0]).toMatchObject({ status: 'COMPLETED', stepCount: 1, agentRetries: 2 });
      expect(computeMetrics(outcome.branches).retries).toBe(2);
    } finally {
      h.stop();
    }
  });

  it('gives up after the last attempt with its error; without a policy the first failure fails the branch', async () => {
    for (const [agent, attempts] of [[{ retry: { attempts: 2, ...fast } }, 2], [{}, 1]] as const) {
      const { invoker, calls } = flaky(5, (n) => new AgentInvocationError('A', `boom ${n}`));
      const h = createMemoryHarness({ invoker });
      try {
        const outcome = await h.run(run(agent));
        expect(outcome.run.status).toBe('FAILED');
        expect(outcome.branches[0].error).toBe(`agent A failed: boom ${attempts}`);
        expect(calls).toHaveLength(attempts);
        expect(outcome.events.filter((e) => e.type === 'AgentRetryScheduled')).toHaveLength(attempts - 1);
        expect(computeMetrics(outcome.branches).retries).toBe(attempts - 1);
      } finally {
        h.stop();
      }
    }
  });

  it('retries only the kinds it names; a transient error is the delivery retry, not the policy', async () => {
    const cases: [Error, RetryKind[], number][] = [
      [new AgentTimeoutError('A', 'slow'), ['error'], 1],
      [new AgentTimeoutError('A', 'slow'), ['timeout'], 2],
      [new AgentTransportError('A', 'HTTP 503'), ['error', 'timeout'], 1],
      [new AgentTransportError('A', 'HTTP 503'), ['transport'], 2],
    ];
    for (const [error, on, expected] of cases) {
      const { invoker, calls } = flaky(1, () => error);
      const h = createMemoryHarness({ invoker });
      try {
        const outcome = await h.run(run({ retry: { attempts: 2, on, ...fast } }));
        expect(calls, `${error.name} with on: ${on.join(',')}`).toHaveLength(expected);
        expect(outcome.run.status).toBe(expected === 2 ? 'COMPLETED' : 'FAILED');
      } finally {
        h.stop();
      }
    }
    // Throttled twice: the step comes back twice (BranchRetryScheduled), each time at attempt 1 of the policy.
    const { invoker, calls } = flaky(0, () => new Error('unused'));
    const h = createMemoryHarness({ invoker });
    try {
      const outcome = await h.run(run({ responses: [{ $transientFailures: 2, next_action: 'final_response', content: 'ok' }], retry: { attempts: 3, ...fast } }));
      expect(outcome.run.status).toBe('COMPLETED');
      expect(calls.map((c) => c.attempt)).toEqual([1, 1, 1]);
      expect(outcome.events.filter((e) => e.type === 'AgentRetryScheduled')).toHaveLength(0);
      expect(outcome.branches[0].agentRetries).toBeUndefined();
    } finally {
      h.stop();
    }
  });

  it('calls with the transport retries off when it retries transport failures, and leaves them otherwise', async () => {
    const cases: [AgentDefinition, number | undefined][] = [
      [{ kind: 'http', url: 'http://127.0.0.1:9/a', retry: { attempts: 2 } }, 0],
      [{ kind: 'http', url: 'http://127.0.0.1:9/a', retry: { attempts: 2, on: ['error'] } }, undefined],
      // A script agent has no transport of its own: nothing to turn off.
      [{ kind: 'script', responses: ['x'], retry: { attempts: 2 } }, undefined],
    ];
    for (const [A, expected] of cases) {
      const calls: { retries?: number }[] = [];
      const invoker: AgentInvoker = {
        invoke: async (call) => {
          calls.push({ retries: 'retries' in call.definition ? call.definition.retries : undefined });
          return { response: { next_action: 'final_response', content: 'ok' } };
        },
      };
      const h = createMemoryHarness({ invoker });
      try {
        await h.run({ name: 'transport', request: 'x', entry: 'A', agents: { A } });
        expect(calls[0].retries, A.kind).toBe(expected);
      } finally {
        h.stop();
      }
    }
  });

  it('an invalid reply is re-asked with the error (maxInvalidResponses) unless the policy names invalid: then it is called again as it was', async () => {
    const responses = [{ $raw: 'not json' }, { next_action: 'final_response', content: 'ok' }];
    const plain = createMemoryHarness();
    try {
      const outcome = await plain.run(run({ responses, retry: { attempts: 3, ...fast } }));
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches[0]).toMatchObject({ stepCount: 2, invalidCount: 1 });
    } finally {
      plain.stop();
    }
    // The script answers by step, so a retried attempt answers the same: every attempt is invalid,
    // and the last one goes on to the re-ask as before.
    const invalid = createMemoryHarness();
    try {
      const outcome = await invalid.run(run({ responses, retry: { attempts: 3, on: ['invalid'], ...fast } }));
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches[0]).toMatchObject({ stepCount: 2, invalidCount: 1, agentRetries: 2 });
      expect(outcome.events.filter((e) => e.type === 'AgentRetryScheduled').map((e) => e.detail.kind)).toEqual(['invalid', 'invalid']);
    } finally {
      invalid.stop();
    }
  });

  it('does not start a wait past the agent call bound: the branch fails with the last error', async () => {
    const { invoker, calls } = flaky(5, () => new AgentInvocationError('A', 'boom'));
    const h = createMemoryHarness({ invoker });
    try {
      const outcome = await h.run({
        ...run({ retry: { attempts: 5, backoff: { initialMs: 20_000, maxMs: 20_000 }, jitter: 'none' } }),
        limits: { agentTimeoutSeconds: 10 },
      });
      expect(outcome.run.status).toBe('FAILED');
      expect(calls).toHaveLength(1);
      expect(outcome.branches[0].error).toBe('agent A failed: boom');
    } finally {
      h.stop();
    }
  });

  it('counts the tokens of the attempts that failed', async () => {
    const usage = { inputTokens: 10, outputTokens: 1 };
    const { invoker } = flaky(2, () => new AgentInvocationError('A', 'boom', { usage }));
    const h = createMemoryHarness({ invoker });
    try {
      const outcome = await h.run(run({ retry: { attempts: 3, ...fast } }));
      expect(outcome.branches[0].usage).toEqual({ inputTokens: 20, outputTokens: 2 });
    } finally {
      h.stop();
    }
  });
});

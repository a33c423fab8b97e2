import { describe, expect, it } from 'vitest';
import { LimitExceededError, TopologyViolationError } from '../../core/errors';
import { LIMIT_TABLE } from '../../core/limit-table';
import { checkSpawnLimits, LIMIT_CEILINGS, refusalInput, resolveLimits, TEAM_DEFAULT_MAXIMA } from '../../core/limits';
import { canTransition, DEFAULT_LIMITS, TERMINAL_STATUSES } from '../../core/model';
import { parseAgentResponse } from '../../core/protocol';
import { allowedTargets, checkTopology } from '../../core/topology';
import { InvalidAgentResponseError } from '../../core/errors';
import type { AgentRegistry } from '../../core/agent-kinds';

describe('limits', () => {
  it('refuses depth and fan-out past the limit, naming the limit', () => {
    expect(checkSpawnLimits(DEFAULT_LIMITS, 4, 3)).toBeUndefined();
    expect(checkSpawnLimits(DEFAULT_LIMITS, 5, 1)).toMatchObject({ limit: 'maxDepth', max: 5, requested: 6 });
    expect(checkSpawnLimits(DEFAULT_LIMITS, 0, 51)).toMatchObject({ limit: 'maxFanOut', max: 50, requested: 51 });
    const refusal = checkSpawnLimits({ ...DEFAULT_LIMITS, maxFanOut: 2 }, 0, 3)!;
    expect(refusalInput(refusal)).toMatchObject({ error: 'LimitExceeded', limit: 'maxFanOut', max: 2, requested: 3 });
  });

  it('resolves overrides within the stack maxima', () => {
    expect(resolveLimits({ maxDepth: 3 })).toEqual({ ...DEFAULT_LIMITS, maxDepth: 3 });
    expect(() => resolveLimits({ maxDepth: 0 })).toThrow(LimitExceededError);
    expect(() => resolveLimits({ maxDepth: 1.5 })).toThrow(/integer/);
    expect(() => resolveLimits({ maxBranches: 5000 }, { maxBranches: 2000 })).toThrow(/at most 2000/);
    expect(resolveLimits({ maxInvalidResponses: 0 }).maxInvalidResponses).toBe(0);
  });

  it('every row is consistent: min ≤ default ≤ team max ≤ ceiling, and says why', () => {
    for (const [name, row] of Object.entries(LIMIT_TABLE)) {
      expect(row.min <= row.default && row.default <= row.teamMax && row.teamMax <= row.ceiling, name).toBe(true);
      expect(row.why.length, name).toBeGreaterThan(20);
    }
    expect(LIMIT_CEILINGS).toMatchObject({
      maxStepsPerBranch: 1000,
      maxInvalidResponses: 10,
      branchTimeoutSeconds: 86_400,
      maxDepth: 100,
      maxFanOut: 10_000,
      maxBranches: 100_000,
    });
  });

  it('no override and no stack maximum passes a ceiling; a default above a stack maximum is lowered to it', () => {
    expect(() => resolveLimits({ maxStepsPerBranch: 1e9 })).toThrow(/limits\.maxStepsPerBranch is 1000000000; the ceiling for every run is 1000/);
    expect(() => resolveLimits({ maxStepsPerBranch: 1e9 }, { maxStepsPerBranch: 1e12 })).toThrow(/ceiling for every run is 1000/);
    try {
      resolveLimits({ branchTimeoutSeconds: 31_536_000 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(LimitExceededError);
      expect((error as LimitExceededError).field).toBe('limits.branchTimeoutSeconds');
    }
    expect(resolveLimits({}, { maxDepth: 3, maxFanOut: 20 })).toMatchObject({ maxDepth: 3, maxFanOut: 20, maxBranches: 1000 });
    expect(resolveLimits({ maxFanOut: 10_000 }).maxFanOut).toBe(10_000);
    expect(resolveLimits({}, TEAM_DEFAULT_MAXIMA)).toEqual(DEFAULT_LIMITS);
  });
});

describe('statuses', () => {
  it('a terminal branch never changes again', () => {
    for (const from of TERMINAL_STATUSES) {
      for (const to of ['PENDING', 'RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const) {
        expect(canTransition(from, to)).toBe(false);
      }
    }
    expect(canTransition('WAITING', 'RUNNING')).toBe(true);
    expect(canTransition('PENDING', 'WAITING')).toBe(false);
  });
});

describe('topology', () => {
  const agents: AgentRegistry = {
    Planner: { kind: 'script', allowed: ['Worker', 'Judge'] },
    Worker: { kind: 'script' },
    Judge: { kind: 'script' },
    Other: { kind: 'script' },
  };
  const branch = { agent: 'Planner', entryAgent: 'Planner', type: 'SIMPLE' as const };
  const ctx = { agents, aggregators: ['majority'], branch };
  const decide = (raw: unknown, agent = 'Planner') => parseAgentResponse(raw, { currentAgent: agent, currentInput: null });

  it('allows the allowed list and copies of itself', () => {
    checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker', 'Planner'], aggregator: 'agent:Judge' }), ctx);
    checkTopology(decide({ next_action: 'invoke_agent', action_input: 'Worker' }), ctx);
    checkTopology(decide({ next_actions: [['a', 'b']] }), ctx);
    checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker'], aggregator: 'majority' }), ctx);
  });

  it('refuses agents outside the topology and unregistered agents, naming the field', () => {
    expect(() => checkTopology(decide({ next_action: 'invoke_agent', action_input: 'Other' }), ctx)).toThrow(
      /Planner may not call "Other" \(allowed: Worker, Judge\)/,
    );
    expect(() => checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker', 'Ghost'] }), ctx)).toThrow(
      TopologyViolationError,
    );
    expect(() => checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker'], aggregator: 'nope' }), ctx)).toThrow(
      /aggregator "nope" is not registered/,
    );
    expect(() => checkTopology(decide({ next_action: 'invoke_agent', action_input: 'Planner' }, 'Worker'), { ...ctx, branch: { ...branch, agent: 'Worker' } })).toThrow(
      /Worker may not call "Planner" \(allowed: none\)/,
    );
  });

  it('complete_when "fn:<name>" must name a registered function: otherwise the answer is invalid, naming complete_when', () => {
    checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker'], complete_when: 'fn:majority' }), ctx);
    let caught: unknown;
    try {
      checkTopology(decide({ next_action: 'parallel_invoke', agents: ['Worker'], complete_when: 'fn:ghost' }), ctx);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidAgentResponseError);
    expect(caught).toMatchObject({ field: 'complete_when', message: 'complete_when "fn:ghost" names no registered function (known: fn:majority)' });
  });

  it('conversation branches may only hand off among their peers', () => {
    const conv = { ...ctx, branch: { agent: 'Worker', entryAgent: 'Worker', type: 'CONVERSATION' as const, peers: ['Judge'] } };
    expect(allowedTargets(conv)).toEqual(['Judge']);
    checkTopology(decide({ next_action: 'invoke_agent', action_input: 'Judge' }, 'Worker'), conv);
    expect(() => checkTopology(decide({ next_action: 'invoke_agent', action_input: 'Other' }, 'Worker'), conv)).toThrow(TopologyViolationError);
  });
});

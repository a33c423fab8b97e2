/**
 * Adversarial agents on the embedded engines: whatever an agent insists on, the limits bound the
 * run, it ends FAILED naming the limit (or COMPLETED when the agent accepts the refusal), and the
 * number of branches stays within the limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { MAX_VALUE_BYTES } from '../../core/input-bounds';
import type { ModuleAgentDefinition } from '../../core/agent-kinds';
import type { AgentInvoker } from '../../core/ports';
import { LocalRuntime } from '../../local/runtime';
import { scriptAgents } from '../support/memory-harness';
import { checkRunInvariants, outcomeOf, recordEvents } from './support';

/** A stand-in for module code that answers with a 500 KB string (or `bulky:<bytes>`), past what a scenario file may hold. */
const bulky: AgentInvoker<ModuleAgentDefinition> = {
  async invoke(call) {
    const size = Number(call.definition.module.split(':')[1] ?? 500_000);
    return { response: { next_action: 'final_response', content: 'x'.repeat(size) } };
  },
};

describe('adversarial agents', () => {
  let runtime: LocalRuntime;
  let events: LifecycleEvent[];
  beforeAll(async () => {
    runtime = await LocalRuntime.start({ invokers: { module: bulky } });
    events = recordEvents(runtime);
  });
  afterAll(async () => runtime?.close());

  async function run(input: Parameters<LocalRuntime['startRun']>[0]) {
    const runId = await runtime.startRun(input);
    const outcome = await outcomeOf(runtime, await runtime.waitForRun(runId), events);
    checkRunInvariants(outcome, input.name);
    expect(runtime.errors).toEqual([]);
    return outcome;
  }

  it('infinite self-recursion: bounded by maxDepth, FAILED naming it', async () => {
    const o = await run({
      name: 'self-recursion',
      request: 'think',
      entry: 'Looper',
      limits: { maxDepth: 3 },
      agents: scriptAgents({ Looper: { responses: [{ next_actions: [['deeper', 'deeper']] }] } }),
    });
    expect(o.run.status).toBe('FAILED');
    expect(o.run.error).toMatch(/first failure root(\.\d)+: LimitExceeded maxDepth: children would be at depth 4; maxDepth is 3$/);
    expect(o.branches).toHaveLength(1 + 2 + 4 + 8);
    expect(Math.max(...o.branches.map((b) => b.depth))).toBe(3);
  });

  it('maximal fan-out at every level, insisting: bounded by maxBranches, FAILED naming it', async () => {
    const greedy = { next_action: 'parallel_invoke', agents: Array(8).fill('Greedy') };
    const o = await run({
      name: 'greedy',
      request: 'all of it',
      entry: 'Greedy',
      limits: { maxFanOut: 8, maxDepth: 4, maxBranches: 40 },
      agents: scriptAgents({ Greedy: { responses: [greedy] } }),
    });
    expect(o.run.status).toBe('FAILED');
    expect(o.run.error).toMatch(/first failure root(\.\d)+: LimitExceeded maxBranches: the run has 33 branches; 8 more would pass the limit; maxBranches is 40$/);
    // 1 + 8, then three of the eight get their 8 (33); the fourth would make 41.
    expect(o.branches).toHaveLength(33);
  });

  it('maximal fan-out at every level, accepting the refusal: bounded, COMPLETED', async () => {
    const o = await run({
      name: 'greedy-but-polite',
      request: 'all of it',
      entry: 'Greedy',
      limits: { maxFanOut: 8, maxDepth: 4, maxBranches: 40 },
      agents: scriptAgents({
        Greedy: {
          responses: [{ next_action: 'parallel_invoke', agents: Array(8).fill('Greedy') }],
          rules: [
            { when: 'LimitExceeded', responses: [{ next_action: 'final_response', content: 'fine, I stop here' }] },
            { when: 'child_count', responses: [{ next_action: 'final_response', content: '$input' }] },
          ],
        },
      }),
    });
    expect(o.run.status).toBe('COMPLETED');
    expect(o.branches).toHaveLength(33);
    const refused = o.branches.filter((b) => b.result === 'fine, I stop here');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((b) => b.memory.some((m) => (m.content as { limit?: string } | null)?.limit === 'maxBranches'))).toBe(true);
  });

  it('a hand-off loop between two agents: bounded by maxStepsPerBranch, FAILED naming it', async () => {
    const o = await run({
      name: 'ping-pong',
      request: 'serve',
      entry: 'Ping',
      limits: { maxStepsPerBranch: 10 },
      agents: scriptAgents({
        Ping: { allowed: ['Pong'], responses: [{ next_action: 'invoke_agent', action_input: 'Pong' }] },
        Pong: { allowed: ['Ping'], responses: [{ next_action: 'invoke_agent', action_input: 'Ping' }] },
      }),
    });
    expect(o.run.status).toBe('FAILED');
    expect(o.run.error).toBe('LimitExceeded maxStepsPerBranch: the branch made 10 agent calls; maxStepsPerBranch is 10');
    expect(o.branches).toHaveLength(1);
  });

  it('a 500 KB result (past the 400 KB item limit) is kept apart: the branch and its parent complete with it whole', async () => {
    const alone = await run({ name: 'bulky-root', request: 'dump', entry: 'Dumper', agents: { Dumper: { kind: 'module', module: 'bulky' } } });
    expect(alone.run.status).toBe('COMPLETED');
    expect(alone.run.result).toBe('x'.repeat(500_000));

    const nested = await run({
      name: 'bulky-child',
      request: 'survey',
      entry: 'Lead',
      agents: {
        ...scriptAgents({
          Lead: {
            allowed: ['Dumper', 'Fine'],
            responses: [{ next_action: 'parallel_invoke', agents: ['Fine', 'Dumper', 'Fine'] }, { next_action: 'final_response', content: '$input' }],
          },
          Fine: { responses: [{ next_action: 'final_response', content: 'ok' }] },
        }),
        Dumper: { kind: 'module', module: 'bulky' },
      },
    });
    expect(nested.run.status).toBe('COMPLETED');
    const result = nested.run.result as { results: Record<string, unknown>; failures: Record<string, string> };
    expect(Object.keys(result.results)).toEqual(['root.0', 'root.1', 'root.2']);
    expect(result.results['root.1']).toBe('x'.repeat(500_000));
  });

  it('results that fit one by one but not together in one item: the parent gets the whole aggregate and completes', async () => {
    const o = await run({
      name: 'bulky-aggregate',
      request: 'collect',
      entry: 'Lead',
      agents: {
        ...scriptAgents({
          Lead: {
            allowed: ['Dumper'],
            responses: [{ next_action: 'parallel_invoke', agents: Array(5).fill('Dumper') }, { next_action: 'final_response', content: '$input' }],
          },
        }),
        Dumper: { kind: 'module', module: 'bulky:120000' },
      },
    });
    expect(o.run.status).toBe('COMPLETED');
    expect(Object.values((o.run.result as { results: Record<string, string> }).results).map((r) => r.length)).toEqual(Array(5).fill(120_000));
    expect(o.branches.filter((b) => b.status === 'COMPLETED')).toHaveLength(6);
  });

  it('a value past the ceiling of one stored value fails its branch naming the limit; the run ends', async () => {
    const o = await run({ name: 'huge-result', request: 'dump', entry: 'Dumper', agents: { Dumper: { kind: 'module', module: `bulky:${MAX_VALUE_BYTES + 1}` } } });
    expect(o.run.status).toBe('FAILED');
    expect(o.run.error).toMatch(/^the branch state would be too large to store: branch root (result|memory) is \d+ bytes; a value is limited to 64 MB$/);
  });
});

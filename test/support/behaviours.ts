/**
 * Every behaviour of the protocol, fan-in and limits as a run plus its expected outcome. The same table runs on
 * the in-memory ports (test/core) and on the embedded engines (test/local).
 */
import { expect } from 'vitest';
import type { AggregatorFn } from '../../core/aggregators';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { AgentRegistry, BranchRecord, FailurePolicy, Limits, RunRecord } from '../../core/model';
import { concat, primaryOrBothBackups } from './rehearsal-aggregators';
import type { ScriptAgentDefinition } from '../../core/agent-kinds';

export interface BehaviourRun {
  name: string;
  request: unknown;
  entry: string;
  agents: AgentRegistry;
  limits?: Partial<Limits>;
  failurePolicy?: Partial<FailurePolicy>;
}

export interface Outcome {
  run: RunRecord;
  branches: BranchRecord[];
  events: LifecycleEvent[];
}

export interface Behaviour {
  name: string;
  run: BehaviourRun;
  aggregators?: Record<string, AggregatorFn>;
  check(outcome: Outcome): void;
  /** Only fan-in free behaviours may skip the duplicate-delivery variant. */
  duplicates?: boolean;
}

const script = (responses: unknown[], extra: Omit<ScriptAgentDefinition, 'kind' | 'responses'> = {}): ScriptAgentDefinition => ({ kind: 'script', responses, ...extra });
const final = (content: unknown) => ({ next_action: 'final_response', content });
const byAgent = (o: Outcome, agent: string) => o.branches.filter((b) => b.agent === agent || b.entryAgent === agent);
/** The completion reasons the SyncPointReached events of a parent gave (one per telling). */
const reasonsOf = (o: Outcome, parentId = 'root') =>
  o.events.filter((e) => e.type === 'SyncPointReached').filter((e) => e.branchId === parentId).map((e) => e.detail.completion_reason);

/** How the root's fan-out counted each child in the aggregate it resumed with: `root.1 result q`, `root.2 failure TIMED_OUT`. */
const countedByEnd = (o: Outcome) => {
  const { results, failures } = o.run.result as { results: Record<string, unknown>; failures: Record<string, string> };
  return o.branches
    .filter((b) => b.parentId === 'root')
    .map((b) => (b.id in results ? `${b.id} result ${String(results[b.id])}` : `${b.id} failure ${/TIMED_OUT/.test(failures[b.id] ?? '') ? 'TIMED_OUT' : failures[b.id]}`));
};

/**
 * A fan-out settled early by `complete_when` (any or k): the aggregate names the winners, the
 * others end as `statuses` says (the losers CANCELLED), each branch ends in one event (a repeat
 * after a redelivery carries the first one's id), and each SyncPointReached counts what the
 * aggregate counts, with the completion reason the parent was given.
 */
function expectSettledEarly(o: Outcome, winners: Record<string, unknown>, statuses: Record<string, string>): void {
  expect(o.run.status).toBe('COMPLETED');
  const r = o.run.result as { child_count: number; results: Record<string, unknown>; failures: Record<string, string>; metadata: Record<string, unknown> };
  expect(r.results).toEqual(winners);
  expect(r.child_count).toBe(Object.keys(winners).length + Object.keys(r.failures).length);
  const children = o.branches.filter((b) => b.parentId === 'root');
  expect(Object.fromEntries(children.map((b) => [b.id, b.status]))).toEqual({ ...Object.fromEntries(Object.keys(winners).map((id) => [id, 'COMPLETED'])), ...statuses });
  const endIds = new Map<string, Set<string>>();
  for (const e of o.events.filter((e) => ['BranchCompleted', 'BranchFailed', 'BranchCancelled'].includes(e.type))) {
    endIds.set(`${e.branchId} ${e.type}`, (endIds.get(`${e.branchId} ${e.type}`) ?? new Set()).add(e.eventId));
  }
  const endOf = (status: string) => ({ COMPLETED: 'BranchCompleted', FAILED: 'BranchFailed', CANCELLED: 'BranchCancelled' })[status];
  expect([...endIds].map(([key, ids]) => `${key} ×${ids.size}`).sort(), 'one end event per branch').toEqual(o.branches.map((b) => `${b.id} ${endOf(b.status)} ×1`).sort());
  const reached = o.events.filter((e) => e.type === 'SyncPointReached').filter((e) => e.branchId === 'root');
  expect(reached.length).toBeGreaterThan(0);
  for (const e of reached) {
    const d = e.detail;
    expect(d.completion_reason).toBe('MIN_SUCCESSFUL_REACHED');
    expect({ succeeded: d.succeeded, failed: d.failed, cancelled: d.cancelled }, 'SyncPointReached counts as the aggregate').toEqual({
      succeeded: r.metadata.succeeded,
      failed: r.metadata.failed,
      cancelled: r.metadata.cancelled,
    });
    expect(Object.fromEntries(d.results.map((c) => [c.branchId, c.status]))).toEqual(Object.fromEntries(children.map((b) => [b.id, b.status])));
  }
}

/** Invariants every finished run must hold, whatever the scenario. */
export function checkInvariants(o: Outcome): void {
  expect(o.run.status).not.toBe('RUNNING');
  const active = o.branches.filter((b) => ['PENDING', 'RUNNING', 'WAITING'].includes(b.status));
  if (o.run.status === 'COMPLETED' || o.run.status === 'FAILED') {
    // Work cancelled by an early exit may still be ending, but nothing is left waiting forever.
    expect(active.filter((b) => b.status === 'WAITING').map((b) => b.id)).toEqual([]);
  }
  const ids = new Set(o.branches.map((b) => b.id));
  for (const b of o.branches) if (b.parentId) expect(ids.has(b.parentId), `orphan ${b.id}`).toBe(true);
  // Lifecycle events are at least once: a redelivered message may publish its event again.
  const created = new Set(o.events.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId));
  expect([...created].sort(), 'BranchCreated for every branch').toEqual(o.branches.map((b) => b.id).sort());
  const ends = new Set(o.events.filter(isRunEnd).map((e) => e.type));
  expect([...ends], 'one kind of run end').toHaveLength(1);
}

export const behaviours: Behaviour[] = [
  {
    name: 'hand-off chain (SIMPLE branch)',
    duplicates: true,
    run: {
      name: 'handoff',
      request: 'draft',
      entry: 'Writer',
      agents: {
        Writer: script([{ next_action: 'invoke_agent', action_input: { agent: 'Editor', input: 'draft v1' } }], { allowed: ['Editor'] }),
        Editor: script([{ next_action: 'invoke_agent', action_input: 'Validator' }], { allowed: ['Validator'] }),
        Validator: script([final({ validated: '$input' })]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.run.result).toEqual({ validated: 'draft v1' });
      expect(o.branches).toHaveLength(1);
      expect(o.branches[0]).toMatchObject({ type: 'SIMPLE', agent: 'Validator', stepCount: 3 });
    },
  },
  {
    name: 'simple parallel spawn of named agents',
    run: {
      name: 'simple-parallel',
      request: 'Analyze Q4 sales',
      entry: 'Planner',
      agents: {
        Planner: script(
          [
            {
              next_action: 'parallel_invoke',
              agents: ['DataFetcher', 'Calculator', 'Validator'],
              action_input: { DataFetcher: 'Q4', Calculator: { op: 'sum' }, Validator: 'rules' },
            },
            final('$input'),
          ],
          { allowed: ['DataFetcher', 'Calculator', 'Validator'] },
        ),
        DataFetcher: script([final({ rows: 42, for: '$input' })]),
        Calculator: script([final({ sum: 1234 })]),
        Validator: script([final('valid')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.run.result).toEqual({
        child_count: 3,
        results: { 'root.0': { rows: 42, for: 'Q4' }, 'root.1': { sum: 1234 }, 'root.2': 'valid' },
        failures: {},
        metadata: { aggregation_method: 'default', succeeded: 3, failed: 0, cancelled: 0, wait_for: 'all' },
      });
      const root = o.branches.find((b) => b.id === 'root')!;
      expect(root.type).toBe('NESTED');
      expect(o.events.filter((e) => e.type === 'SyncPointReached')).toHaveLength(1);
      expect(reasonsOf(o)).toEqual(['ALL_COMPLETED']);
    },
  },
  {
    name: 'hierarchical: team leads spawn workers',
    run: {
      name: 'hierarchical',
      request: 'build the report',
      entry: 'Director',
      agents: {
        Director: script(
          [
            { next_action: 'parallel_invoke', agents: ['TeamLead', 'TeamLead'], action_input: { TeamLead: 'section' }, metadata: { pattern: 'hierarchical' } },
            final({ report: '$input' }),
          ],
          { allowed: ['TeamLead'] },
        ),
        TeamLead: script(
          [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker', 'Worker'] }, final('$input')],
          { allowed: ['Worker'] },
        ),
        Worker: script([final('work done')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.branches).toHaveLength(1 + 2 + 6);
      const report = (o.run.result as any).report;
      expect(report.metadata).toMatchObject({ pattern: 'hierarchical', succeeded: 2 });
      expect(report.results['root.0'].results).toEqual({ 'root.0.0': 'work done', 'root.0.1': 'work done', 'root.0.2': 'work done' });
      expect(byAgent(o, 'Worker').every((b) => b.depth === 2 && b.status === 'COMPLETED')).toBe(true);
      expect(byAgent(o, 'TeamLead').every((b) => b.type === 'NESTED')).toBe(true);
    },
  },
  {
    name: 'dynamic workflow: the agent picks parallel experts or a hand-off',
    run: {
      name: 'dynamic',
      request: { tasks: ['complex: merge ledgers', 'simple: format'] },
      entry: 'Router',
      agents: {
        Router: script([final('no rule matched')], {
          allowed: ['Triage'],
          rules: [
            { when: 'child_count', responses: [final('$input')] },
            {
              when: 'tasks',
              responses: [
                {
                  next_action: 'parallel_invoke',
                  branches: [
                    { agent: 'Triage', input: 'complex: merge ledgers' },
                    { agent: 'Triage', input: 'simple: format' },
                  ],
                },
                final('$input'),
              ],
            },
          ],
        }),
        Triage: script([final('unused')], {
          allowed: ['Expert', 'SimpleProcessor'],
          rules: [
            { when: 'child_count', responses: [final({ experts: '$input' })] },
            {
              when: 'complex',
              responses: [{ next_action: 'parallel_invoke', agents: ['Expert', 'Expert', 'Expert'], wait_for_all: true }],
            },
            { when: 'simple', responses: [{ next_action: 'invoke_agent', action_input: 'SimpleProcessor' }] },
          ],
        }),
        Expert: script([final('expert view')]),
        SimpleProcessor: script([final('processed: $input')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const results = (o.run.result as any).results;
      expect(results['root.0'].experts.child_count).toBe(3);
      expect(results['root.1']).toBe('processed: $input'); // "$input" is replaced only as a whole string
      expect(byAgent(o, 'Expert')).toHaveLength(3);
      expect(o.branches.find((b) => b.id === 'root.1')!.agent).toBe('SimpleProcessor');
    },
  },
  {
    name: 'branched recursion: copies of the agent to depth 3',
    run: {
      name: 'recursion',
      request: 'task:R',
      entry: 'Thinker',
      agents: {
        Thinker: script([{ next_actions: [], content: 'no rule' }], {
          rules: [
            { when: 'child_count', responses: [{ next_actions: [], content: '$input' }] },
            { when: 'task:R', responses: [{ next_actions: [['level1:A', 'level1:B']] }] },
            { when: 'level1:', responses: [{ next_actions: [['level2:x', 'level2:y']] }] },
            { when: 'level2:', responses: [{ next_actions: [['leaf:L1', 'leaf:L2']] }] },
            { when: 'leaf:', responses: [{ next_actions: [], content: 'leaf $input' }] },
          ],
        }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.branches).toHaveLength(1 + 2 + 4 + 8);
      expect(Math.max(...o.branches.map((b) => b.depth))).toBe(3);
      expect(o.branches.every((b) => b.agent === 'Thinker' && b.status === 'COMPLETED')).toBe(true);
      const r = o.run.result as any;
      // Each level resumes with a list of one aggregate (one group of actions).
      expect(r).toHaveLength(1);
      expect(r[0].child_count).toBe(2);
      expect(r[0].results['root.0'][0].results['root.0.0'][0].results['root.0.0.1']).toBe('leaf $input');
    },
  },
  {
    name: 'next_actions groups run one after another, the agent resumes with all aggregates',
    run: {
      name: 'groups',
      request: 'start',
      entry: 'Solver',
      agents: {
        Solver: script([{ next_actions: [], content: 'leaf' }], {
          rules: [
            { when: 'child_count', responses: [{ next_actions: [], content: { groups: '$input' } }] },
            { when: 'start', responses: [{ next_actions: [['a1', 'a2'], ['b1']], inherit_memory: true }] },
          ],
        }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const groups = (o.run.result as any).groups;
      expect(groups).toHaveLength(2);
      expect(Object.keys(groups[0].results)).toEqual(['root.0', 'root.1']);
      expect(Object.keys(groups[1].results)).toEqual(['root.2']);
      const b2 = o.branches.find((b) => b.id === 'root.2')!;
      expect(b2.parentSeq).toBe(2);
      expect(b2.memory.some((m) => m.inherited)).toBe(true);
    },
  },
  {
    name: 'one next_actions group resumes the agent with a list of one aggregate, as several groups do',
    run: {
      name: 'one-group',
      request: 'start',
      entry: 'Solver',
      agents: {
        Solver: script([{ next_actions: [], content: 'leaf' }], {
          rules: [
            { when: 'child_count', responses: [{ next_actions: [], content: { groups: '$input' } }] },
            { when: 'start', responses: [{ next_actions: [['a1', 'a2']] }] },
          ],
        }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const groups = (o.run.result as any).groups;
      expect(Array.isArray(groups)).toBe(true);
      expect(groups).toHaveLength(1);
      expect(Object.keys(groups[0].results)).toEqual(['root.0', 'root.1']);
    },
  },
  {
    name: 'wait_for any resumes on the first success and cancels the rest',
    run: {
      name: 'any',
      request: 'race',
      entry: 'Boss',
      agents: {
        Boss: script([{ next_action: 'parallel_invoke', agents: ['Fast', 'Slow', 'Slow'], wait_for: 'any' }, final('$input')], {
          allowed: ['Fast', 'Slow'],
        }),
        Fast: script([final('fast')]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'slow' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const r = o.run.result as any;
      expect(r.results).toEqual({ 'root.0': 'fast' });
      expect(r.child_count).toBe(1);
      expect(byAgent(o, 'Slow').every((b) => b.status === 'CANCELLED')).toBe(true);
      // The slow children left out: the fan-out ended as soon as the successes it needed were in.
      expect(new Set(reasonsOf(o))).toEqual(new Set(['MIN_SUCCESSFUL_REACHED']));
    },
  },
  {
    name: 'wait_for k (quorum)',
    run: {
      name: 'quorum',
      request: 'vote',
      entry: 'Chair',
      agents: {
        Chair: script([{ next_action: 'parallel_invoke', agents: ['Voter', 'Voter', 'Slow'], wait_for: 2 }, final('$input')], {
          allowed: ['Voter', 'Slow'],
        }),
        Voter: script([final('yes')]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect((o.run.result as any).results).toEqual({ 'root.0': 'yes', 'root.1': 'yes' });
      expect(o.branches.find((b) => b.id === 'root.2')!.status).toBe('CANCELLED');
    },
  },
  {
    name: 'complete_when any: the first success ends the fan-out; the slow, the failing-late and the hung children are cancelled',
    run: {
      name: 'complete-when-any',
      request: 'race',
      entry: 'Boss',
      agents: {
        Boss: script([{ next_action: 'parallel_invoke', agents: ['Slow', 'Fast', 'SlowFail', 'Hung'], complete_when: 'any' }, final('$input')], {
          allowed: ['Slow', 'Fast', 'SlowFail', 'Hung'],
        }),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'slow' }]),
        Fast: script([final('fast')]),
        SlowFail: script([{ $delayMs: 60_000, $fail: 'late failure' }]),
        Hung: script([{ $hang: true, next_action: 'final_response', content: 'never' }]),
      },
    },
    check(o) {
      expectSettledEarly(o, { 'root.1': 'fast' }, { 'root.0': 'CANCELLED', 'root.2': 'CANCELLED', 'root.3': 'CANCELLED' });
      expect((o.run.result as any).metadata).toMatchObject({ succeeded: 1, failed: 0, cancelled: 3, wait_for: 'any' });
    },
  },
  {
    name: 'complete_when 2 of 4, one at a time: a tolerated failure, two successes, the last child cancelled unstarted; the parent told why',
    run: {
      name: 'complete-when-k',
      request: 'vote',
      entry: 'Chair',
      // Failures tolerated by none but this fan-out; one child at a time, so which child ends how does not depend on timing.
      failurePolicy: { maxFailedFraction: 0 },
      agents: {
        Chair: script(
          [
            { next_action: 'parallel_invoke', agents: ['Bad', 'Fast', 'Medium', 'Slow'], complete_when: 2, max_concurrency: 1, tolerated_failures: 1, on_failure: 'continue' },
            final('$input'),
          ],
          { allowed: ['Bad', 'Fast', 'Medium', 'Slow'] },
        ),
        Bad: script([{ $fail: 'nope' }]),
        Fast: script([final('yes')]),
        Medium: script([{ $delayMs: 50, next_action: 'final_response', content: 'also yes' }]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
      },
    },
    check(o) {
      expectSettledEarly(o, { 'root.1': 'yes', 'root.2': 'also yes' }, { 'root.0': 'FAILED', 'root.3': 'CANCELLED' });
      const r = o.run.result as any;
      expect(r.metadata).toMatchObject({ succeeded: 2, failed: 1, cancelled: 1, wait_for: 2 });
      expect(Object.keys(r.failures)).toEqual(['root.0']);
      // on_failure continue: the aggregate says why the fan-out ended and how each child did.
      expect(r.completion_reason).toBe('MIN_SUCCESSFUL_REACHED');
      expect(r.children).toEqual({
        'root.0': { agent: 'Bad', status: 'FAILED', error: expect.stringMatching(/nope/) },
        'root.1': { agent: 'Fast', status: 'COMPLETED' },
        'root.2': { agent: 'Medium', status: 'COMPLETED' },
        'root.3': { agent: 'Slow', status: 'CANCELLED', error: expect.any(String) },
      });
      expect(o.branches.find((b) => b.id === 'root.3')).toMatchObject({ status: 'CANCELLED', stepCount: 0 });
    },
  },
  {
    name: 'complete_when 2 of 4, two at a time: max_concurrency is a pool, a slow child holds only its place, the two fast children win and the slow one is cancelled',
    run: {
      name: 'concurrency-pool',
      request: 'vote',
      entry: 'Chair',
      failurePolicy: { maxFailedFraction: 0 },
      agents: {
        Chair: script(
          [
            { next_action: 'parallel_invoke', agents: ['Bad', 'Slow', 'Fast', 'Fast'], complete_when: 2, max_concurrency: 2, tolerated_failures: 1, on_failure: 'continue' },
            final('$input'),
          ],
          { allowed: ['Bad', 'Slow', 'Fast'] },
        ),
        Bad: script([{ $fail: 'nope' }]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
        Fast: script([final('yes')]),
      },
    },
    check(o) {
      // Bad's end starts the first Fast, that one's end the second, while Slow still runs (in
      // lanes the second Fast would wait behind Slow, and Slow would be the second winner).
      expectSettledEarly(o, { 'root.2': 'yes', 'root.3': 'yes' }, { 'root.0': 'FAILED', 'root.1': 'CANCELLED' });
      expect((o.run.result as any).metadata).toMatchObject({ succeeded: 2, failed: 1, cancelled: 1, wait_for: 2 });
    },
  },
  {
    name: 'weighted_average aggregator',
    run: {
      name: 'weighted',
      request: 'estimate',
      entry: 'Estimator',
      agents: {
        Estimator: script([{ next_action: 'parallel_invoke', agents: ['A', 'B'], aggregator: 'weighted_average' }, final('$input')], {
          allowed: ['A', 'B'],
        }),
        A: script([final({ value: 10, weight: 3 })]),
        B: script([final({ value: 2 })]),
      },
    },
    check(o) {
      expect(o.run.result).toEqual({ weighted_average: 8, total_weight: 4 });
    },
  },
  {
    name: 'registered aggregator',
    // The same function the rehearsal bundles as the team's registered aggregators.
    aggregators: { concat },
    run: {
      name: 'registered',
      request: 'x',
      entry: 'P',
      agents: {
        P: script([{ next_action: 'parallel_invoke', agents: ['A', 'A'], action_input: { A: 'a' }, aggregator: 'concat' }, final('$input')], {
          allowed: ['A'],
        }),
        A: script([final('$input')]),
      },
    },
    check(o) {
      expect(o.run.result).toBe('a+a');
    },
  },
  {
    name: 'agent:<Name> aggregator runs as an AGGREGATION branch',
    run: {
      name: 'agent-aggregator',
      request: 'opinions',
      entry: 'Host',
      agents: {
        Host: script([{ next_action: 'parallel_invoke', agents: ['Critic', 'Critic'], aggregator: 'agent:Judge' }, final({ verdict: '$input' })], {
          allowed: ['Critic', 'Judge'],
        }),
        Critic: script([final('meh')]),
        Judge: script([final({ judged: '$input' })]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const judge = o.branches.find((b) => b.agent === 'Judge')!;
      expect(judge).toMatchObject({ type: 'AGGREGATION', parentId: 'root', status: 'COMPLETED' });
      const verdict = (o.run.result as any).verdict;
      expect(verdict.judged.child_count).toBe(2);
      expect(verdict.judged.results).toEqual({ 'root.0': 'meh', 'root.1': 'meh' });
    },
  },
  {
    name: 'a failing agent:<Name> aggregator fails the parent saying the aggregator failed',
    run: {
      name: 'agent-aggregator-fails',
      request: 'opinions',
      entry: 'Host',
      agents: {
        Host: script([{ next_action: 'parallel_invoke', agents: ['Critic', 'Critic'], aggregator: 'agent:Judge' }, final('unreachable')], {
          allowed: ['Critic', 'Judge'],
        }),
        Critic: script([final('meh')]),
        Judge: script([{ $fail: 'no verdict' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/^the aggregator agent:Judge failed — first failure root\.2: agent Judge failed: .*no verdict/);
      expect(o.run.error).not.toMatch(/children failed/);
    },
  },
  {
    name: 'conversation branch: peers alternate until final_response',
    run: {
      name: 'conversation',
      request: 'negotiate',
      entry: 'Host',
      agents: {
        Host: script(
          [{ next_action: 'parallel_invoke', branches: [{ agent: 'Buyer', input: 'offer 10', type: 'conversation', peers: ['Seller'], max_turns: 10 }] }, final('$input')],
          { allowed: ['Buyer', 'Seller'] },
        ),
        Buyer: script([
          { next_action: 'invoke_agent', action_input: { agent: 'Seller', input: 'offer 12' } },
          { next_action: 'invoke_agent', action_input: { agent: 'Seller', input: 'offer 14' } },
        ]),
        Seller: script([
          { next_action: 'invoke_agent', action_input: { agent: 'Buyer', input: 'counter 20' } },
          final('deal at $input'),
        ]),
      },
    },
    check(o) {
      const conv = o.branches.find((b) => b.id === 'root.0')!;
      expect(conv).toMatchObject({ type: 'CONVERSATION', status: 'COMPLETED', stepCount: 4, result: 'deal at $input' });
      expect(conv.memory.filter((m) => m.role === 'assistant').map((m) => m.agent)).toEqual(['Buyer', 'Seller', 'Buyer', 'Seller']);
    },
  },
  {
    name: 'conversation branch ends at max_turns',
    run: {
      name: 'conversation-max',
      request: 'chat',
      entry: 'Host',
      agents: {
        Host: script(
          [{ next_action: 'parallel_invoke', branches: [{ agent: 'Ping', input: 'hi', type: 'conversation', peers: ['Pong'], max_turns: 3 }] }, final('$input')],
          { allowed: ['Ping', 'Pong'] },
        ),
        Ping: script([{ next_action: 'invoke_agent', action_input: { agent: 'Pong', input: 'ping' } }]),
        Pong: script([{ next_action: 'invoke_agent', action_input: { agent: 'Ping', input: 'pong' } }]),
      },
    },
    check(o) {
      const conv = o.branches.find((b) => b.id === 'root.0')!;
      expect(conv.status).toBe('COMPLETED');
      expect(conv.result).toEqual({ max_turns_reached: true, turns: 3, last_message: 'ping' });
    },
  },
  {
    name: 'failure policy: the parent fails as soon as the threshold is crossed; running siblings cancelled',
    run: {
      name: 'failures',
      request: 'go',
      entry: 'Lead',
      failurePolicy: { maxFailedFraction: 0.5 },
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Bad', 'Bad', 'Bad', 'Slow'] }, final('$input')], { allowed: ['Bad', 'Slow'] }),
        Bad: script([{ $fail: 'disk on fire' }]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/3 of 4 children failed/);
      expect(o.branches.find((b) => b.id === 'root.3')!.status).toBe('CANCELLED');
      expect(byAgent(o, 'Bad').every((b) => b.status === 'FAILED' && /disk on fire/.test(b.error!))).toBe(true);
      expect(new Set(reasonsOf(o))).toEqual(new Set(['FAILURE_TOLERANCE_EXCEEDED']));
    },
  },
  {
    name: 'failures under the threshold: the parent resumes with successes and a failures map',
    run: {
      name: 'tolerated',
      request: 'go',
      entry: 'Lead',
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Good', 'Good', 'Bad'] }, final('$input')], { allowed: ['Good', 'Bad'] }),
        Good: script([final('ok')]),
        Bad: script([{ $fail: 'nope' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const r = o.run.result as any;
      expect(r.results).toEqual({ 'root.0': 'ok', 'root.1': 'ok' });
      expect(r.failures['root.2']).toMatch(/nope/);
    },
  },
  {
    name: 'per-fan-out tolerance with on_failure continue: past it the parent decides, told why and how each child did',
    run: {
      name: 'continue',
      request: 'go',
      entry: 'Lead',
      agents: {
        // One child at a time (max_concurrency 1): the second failure is past the one tolerated
        // while the last child has not started, so it is left out, whatever the tier's timing.
        Lead: script(
          [
            { next_action: 'parallel_invoke', agents: ['Good', 'Bad', 'Good', 'Bad', 'Good'], max_concurrency: 1, tolerated_failures: 1, on_failure: 'continue' },
            final('$input'),
          ],
          { allowed: ['Good', 'Bad'] },
        ),
        Good: script([final('ok')]),
        Bad: script([{ $fail: 'nope' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const r = o.run.result as any;
      expect(r.completion_reason).toBe('FAILURE_TOLERANCE_EXCEEDED');
      // The event says what the parent was given.
      expect(new Set(reasonsOf(o))).toEqual(new Set([r.completion_reason]));
      expect(r.results).toEqual({ 'root.0': 'ok', 'root.2': 'ok' });
      expect(Object.keys(r.failures)).toEqual(['root.1', 'root.3']);
      expect(r.children).toEqual({
        'root.0': { agent: 'Good', status: 'COMPLETED' },
        'root.1': { agent: 'Bad', status: 'FAILED', error: expect.stringMatching(/nope/) },
        'root.2': { agent: 'Good', status: 'COMPLETED' },
        'root.3': { agent: 'Bad', status: 'FAILED', error: expect.stringMatching(/nope/) },
        'root.4': { agent: 'Good', status: 'CANCELLED', error: expect.any(String) },
      });
      expect(o.branches.find((b) => b.id === 'root.4')).toMatchObject({ status: 'CANCELLED', stepCount: 0 });
    },
  },
  {
    name: 'tolerated_failures 0 fails the parent on the first failure, though the run tolerates half',
    run: {
      name: 'no-tolerance',
      request: 'go',
      entry: 'Lead',
      failurePolicy: { maxFailedFraction: 0.5 },
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Good', 'Bad', 'Slow'], tolerated_failures: 0 }, final('$input')], {
          allowed: ['Good', 'Bad', 'Slow'],
        }),
        Good: script([final('ok')]),
        Bad: script([{ $fail: 'nope' }]),
        Slow: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/1 of 3 children failed \(more than the 0 tolerated\)/);
      expect(o.branches.find((b) => b.id === 'root.2')!.status).toBe('CANCELLED');
    },
  },
  {
    name: 'tolerated_failures as a fraction: 0.25 lets 1 of 4 children fail, though the run tolerates none',
    run: {
      name: 'tolerated-fraction',
      request: 'go',
      entry: 'Lead',
      failurePolicy: { maxFailedFraction: 0 },
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Good', 'Bad', 'Good', 'Good'], tolerated_failures: 0.25 }, final('$input')], { allowed: ['Good', 'Bad'] }),
        Good: script([final('ok')]),
        Bad: script([{ $fail: 'nope' }]),
      },
    },
    check(o) {
      // Every child ends whatever the timing: one failure in four is never more than 25 %.
      expect(o.run.status).toBe('COMPLETED');
      const r = o.run.result as any;
      expect(r.results).toEqual({ 'root.0': 'ok', 'root.2': 'ok', 'root.3': 'ok' });
      expect(Object.keys(r.failures)).toEqual(['root.1']);
      expect(r.failures['root.1']).toMatch(/nope/);
    },
  },
  {
    name: "an agent's retry policy: a child whose first two attempts fail is called again within its step and completes",
    run: {
      name: 'agent-retry',
      request: 'go',
      entry: 'Lead',
      // Without the policy the first failure would fail the run.
      failurePolicy: { maxFailedFraction: 0 },
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Flaky', 'Steady'] }, final('$input')], { allowed: ['Flaky', 'Steady'] }),
        Flaky: script([{ $failures: 2, next_action: 'final_response', content: 'third time' }], { retry: { attempts: 3, backoff: { initialMs: 10, maxMs: 20 } } }),
        Steady: script([final('steady')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect((o.run.result as any).results).toEqual({ 'root.0': 'third time', 'root.1': 'steady' });
      // Each failed attempt is in the trace (a step delivered again retries again: attempts, not events, are counted).
      const retried = o.events.filter((e) => e.type === 'AgentRetryScheduled');
      expect(new Set(retried.map((e) => `${e.branchId} ${String(e.detail.attempt)}/${String(e.detail.attempts)} ${String(e.detail.kind)}`))).toEqual(new Set(['root.0 1/3 error', 'root.0 2/3 error']));
      expect(o.branches.find((b) => b.id === 'root.0')).toMatchObject({ status: 'COMPLETED', stepCount: 1, agentRetries: 2 });
    },
  },
  {
    name: 'complete_when "fn:<name>": a registered completion function ends the fan-out early',
    aggregators: { primaryOrBothBackups },
    run: {
      name: 'completion-fn',
      request: 'go',
      entry: 'Lead',
      agents: {
        Lead: script([{ next_action: 'parallel_invoke', agents: ['Primary', 'Backup', 'Backup'], complete_when: 'fn:primaryOrBothBackups' }, final('$input')], {
          allowed: ['Primary', 'Backup'],
        }),
        Primary: script([final('first')]),
        Backup: script([{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect((o.run.result as any).results).toEqual({ 'root.0': 'first' });
      expect(o.branches.filter((b) => b.agent === 'Backup').map((b) => b.status)).toEqual(['CANCELLED', 'CANCELLED']);
    },
  },
  {
    name: 'maxDepth: the refusal is given to the agent once, then the branch fails',
    run: {
      name: 'depth',
      request: 'dig',
      entry: 'Digger',
      limits: { maxDepth: 2 },
      agents: {
        Digger: script([{ next_actions: [['deeper', 'deeper']] }], {
          rules: [
            { when: 'LimitExceeded', responses: [final('$input')] },
            { when: 'child_count', responses: [final('$input')] },
          ],
        }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const leaves = o.branches.filter((b) => b.depth === 2);
      expect(leaves).toHaveLength(4);
      expect(leaves[0].result).toMatchObject({ error: 'LimitExceeded', limit: 'maxDepth', max: 2 });
    },
  },
  {
    name: 'a second refusal in the same branch fails it, naming the limit',
    run: {
      name: 'fanout-limit',
      request: 'many',
      entry: 'Greedy',
      limits: { maxFanOut: 2 },
      agents: {
        Greedy: script([{ next_action: 'parallel_invoke', agents: ['W', 'W', 'W'] }], { allowed: ['W'] }),
        W: script([final('w')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/LimitExceeded maxFanOut/);
      const root = o.branches[0];
      expect(root.memory[2].content).toMatchObject({ error: 'LimitExceeded', limit: 'maxFanOut', max: 2, requested: 3 });
    },
  },
  {
    name: 'maxBranches bounds self-recursion',
    run: {
      name: 'branches-limit',
      request: 'grow',
      entry: 'Cell',
      limits: { maxBranches: 7, maxDepth: 10 },
      agents: {
        Cell: script([{ next_actions: [['grow', 'grow']] }], {
          rules: [
            { when: 'LimitExceeded', responses: [final('stopped')] },
            { when: 'child_count', responses: [final('$input')] },
          ],
        }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.branches.length).toBeLessThanOrEqual(7);
      expect(o.branches.some((b) => b.result === 'stopped')).toBe(true);
    },
  },
  {
    name: 'maxStepsPerBranch stops a hand-off loop',
    run: {
      name: 'loop',
      request: 'ping',
      entry: 'A',
      limits: { maxStepsPerBranch: 5 },
      agents: {
        A: script([{ next_action: 'invoke_agent', action_input: 'B' }], { allowed: ['B'] }),
        B: script([{ next_action: 'invoke_agent', action_input: 'A' }], { allowed: ['A'] }),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/maxStepsPerBranch/);
      expect(o.branches[0].stepCount).toBe(5);
    },
  },
  {
    name: 'invalid responses are re-asked with the error, then the branch fails',
    run: {
      name: 'invalid',
      request: 'x',
      entry: 'Confused',
      agents: {
        Confused: script([{ $raw: 'I think we should...' }, { next_action: 'teleport' }, { next_action: 'final_response', content: '$input' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.run.result).toMatchObject({ error: 'InvalidAgentResponse', field: 'next_action' });
    },
  },
  {
    name: 'an agent that keeps answering invalidly fails its branch with the reason',
    run: {
      name: 'invalid-fail',
      request: 'x',
      entry: 'Boss',
      agents: {
        Boss: script([{ next_action: 'invoke_agent', action_input: 'Ghost' }], { allowed: [] }),
        Ghost: script([final('boo')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/InvalidAgentResponse after 3 tries: Boss may not call "Ghost"/);
    },
  },
  {
    name: 'a child past branchTimeoutSeconds is TIMED_OUT and counted as failed',
    run: {
      name: 'timeout',
      request: 'x',
      entry: 'P',
      limits: { branchTimeoutSeconds: 1 },
      // A child's timeout counts its time in the queue, as in AWS: on a starved machine a Quick
      // child may miss its 1 s too. Every failure tolerated, the parent resumes either way.
      failurePolicy: { maxFailedFraction: 1 },
      agents: {
        P: script([{ next_action: 'parallel_invoke', agents: ['Quick', 'Quick', 'Stuck'] }, final('$input')], { allowed: ['Quick', 'Stuck'] }),
        Quick: script([final('q')]),
        // Never answers: a delay past the branch timeout is refused when a request is read (the API, the trigger).
        Stuck: script([{ $hang: true, next_action: 'final_response', content: 'never' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect(o.branches.find((b) => b.id === 'root.2')!.status).toBe('TIMED_OUT');
      // Each child counted by how it ended: a timed-out one among the failures, never the results.
      expect(countedByEnd(o)).toEqual(o.branches.filter((b) => b.parentId === 'root').map((b) => `${b.id} ${b.status === 'TIMED_OUT' ? 'failure TIMED_OUT' : 'result q'}`));
    },
  },
  {
    name: 'one child at a time: a hung child is TIMED_OUT at its own timeout, and the children after it still run',
    run: {
      name: 'timeout-one-at-a-time',
      request: 'x',
      entry: 'P',
      // 5 s: the batch's safety net (4 timeouts here) leaves 15 s after the hung child for the
      // others to start, on the rehearsal's cold containers and on a starved machine alike.
      limits: { branchTimeoutSeconds: 5, maxConcurrentBranches: 1 },
      // A Quick child may still miss its own timeout on a starved machine (it counts queue time).
      failurePolicy: { maxFailedFraction: 1 },
      agents: {
        P: script([{ next_action: 'parallel_invoke', agents: ['Stuck', 'Quick', 'Quick'] }, final('$input')], { allowed: ['Quick', 'Stuck'] }),
        Quick: script([final('q')]),
        Stuck: script([{ $hang: true, next_action: 'final_response', content: 'never' }]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const children = o.branches.filter((b) => b.parentId === 'root');
      expect(children.find((b) => b.id === 'root.0')!.status).toBe('TIMED_OUT');
      // The children after the hung one ran: each started its step (not timed out unstarted with
      // the batch), and was counted by how it ended.
      expect(children.filter((b) => b.id !== 'root.0' && b.startedAt !== undefined).map((b) => b.id)).toEqual(['root.1', 'root.2']);
      expect(countedByEnd(o)).toEqual(children.map((b) => `${b.id} ${b.status === 'TIMED_OUT' ? 'failure TIMED_OUT' : 'result q'}`));
    },
  },
  {
    name: 'a durable wait: the branch sleeps without a worker, then its agent goes on',
    duplicates: true,
    run: {
      name: 'wait',
      request: 'x',
      entry: 'Sleeper',
      agents: { Sleeper: script([{ next_action: 'wait', seconds: 1 }, final('$input')]) },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      const waiting = o.events.find((e) => e.type === 'BranchWaiting')!;
      expect(waiting.detail).toMatchObject({ agent: 'Sleeper', step: 1, seconds: 1 });
      const until = waiting.detail.until;
      // Without an input of its own, the agent is told its wait is over.
      expect(o.run.result).toEqual({ wait_over: { since: new Date(waiting.detail.since).toISOString(), until: new Date(until).toISOString() } });
      const resumed = o.events.filter((e) => e.type === 'BranchResumed');
      expect(resumed.length).toBeGreaterThanOrEqual(1);
      // Never woken before its time: the wake-up checks the record's `until`.
      for (const e of resumed) expect(e.time).toBeGreaterThanOrEqual(until);
      expect(o.branches[0]).toMatchObject({ status: 'COMPLETED', stepCount: 2, suspended: null });
    },
  },
  {
    name: 'children wait inside a fan-out (until a time, and with an input) and the parent resumes with their results',
    duplicates: true,
    run: {
      name: 'wait-in-fan-out',
      request: 'x',
      entry: 'P',
      agents: {
        P: script([{ next_action: 'parallel_invoke', agents: ['Napper', 'Quick'] }, final('$input')], { allowed: ['Napper', 'Quick'] }),
        Napper: script([{ next_action: 'wait', seconds: 1, input: 'rested' }, final('$input')]),
        Quick: script([{ next_action: 'wait', until: '2000-01-01T00:00:00Z' }, final('quick')]),
      },
    },
    check(o) {
      expect(o.run.status).toBe('COMPLETED');
      expect((o.run.result as any).results).toEqual({ 'root.0': 'rested', 'root.1': 'quick' });
      expect(o.events.filter((e) => e.type === 'BranchWaiting').map((e) => e.branchId).sort()).toEqual(expect.arrayContaining(['root.0', 'root.1']));
    },
  },
  {
    name: 'a callback nobody answers times out: its branch FAILS with CallbackTimeout, checked by a delayed wake-up',
    duplicates: true,
    run: {
      name: 'callback-timeout',
      request: 'x',
      entry: 'Approver',
      agents: { Approver: script([{ next_action: 'wait_for_callback', timeout_seconds: 1, message: { approve: 'deploy?' } }, final('$input')]) },
    },
    check(o) {
      expect(o.run.status).toBe('FAILED');
      expect(o.run.error).toMatch(/^CallbackTimeout: no answer to the callback within its 1 s timeout \(at \d{4}-/);
      const asked = o.events.find((e) => e.type === 'BranchWaitingForCallback')!;
      expect(asked.detail).toMatchObject({ agent: 'Approver', step: 1, message: { approve: 'deploy?' }, token: expect.stringMatching(/^root~1~[0-9a-f]{32}$/) });
      // The record keeps the callback it failed on: a late answer is told it timed out.
      expect(o.branches[0]).toMatchObject({ status: 'FAILED', stepCount: 1, suspended: { kind: 'callback', token: asked.detail.token } });
      expect(o.events.some((e) => e.type === 'BranchResumed')).toBe(false);
    },
  },
];

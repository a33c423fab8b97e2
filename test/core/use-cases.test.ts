import { describe, expect, it } from 'vitest';
import { cancelRun } from '../../core/use-cases';
import { WorkMark } from '../../core/work-mark';
import { behaviours, checkInvariants } from '../support/behaviours';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

describe.each([
  { delivery: 'single delivery', duplicate: false },
  { delivery: 'every message delivered twice', duplicate: true },
])('use cases on the in-memory ports ($delivery)', ({ duplicate }) => {
  for (const behaviour of behaviours) {
    it(behaviour.name, async () => {
      const h = createMemoryHarness({ duplicate, aggregators: behaviour.aggregators });
      try {
        const outcome = await h.run(behaviour.run);
        behaviour.check(outcome);
        checkInvariants(outcome);
        expect(h.errors).toEqual([]);
      } finally {
        h.stop();
      }
    });
  }
});

describe('idempotent run start and cancellation', () => {
  it('starting the same run id twice creates one run', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({ A: { responses: [{ next_action: 'final_response', content: 1 }] } });
    const input = { team: 't', runId: 'fixed', name: 'n', request: 'x', entry: 'A', agents };
    const { startRun } = await import('../../core/use-cases');
    expect(await startRun(h.deps, input)).toEqual({ runId: 'fixed', created: true });
    expect(await startRun(h.deps, input)).toEqual({ runId: 'fixed', created: false });
    expect(h.queue.sent).toBe(2); // the root was still PENDING: its first step is offered again, harmlessly
    h.stop();
  });

  it('a repeated start that finds its run ended ends only a root never started (one that started is the cancel\'s)', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({ A: { responses: [{ next_action: 'final_response', content: 1 }] } });
    const input = { team: 't', runId: 'started', name: 'n', request: 'x', entry: 'A', agents };
    const scope = { team: 't', runId: 'started' };
    const { startRun } = await import('../../core/use-cases');
    try {
      await startRun(h.deps, input);
      const root = (await h.store.getBranch(scope, 'root'))!;
      await h.store.updateBranch(scope, 'root', root.version, { status: 'RUNNING', startedAt: 1 });
      await h.store.finishRun(scope, 'CANCELLED', { endedAt: 2, error: 'cancelled', endedBy: WorkMark.cancel });
      await startRun(h.deps, input);
      expect((await h.store.getBranch(scope, 'root'))?.status).toBe('RUNNING');
    } finally {
      h.stop();
    }
  });

  it('cancelling a run cancels every active branch and ends the run CANCELLED', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({
      Boss: { allowed: ['Sleeper'], responses: [{ next_action: 'parallel_invoke', agents: ['Sleeper', 'Sleeper'] }] },
      Sleeper: { responses: [{ $delayMs: 60_000, next_action: 'final_response', content: 'z' }] },
    });
    const runPromise = h.run({ name: 'c', request: 'x', entry: 'Boss', agents });
    // Cancel once both sleepers are running.
    while (h.events.filter((e) => e.type === 'BranchCreated').length < 3) await new Promise((r) => setImmediate(r));
    const runId = h.events[0].runId;
    await cancelRun(h.deps, { team: 'team-a', runId });
    const outcome = await runPromise;
    expect(outcome.run.status).toBe('CANCELLED');
    expect(outcome.branches.map((b) => b.status)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
    await expect(cancelRun(h.deps, { team: 'team-a', runId: 'nope' })).rejects.toThrow(/not found/);
    h.stop();
  });
});

describe("a spawn's own options in the branch detail", () => {
  it("shows the sync point's tolerated count, on_failure and completion function (null where the run's settings apply)", async () => {
    const { branchDetail } = await import('../../core/use-cases/queries');
    const h = createMemoryHarness({ aggregators: { allDone: () => false } });
    const agents = scriptAgents({
      Lead: {
        allowed: ['A'],
        responses: [
          { next_action: 'parallel_invoke', agents: ['A', 'A'], tolerated_failures: 1, on_failure: 'continue' },
          { next_action: 'parallel_invoke', agents: ['A'], complete_when: 'fn:allDone', tolerated_failures: 0.25 },
          { next_action: 'parallel_invoke', agents: ['A'] },
          { next_action: 'final_response', content: '$input' },
        ],
      },
      A: { responses: [{ next_action: 'final_response', content: 'a' }] },
    });
    const outcome = await h.run({ name: 'd', request: 'x', entry: 'Lead', agents });
    expect(outcome.run.status).toBe('FAILED'); // allDone never says done, and the second spawn does not continue
    const detail = await branchDetail(h.deps, { team: outcome.run.team, runId: outcome.run.runId }, 'root');
    expect(detail.syncPoints.map(({ seq, toleratedFailures, maxFailedFraction, onFailure, completeWhen }) => ({ seq, toleratedFailures, maxFailedFraction, onFailure, completeWhen }))).toEqual([
      { seq: 1, toleratedFailures: 1, maxFailedFraction: 0.5, onFailure: 'continue', completeWhen: null },
      { seq: 2, toleratedFailures: null, maxFailedFraction: 0.25, onFailure: 'fail', completeWhen: 'fn:allDone' },
    ]);
    expect(outcome.run.error).toMatch(/the completion function "allDone" never said done/);
    h.stop();
  });
});

describe('next_actions groups after an agent:<Name> aggregator', () => {
  it("run with the response's own settings (wait_for, per-fan-out options), as the first group did", async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({
      R: {
        allowed: ['J'],
        responses: [{ next_actions: [['a', 'b'], ['c', 'd']], wait_for: 'any', aggregator: 'agent:J', max_concurrency: 1, tolerated_failures: 0, on_failure: 'continue' }],
        rules: [{ when: 'child_count', responses: [{ next_action: 'final_response', content: '$input' }] }, { when: '"', responses: [{ next_action: 'final_response', content: 'part' }] }],
      },
      J: { responses: [{ next_action: 'final_response', content: 'judged' }] },
    });
    const outcome = await h.run({ name: 'g', request: 'x', entry: 'R', agents });
    expect(outcome.run.status).toBe('COMPLETED');
    const scope = { team: outcome.run.team, runId: outcome.run.runId };
    const rules = await Promise.all([1, 2, 3, 4].map((seq) => h.deps.store.getSyncPoint(scope, 'root', seq)));
    const pick = (sp: any) => ({ waitFor: sp.waitFor, toleratedFailures: sp.toleratedFailures, onFailure: sp.onFailure });
    // Groups 1 and 2 (seq 1 and 3) share the response's settings; each aggregation (seq 2 and 4) waits for its one agent.
    expect(rules.map(pick)).toEqual([
      { waitFor: 'any', toleratedFailures: 0, onFailure: 'continue' },
      { waitFor: 'all', toleratedFailures: undefined, onFailure: undefined },
      { waitFor: 'any', toleratedFailures: 0, onFailure: 'continue' },
      { waitFor: 'all', toleratedFailures: undefined, onFailure: undefined },
    ]);
    h.stop();
  });
});

describe("the default aggregate's metadata.wait_for", () => {
  it('names the completion function when complete_when named one (not the unused "all")', async () => {
    const h = createMemoryHarness({ aggregators: { anyDone: (children: { status: string }[]) => children.some((c) => c.status === 'COMPLETED') } });
    const agents = scriptAgents({
      Lead: {
        allowed: ['A'],
        responses: [{ next_action: 'parallel_invoke', agents: ['A', 'A'], complete_when: 'fn:anyDone' }, { next_action: 'final_response', content: '$input' }],
      },
      A: { responses: [{ next_action: 'final_response', content: 'a' }] },
    });
    try {
      const outcome = await h.run({ name: 'm', request: 'x', entry: 'Lead', agents });
      expect(outcome.run.status).toBe('COMPLETED');
      expect((outcome.run.result as { metadata: Record<string, unknown> }).metadata.wait_for).toBe('fn:anyDone');
    } finally {
      h.stop();
    }
  });
});

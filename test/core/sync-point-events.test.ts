/**
 * A sync point settled early tells each end once, and its SyncPointReached event reports the
 * same children as the aggregate the parent resumes with.
 */
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import type { AgentInvoker } from '../../core/ports';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

/**
 * Workers whose third call waits for the fourth (dispatched when the first ends): the third and
 * fourth successes end together, so two children's ends each decide the sync point and settle it
 * at the same time, as on a busy engine.
 */
function togetherInvoker(): AgentInvoker {
  const script = new KindRouter({ script: new ScriptInvoker() });
  let calls = 0;
  let releaseThird!: () => void;
  const third = new Promise<void>((resolve) => (releaseThird = resolve));
  return {
    invoke: async (call) => {
      if (call.agentName === 'Worker') {
        const n = ++calls;
        if (n === 3) await third;
        if (n === 4) releaseThird();
      }
      return script.invoke(call);
    },
  };
}

function endEvents(events: LifecycleEvent[]): Map<string, string[]> {
  const ends = new Map<string, string[]>();
  for (const e of events) {
    if (e.type !== 'BranchCompleted' && e.type !== 'BranchFailed' && e.type !== 'BranchCancelled') continue;
    ends.set(e.branchId!, [...(ends.get(e.branchId!) ?? []), e.type]);
  }
  return ends;
}

describe('an early-settled fan-out (wait_for 3 of 10, 3 at a time)', () => {
  const agents = scriptAgents({
    Boss: {
      allowed: ['Worker'],
      responses: [
        { next_action: 'parallel_invoke', agents: Array(10).fill('Worker'), wait_for: 3 },
        { next_action: 'final_response', content: '$input' },
      ],
    },
    Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
  });
  const limits = { maxConcurrentBranches: 3 };

  it.each([
    ['one child decides', () => undefined],
    ['two children decide at once', togetherInvoker],
  ])('publishes exactly one end event for every branch, the never-started children included (%s)', async (_, invoker) => {
    const h = createMemoryHarness({ invoker: invoker() });
    try {
      const outcome = await h.run({ name: 'early', request: 'x', entry: 'Boss', agents, limits });
      expect(outcome.run.status).toBe('COMPLETED');
      const ends = endEvents(outcome.events);
      expect(outcome.branches).toHaveLength(11);
      for (const branch of outcome.branches) {
        expect(ends.get(branch.id), `end events of ${branch.id} (${branch.status})`).toHaveLength(1);
      }
    } finally {
      h.stop();
    }
  });

  it.each([
    ['one child decides', () => undefined],
    ['two children decide at once', togetherInvoker],
  ])('SyncPointReached reports the counts and statuses the aggregate has (%s)', async (_, invoker) => {
    const h = createMemoryHarness({ invoker: invoker() });
    try {
      const outcome = await h.run({ name: 'early', request: 'x', entry: 'Boss', agents, limits });
      const reached = outcome.events.filter((e) => e.type === 'SyncPointReached');
      expect(reached).toHaveLength(1);
      const detail = reached[0].detail as { succeeded: number; failed: number; cancelled: number; total: number; results: { branchId: string; status: string }[] };
      const aggregate = outcome.branches.find((b) => b.id === 'root')!.result as { metadata: Record<string, unknown>; results?: unknown };
      const children = outcome.branches.filter((b) => b.parentId === 'root');
      const count = (status: string) => children.filter((c) => c.status === status).length;
      expect({ succeeded: detail.succeeded, failed: detail.failed, cancelled: detail.cancelled, total: detail.total }).toEqual({
        succeeded: count('COMPLETED'),
        failed: count('FAILED') + count('TIMED_OUT'),
        cancelled: count('CANCELLED'),
        total: 10,
      });
      expect(detail.cancelled).toBeGreaterThan(0);
      expect(Object.fromEntries(detail.results.map((r) => [r.branchId, r.status]))).toEqual(Object.fromEntries(children.map((c) => [c.id, c.status])));
      expect(aggregate.metadata).toMatchObject({ succeeded: detail.succeeded, failed: detail.failed, cancelled: detail.cancelled });
    } finally {
      h.stop();
    }
  });
});

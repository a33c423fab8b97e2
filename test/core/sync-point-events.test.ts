/**
 * A sync point settled early tells each end once — also when a child's fan-out iteration fails
 * after the child ended on its own — and its SyncPointReached event reports the same children as
 * the aggregate the parent resumes with.
 */
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import type { AgentInvoker } from '../../core/ports';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { recordBatchFailure, recordChildFailure } from '../../core/use-cases';
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
      const detail = reached[0].detail;
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

describe('a failing fan-out decided by two children, the second after the run ended', () => {
  it('tells the parent\'s end and the run\'s end once (the later settlement is not a retry)', async () => {
    const h = createMemoryHarness();
    const store = h.store;
    // root.0 completes and is counted right after root.1 failed (both counts see a child still to
    // end, so each settles the sync point early); root.0's settlement only goes on once root.1's
    // has failed the root and ended the run, as under load.
    let failedCounted!: () => void;
    const failedCount = new Promise<void>((resolve) => (failedCounted = resolve));
    let runEnded!: () => void;
    const ended = new Promise<void>((resolve) => (runEnded = resolve));
    let okCounted!: () => void;
    const okCount = new Promise<void>((resolve) => (okCounted = resolve));
    const record = store.recordChildEnd.bind(store);
    store.recordChildEnd = async (scope, parentId, seq, childId, outcome) => {
      if (childId === 'root.0') await failedCount;
      const counted = await record(scope, parentId, seq, childId, outcome);
      if (childId === 'root.1') {
        failedCounted();
        await okCount;
      }
      if (childId === 'root.0' && counted.applied) {
        okCounted();
        await ended;
      }
      return counted;
    };
    const finishRun = store.finishRun.bind(store);
    store.finishRun = async (...args) => {
      const finished = await finishRun(...args);
      if (finished) runEnded();
      return finished;
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Ok', 'Bad', 'Slow'], responses: [{ next_action: 'parallel_invoke', agents: ['Ok', 'Bad', 'Slow'] }, { next_action: 'final_response', content: '$input' }] },
      Ok: { responses: [{ next_action: 'final_response', content: 'ok' }] },
      Bad: { responses: [{ $fail: 'boom' }] },
      Slow: { responses: [{ $hang: true, next_action: 'final_response', content: 'never' }] },
    });
    try {
      const outcome = await h.run({ name: 'failing', request: 'x', entry: 'Boss', agents, failurePolicy: { maxFailedFraction: 0 } });
      expect(outcome.run.status).toBe('FAILED');
      expect(outcome.events.filter((e) => e.type === 'RunFailed'), 'RunFailed events').toHaveLength(1);
      expect(endEvents(outcome.events).get('root'), 'end events of root').toEqual(['BranchFailed']);
      for (const branch of outcome.branches) expect(endEvents(outcome.events).get(branch.id), `end events of ${branch.id}`).toHaveLength(1);
    } finally {
      h.stop();
    }
  });
});

describe('a child\'s fan-out iteration failing after the child ended and its sync point settled early', () => {
  // wait_for 1 of 3, one at a time: the first child's end settles the sync point and cancels the
  // other two. Its iteration then fails all the same (its timeout fired as it ended, or its report
  // was lost): RecordChildFailure (or RecordBatchFailure) runs and finds the child ended on its own.
  const agents = scriptAgents({
    Boss: {
      allowed: ['Worker'],
      responses: [
        { next_action: 'parallel_invoke', agents: ['Worker', 'Worker', 'Worker'], wait_for: 1 },
        { next_action: 'final_response', content: '$input' },
      ],
    },
    Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
  });
  const limits = { maxConcurrentBranches: 1 };

  it.each(['RecordChildFailure', 'RecordBatchFailure'] as const)('%s on its first attempt tells no end a second time (it is no retry of the settlement)', async (task) => {
    const h = createMemoryHarness();
    try {
      const outcome = await h.run({ name: 'late-failure', request: 'x', entry: 'Boss', agents, limits });
      expect(outcome.run.status).toBe('COMPLETED');
      const scope = { team: outcome.run.team, runId: outcome.run.runId };
      const ended = outcome.branches.find((b) => b.parentId === 'root' && b.status === 'COMPLETED')!;
      const before = h.events.filter((e) => e.runId === scope.runId).length;
      if (task === 'RecordChildFailure') {
        await recordChildFailure(h.deps, { ...scope, parentId: 'root', seq: 1, branchId: ended.id, error: 'States.Timeout', retryCount: 0 });
      } else {
        // The batch's task read its children before the settlement cancelled them (as they were created).
        const getBranches = h.store.getBranches.bind(h.store);
        h.store.getBranches = async (s, ids) => (await getBranches(s, ids)).map((b) => (b.parentId === 'root' && b.status === 'CANCELLED' ? { ...b, status: 'PENDING', advancedBy: undefined } : b));
        await recordBatchFailure(h.deps, { ...scope, parentId: 'root', seq: 1, first: 0, count: 3, error: 'States.Timeout', retryCount: 0 });
        h.store.getBranches = getBranches;
      }
      expect(h.events.filter((e) => e.runId === scope.runId).slice(before).map((e) => `${e.type} ${e.branchId ?? ''}`)).toEqual([]);
      expect(endEvents(h.events.filter((e) => e.runId === scope.runId)).get('root.1')).toEqual(['BranchCancelled']);
    } finally {
      h.stop();
    }
  });
});

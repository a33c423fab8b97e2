/**
 * Regression tests of the branch lifecycle under the interleavings that broke it (each failed
 * before the fix): a cancel racing a spawn, a restart between a second group's sync point and
 * its children, an end event lost to a crash while a duplicate delivery finished the work, an
 * early exit whose fan-out was never stopped because the crash came just before the stop, and a
 * child cancelled under a parent that a cancel ended while a settlement opened its next group, and
 * two settlements at once where the one that cancelled a child died before counting it; a failed
 * iteration's task that settled its sync point early (or ended its child) and died, then a cancel
 * that stopped its fan-out; a failed iteration's task retried while its first attempt ran on and
 * won the write failing the parent; a failed iteration's task that failed the run and died while
 * its child's step settled the same sync point. (The last six were found by the simulation; their seeds are
 * also pinned in simulation.test.ts.) And, with no fault at all, another message of a step that
 * spawned arriving while the spawn is announced, and a cancel between a spawn's BranchCreated
 * and its record that it told them (and the same cancel with the spawn dying there).
 */
import { describe, expect, it } from 'vitest';
import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { isTerminal, type Scope } from '../../core/model';
import { WorkMark } from '../../core/work-mark';
import type { AgentInvoker } from '../../core/ports';
import { cancelRun, executeStep, recordChildFailure, startRun, type Faults, type SpawnerDeps } from '../../core/use-cases';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { createMemoryHarness, HarnessCrash, scriptAgents } from '../support/memory-harness';

const TEAM = 'team-a';

/** wait_for any over Fast and Slow: Slow's agent call waits until `releaseSlow` (Fast settles the sync point). */
function fastOrSlow() {
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
  const script = new KindRouter({ script: new ScriptInvoker() });
  const invoker: AgentInvoker = {
    invoke: async (call) => {
      if (call.agentName === 'Slow') await slowGate;
      return script.invoke(call);
    },
  };
  const agents = scriptAgents({
    Boss: {
      allowed: ['Fast', 'Slow'],
      responses: [{ next_action: 'parallel_invoke', agents: ['Fast', 'Slow'], wait_for: 'any' }, { next_action: 'final_response', content: '$input' }],
    },
    Fast: { responses: [{ next_action: 'final_response', content: 'fast' }] },
    Slow: { responses: [{ next_action: 'final_response', content: 'slow' }] },
  });
  return { invoker, agents, releaseSlow: () => releaseSlow() };
}

describe('a cancel racing a spawn', () => {
  it('cancels the children the spawn creates after the cancel read the tree, and stops their fan-out', async () => {
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let cancelled: Promise<void> | undefined;
    // The parent has written WAITING; the cancel runs to its end before the children are written.
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      if (branches[0]?.parentId === 'root' && !cancelled) {
        cancelled = cancelRun(h.deps, { team: TEAM, runId: branches[0].runId });
        await cancelled;
      }
      return createBranches(branches);
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker', 'Worker'] }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const outcome = await h.run({ name: 'race', request: 'x', entry: 'Boss', agents });
      expect(outcome.run.status).toBe('CANCELLED');
      // Created by the spawn that was already under way, and cancelled: none ran, none completed.
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'CANCELLED'],
        ['root.0', 'CANCELLED'],
        ['root.1', 'CANCELLED'],
        ['root.2', 'CANCELLED'],
      ]);
      expect(outcome.branches.filter((b) => b.parentId && b.startedAt !== undefined).map((b) => b.id)).toEqual([]);
      expect(outcome.events.filter((e) => e.type === 'BranchCompleted')).toEqual([]);
      expect(h.fanOut.activeExecutions()).toBe(0);
      const sp = await store.getSyncPoint({ team: TEAM, runId: outcome.run.runId }, 'root', 1);
      expect(sp?.counters).toEqual({ total: 3, succeeded: 0, failed: 0, cancelled: 3 });
    } finally {
      h.stop();
    }
  });
});

describe('resume after a crash between the second group\'s sync point and its children', () => {
  it('opens the group again and completes, instead of waiting forever', async () => {
    const store = new MemoryBranchStore();
    const first = createMemoryHarness({ store });
    // The process "dies" as it writes the children of the second group (its sync point exists):
    // every attempt fails while it runs, so Aggregate's retries run out. Its Catch finds the parent
    // already on its second sync point (moved on: left alone), and nothing more happens.
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      if (branches[0]?.parentSeq === 2) throw new Error('process killed');
      return createBranches(branches);
    };
    const agents = scriptAgents({
      Lead: {
        rules: [{ when: 'leaf:', responses: [{ next_action: 'final_response', content: 'done' }] }],
        responses: [{ next_actions: [['leaf:a1', 'leaf:a2'], ['leaf:b1']] }, { next_action: 'final_response', content: '$input' }],
      },
    });
    await expect(first.run({ name: 'groups', request: 'x', entry: 'Lead', agents })).rejects.toThrow(/stalled: nothing queued or running/);
    first.stop();
    const runId = first.events[0].runId;
    const scope: Scope = { team: TEAM, runId };
    expect(await store.getSyncPoint(scope, 'root', 2)).toBeDefined();
    expect(await store.getBranch(scope, 'root.2')).toBeUndefined();

    store.createBranches = createBranches;
    const second = createMemoryHarness({ store });
    try {
      const outcome = await second.resume(scope);
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'COMPLETED'],
        ['root.0', 'COMPLETED'],
        ['root.1', 'COMPLETED'],
        ['root.2', 'COMPLETED'],
      ]);
      const created = new Set(second.events.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId));
      expect(created.has('root.2')).toBe(true);
    } finally {
      second.stop();
    }
  });
});

describe('end events across a crash', () => {
  it('the root\'s BranchCompleted goes out when the delivery that completed it crashed and a duplicate finished the run', async () => {
    // Every message is sent twice (two messages, two ids); the first delivery that completes the
    // root crashes right after the write, before it published anything.
    let crashed = false;
    const faults: Faults = {
      hit(point, key) {
        if (point === 'after-mark-complete' && key.endsWith('/root') && !crashed) {
          crashed = true;
          throw new HarnessCrash(`crash at ${point} ${key}`);
        }
      },
    };
    const h = createMemoryHarness({ faults });
    const send = h.queue.send.bind(h.queue);
    h.deps.queue = { send: async (messages) => (await send(messages), await send(messages)), redeliverAfter: (r, s) => h.queue.redeliverAfter(r, s) };
    const agents = scriptAgents({
      Lead: {
        allowed: ['W'],
        responses: [{ next_action: 'parallel_invoke', agents: ['W', 'W'] }, { next_action: 'final_response', content: '$input' }],
      },
      W: { responses: [{ next_action: 'final_response', content: 'w' }] },
    });
    try {
      const outcome = await h.run({ name: 'dup', request: 'x', entry: 'Lead', agents });
      expect(crashed).toBe(true);
      expect(outcome.run.status).toBe('COMPLETED');
      for (const b of outcome.branches) {
        expect(isTerminal(b.status)).toBe(true);
        expect(outcome.events.some((e) => e.type === 'BranchCompleted' && e.branchId === b.id), `end event of ${b.id}`).toBe(true);
      }
      expect(outcome.events.some((e) => e.type === 'RunCompleted')).toBe(true);
    } finally {
      h.stop();
    }
  });
});

describe('an early exit cut short by a crash just before its fan-out was stopped', () => {
  it('the retry stops the fan-out (the counters no longer show the exit was early; the children do)', async () => {
    // wait_for any: Fast completes while Slow is still in its agent call. Fast's step settles the
    // sync point early (claims it, cancels Slow) and crashes just before stopping the fan-out.
    // Its message comes back: the repeat must stop the fan-out, whose iteration for Slow would
    // otherwise wait forever (Slow's own step finds it cancelled and reports nothing).
    const { invoker, agents, releaseSlow } = fastOrSlow();
    const h = createMemoryHarness({ invoker });
    const fanOut = h.deps.fanOut;
    const stops: string[] = [];
    h.deps.fanOut = {
      start: (request) => fanOut.start(request),
      childFinished: (token, report) => fanOut.childFinished(token, report),
      stop: async (name, reason) => {
        stops.push(name);
        if (stops.length === 1) {
          releaseSlow();
          throw new HarnessCrash(`crash before stopping ${name}`);
        }
        return fanOut.stop(name, reason);
      },
    };
    try {
      const outcome = await h.run({ name: 'early', request: 'x', entry: 'Boss', agents });
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'COMPLETED'],
        ['root.0', 'COMPLETED'],
        ['root.1', 'CANCELLED'],
      ]);
      expect(stops.length).toBeGreaterThan(1);
      expect(h.fanOut.activeExecutions()).toBe(0);
    } finally {
      releaseSlow();
      h.stop();
    }
  });
});

describe('a cancel while a settlement opens the next group, and a crash after it cancelled the new child', () => {
  it('the retried settlement tells the child\'s end (its BranchCancelled), though the parent moved on and ended', async () => {
    // Group 1 settles; its Aggregate opens group 2. The cancel runs to its end just before group
    // 2's child is written (it finds no child to cancel); the opening then sees the parent ended,
    // cancels the child it just wrote, and crashes before telling that end. The state machine
    // retries the Aggregate, which finds the parent moved on to group 2 and ended.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let cancelled: Promise<void> | undefined;
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      if (branches[0]?.parentSeq === 2 && !cancelled) {
        cancelled = cancelRun(h.deps, { team: TEAM, runId: branches[0].runId });
        await cancelled;
      }
      return createBranches(branches);
    };
    let crashed = false;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      const ended = await transitionBranch(scope, branchId, from, to, patch);
      if (ended && branchId === 'root.1' && patch?.advancedBy === WorkMark.parent('root') && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash after cancelling root.1');
      }
      return ended;
    };
    const agents = scriptAgents({
      Lead: {
        rules: [{ when: 'leaf:', responses: [{ next_action: 'final_response', content: 'done' }] }],
        responses: [{ next_actions: [['leaf:a'], ['leaf:b']] }, { next_action: 'final_response', content: '$input' }],
      },
    });
    try {
      const outcome = await h.run({ name: 'groups', request: 'x', entry: 'Lead', agents });
      expect(crashed).toBe(true);
      expect(outcome.run.status).toBe('CANCELLED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'CANCELLED'],
        ['root.0', 'COMPLETED'],
        ['root.1', 'CANCELLED'],
      ]);
      expect(outcome.events.some((e) => e.type === 'BranchCancelled' && e.branchId === 'root.1')).toBe(true);
      const sp = await store.getSyncPoint({ team: TEAM, runId: outcome.run.runId }, 'root', 2);
      expect(sp?.counters).toEqual({ total: 1, succeeded: 0, failed: 0, cancelled: 1 });
      expect(h.fanOut.activeExecutions()).toBe(0);
    } finally {
      h.stop();
    }
  });
});

describe('two settlements of one sync point at once', () => {
  it('the one that lost the write cancelling a child tells that end, when the winner died before telling it', async () => {
    // wait_for any over [a, b, slow], then a second group. a and b both complete and both settle
    // the sync point (one claims it); both try to cancel slow: the first write wins and its
    // worker dies there; the other reads slow back and moves the parent on to the second group.
    // The dead worker's message comes back only after that, and finds the parent moved on: the
    // end of slow must have been counted by the survivor.
    const store = new MemoryBranchStore();
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    const script = new KindRouter({ script: new ScriptInvoker() });
    const invoker: AgentInvoker = {
      invoke: async (call) => {
        if (call.input === 'leaf:slow') await slowGate;
        return script.invoke(call);
      },
    };
    const h = createMemoryHarness({ store, invoker });
    // Both quick children have ended before either end is counted (so both settle, and neither
    // cancels the other).
    let ended = 0;
    let bothEnded!: () => void;
    const bothEndedGate = new Promise<void>((resolve) => (bothEnded = resolve));
    const updateBranch = store.updateBranch.bind(store);
    let movedOn!: () => void;
    const movedOnGate = new Promise<void>((resolve) => (movedOn = resolve));
    store.updateBranch = async (scope, branchId, version, patch) => {
      const updated = await updateBranch(scope, branchId, version, patch);
      if (updated && updated.parentId === 'root' && updated.parentSeq === 1 && updated.status === 'COMPLETED' && ++ended === 2) bothEnded();
      if (updated && branchId === 'root' && updated.spawn?.seq === 2) movedOn();
      return updated;
    };
    const recordChildEnd = store.recordChildEnd.bind(store);
    store.recordChildEnd = async (scope, parentId, seq, childId, outcome) => {
      if (parentId === 'root' && seq === 1) await bothEndedGate;
      return recordChildEnd(scope, parentId, seq, childId, outcome);
    };
    let crashed = false;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      const result = await transitionBranch(scope, branchId, from, to, patch);
      if (result && branchId === 'root.2' && patch?.advancedBy === WorkMark.settle('root', 1) && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash after cancelling root.2');
      }
      return result;
    };
    // The dead worker's message comes back once the parent has moved on (and slow's call returns).
    const redeliver = h.queue.redeliver.bind(h.queue);
    h.queue.redeliver = async (message) => {
      await movedOnGate;
      releaseSlow();
      return redeliver(message);
    };
    const agents = scriptAgents({
      Lead: {
        rules: [{ when: 'leaf:', responses: [{ next_action: 'final_response', content: 'done' }] }],
        responses: [
          { next_actions: [['leaf:a', 'leaf:b', 'leaf:slow'], ['leaf:tail']], wait_for: 'any' },
          { next_action: 'final_response', content: '$input' },
        ],
      },
    });
    try {
      const outcome = await h.run({ name: 'two-settlements', request: 'x', entry: 'Lead', agents });
      expect(crashed).toBe(true);
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'COMPLETED'],
        ['root.0', 'COMPLETED'],
        ['root.1', 'COMPLETED'],
        ['root.2', 'CANCELLED'],
        ['root.3', 'COMPLETED'],
      ]);
      const sp = await store.getSyncPoint({ team: TEAM, runId: outcome.run.runId }, 'root', 1);
      expect(sp?.counters).toEqual({ total: 3, succeeded: 2, failed: 0, cancelled: 1 });
      expect(outcome.events.some((e) => e.type === 'BranchCancelled' && e.branchId === 'root.2')).toBe(true);
    } finally {
      releaseSlow();
      h.stop();
    }
  });
});

describe('a fan-out iteration failing under a cancelled run', () => {
  it('ends the child CANCELLED like the rest of the tree, not TIMED_OUT', async () => {
    // The cancel runs to its end before the spawn writes its child (it finds none to cancel);
    // the child's iteration then times out before the spawn sees the parent ended.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let cancelled = false;
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      const first = branches[0];
      if (first?.parentId !== 'root' || cancelled) return createBranches(branches);
      cancelled = true;
      await cancelRun(h.deps, { team: TEAM, runId: first.runId });
      const created = await createBranches(branches);
      await recordChildFailure(h.deps, { team: TEAM, runId: first.runId, parentId: 'root', seq: 1, branchId: first.id, error: 'States.Timeout' });
      return created;
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker'] }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const outcome = await h.run({ name: 'timeout-after-cancel', request: 'x', entry: 'Boss', agents });
      expect(outcome.run.status).toBe('CANCELLED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'CANCELLED'],
        ['root.0', 'CANCELLED'],
      ]);
      expect(outcome.branches[1].error).toBe('the run is CANCELLED');
    } finally {
      h.stop();
    }
  });
});

describe('a start retried after it ended its root under a cancel and crashed', () => {
  it('tells the root\'s end again (its BranchCancelled)', async () => {
    // The cancel runs to its end between the run's write and the root's (it finds no root); the
    // start then ends the root CANCELLED itself and crashes before telling it. Its client retries.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    const runId = 'run-start-retry';
    let cancelled = false;
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      if (branches[0]?.parentId === null && !cancelled) {
        cancelled = true;
        await cancelRun(h.deps, { team: TEAM, runId });
      }
      return createBranches(branches);
    };
    let crashed = false;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      const ended = await transitionBranch(scope, branchId, from, to, patch);
      if (ended && branchId === 'root' && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash after ending the root');
      }
      return ended;
    };
    const input = { team: TEAM, runId, name: 'start-retry', request: 'x', entry: 'A', agents: scriptAgents({ A: { responses: [{ next_action: 'final_response', content: 'a' }] } }) };
    try {
      await expect(startRun(h.deps, input)).rejects.toThrow(HarnessCrash);
      await startRun(h.deps, input);
      expect((await store.getBranch({ team: TEAM, runId }, 'root'))?.status).toBe('CANCELLED');
      const types = h.events.filter((e) => e.branchId === 'root' || e.type.startsWith('Run')).map((e) => e.type);
      expect(types).toContain('BranchCreated');
      expect(types).toContain('BranchCancelled');
      expect(types).toContain('RunCancelled');
    } finally {
      h.stop();
    }
  });
});

/**
 * A Boss fans out to two Workers; only the root's first step runs (the children's steps stay
 * queued). root.0's iteration then fails (RecordChildFailure) and its task dies (the store's
 * fault, set by the caller); a cancel ends the run; and the task is retried as Step Functions
 * does: only if its execution was not stopped. Returns the run's scope once all that is done.
 */
async function failedIterationThenCancel(h: ReturnType<typeof createMemoryHarness>, name: string, maxFailedFraction: number): Promise<Scope> {
  const agents = scriptAgents({
    Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker'] }] },
    Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
  });
  const { runId } = await startRun(h.deps, { team: TEAM, name, request: 'x', entry: 'Boss', agents, failurePolicy: { maxFailedFraction } });
  const scope: Scope = { team: TEAM, runId };
  const first = await h.queue.receive();
  await executeStep(h.deps, first.body, { messageId: first.messageId, receiveCount: 1 });
  const failure = { team: TEAM, runId, parentId: 'root', seq: 1, branchId: 'root.0', error: 'States.Timeout' };
  await expect(recordChildFailure(h.deps, { ...failure, retryCount: 0 })).rejects.toThrow(HarnessCrash);
  await cancelRun(h.deps, scope);
  const execution = h.fanOut.describeRunning().find((e) => e.request.parentId === 'root');
  if (execution && !execution.stopped) await recordChildFailure(h.deps, { ...failure, retryCount: 1 });
  return scope;
}

describe('a failed iteration that settled its sync point early and died, then a cancel', () => {
  it('leaves the claimed fan-out running, so the task\'s retry tells the sibling it cancelled', async () => {
    // One failure of two settles the sync point at once: the task cancels root.1 and dies before
    // telling or counting that end.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let crashed = false;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      const ended = await transitionBranch(scope, branchId, from, to, patch);
      if (ended && branchId === 'root.1' && patch?.advancedBy === WorkMark.settle('root', 1) && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash after cancelling root.1');
      }
      return ended;
    };
    try {
      const scope = await failedIterationThenCancel(h, 'settled-then-cancelled', 0);
      expect(crashed).toBe(true);
      expect(h.events.filter((e) => e.type === 'BranchCancelled' && e.branchId === 'root.1')).toHaveLength(1);
      expect((await store.getSyncPoint(scope, 'root', 1))?.counters).toEqual({ total: 2, succeeded: 0, failed: 1, cancelled: 1 });
      // The settlement stopped its fan-out last.
      expect(h.fanOut.describeRunning().filter((e) => e.request.parentId === 'root' && !e.stopped)).toEqual([]);
    } finally {
      h.stop();
    }
  });
});

describe('a failed iteration that died before counting its child\'s end, then a cancel', () => {
  it('the cancel\'s cascade counts that end (the stop drops the task\'s retry)', async () => {
    // The task ends root.0 TIMED_OUT, tells it, and dies before counting it on the sync point
    // (one failure is tolerated: nothing settles); the cancel stops the fan-out.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let crashed = false;
    const recordChildEnd = store.recordChildEnd.bind(store);
    store.recordChildEnd = async (scope, parentId, seq, childId, outcome) => {
      if (childId === 'root.0' && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash before counting root.0');
      }
      return recordChildEnd(scope, parentId, seq, childId, outcome);
    };
    try {
      const scope = await failedIterationThenCancel(h, 'failed-then-cancelled', 1);
      expect(crashed).toBe(true);
      expect((await store.getBranch(scope, 'root.0'))?.status).toBe('TIMED_OUT');
      expect((await store.getSyncPoint(scope, 'root', 1))?.counters).toEqual({ total: 2, succeeded: 0, failed: 1, cancelled: 1 });
    } finally {
      h.stop();
    }
  });
});

/**
 * A Lead that fans out to two Ws, run to its end; at root.0's first BranchCreated (`when`: before
 * or after it is published) the spawn is interrupted by `meanwhile`, run to its end first.
 */
async function spawnInterrupted(name: string, when: 'before' | 'after', meanwhile: (deps: SpawnerDeps, scope: Scope) => Promise<unknown>) {
  const h = createMemoryHarness();
  const publish = h.deps.events.publish.bind(h.deps.events);
  let interrupted = false;
  h.deps.events.publish = async (events) => {
    const created = events.find((e) => e.type === 'BranchCreated' && e.branchId === 'root.0');
    const now = created !== undefined && !interrupted;
    if (now) interrupted = true;
    if (now && when === 'before') await meanwhile(h.deps, { team: created.team, runId: created.runId });
    await publish(events);
    if (now && when === 'after') await meanwhile(h.deps, { team: created.team, runId: created.runId });
  };
  const agents = scriptAgents({
    Lead: { allowed: ['W'], responses: [{ next_action: 'parallel_invoke', agents: ['W', 'W'] }, { next_action: 'final_response', content: '$input' }] },
    W: { responses: [{ next_action: 'final_response', content: 'w' }] },
  });
  try {
    const outcome = await h.run({ name, request: 'x', entry: 'Lead', agents });
    const told = (id: string) => outcome.events.filter((e) => e.type === 'BranchCreated' && e.branchId === id).length;
    return { outcome, told };
  } finally {
    h.stop();
  }
}

describe('another message of a step that spawned, arriving while the spawn announces its children', () => {
  it('leaves the opening to the delivery that spawned: each child is created in one BranchCreated', async () => {
    // Two messages of one step, no fault: two settlements of a sync point that both resumed the
    // parent each send its next step. The second is delivered (its first delivery) while the first
    // has spawned (the parent WAITING) and is publishing BranchCreated, before it records that it did.
    let other: unknown;
    const { outcome, told } = await spawnInterrupted('two-messages', 'before', async (deps, scope) => {
      other = await executeStep(deps, { ...scope, branchId: 'root', step: 0 }, { messageId: 'another', receiveCount: 1 });
    });
    expect(outcome.run.status).toBe('COMPLETED');
    expect([told('root'), told('root.0'), told('root.1')]).toEqual([1, 1, 1]);
    expect(other).toBe('skipped');
  });
});

describe('a cancel between a spawn telling its children\'s BranchCreated and recording that it did', () => {
  it('each child is created in one BranchCreated: the cancel, finding them untold, leaves them to the spawn', async () => {
    // No fault: the cancel ends the parent after the spawn published BranchCreated and before it
    // recorded `announced` (its write then loses to the cancel's). The cancel cannot know whether
    // the spawn is alive; the spawn's write named it the one to tell them, so the cancel does not.
    const { outcome, told } = await spawnInterrupted('cancel-announcing', 'after', (deps, scope) => cancelRun(deps, scope));
    expect(outcome.run.status).toBe('CANCELLED');
    expect([told('root.0'), told('root.1')]).toEqual([1, 1]);
    expect(outcome.events.filter((e) => e.type === 'BranchCancelled').map((e) => e.branchId).sort()).toEqual(['root', 'root.0', 'root.1']);
  });

  it('a spawn that died after writing its children, under a parent a cancel then ended, has them told by its redelivery', async () => {
    // The cancel leaves the telling to the spawn; the spawn died before it: its message comes
    // back, finds the parent ended, and tells them (and cancels those the cancel missed).
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let crashed = false;
    const createBranches = store.createBranches.bind(store);
    store.createBranches = async (branches) => {
      const written = await createBranches(branches);
      if (branches[0]?.parentId === 'root' && !crashed) {
        crashed = true;
        await cancelRun(h.deps, { team: TEAM, runId: branches[0].runId });
        throw new HarnessCrash('crash after writing the children');
      }
      return written;
    };
    const agents = scriptAgents({
      Lead: { allowed: ['W'], responses: [{ next_action: 'parallel_invoke', agents: ['W', 'W'] }] },
      W: { responses: [{ next_action: 'final_response', content: 'w' }] },
    });
    try {
      const outcome = await h.run({ name: 'spawn-died', request: 'x', entry: 'Lead', agents });
      expect(crashed).toBe(true);
      expect(outcome.run.status).toBe('CANCELLED');
      const told = (id: string) => outcome.events.filter((e) => e.type === 'BranchCreated' && e.branchId === id).length;
      expect([told('root.0'), told('root.1')]).toEqual([1, 1]);
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'CANCELLED'],
        ['root.0', 'CANCELLED'],
        ['root.1', 'CANCELLED'],
      ]);
    } finally {
      h.stop();
    }
  });
});

describe("a failed iteration's task retried while its first attempt runs on", () => {
  it("the retry that loses the parent's failure to that attempt, which then dies, tells the parent's end", async () => {
    // Boss -> Mid -> [Worker, Worker], no failure tolerated. root.0.0's iteration fails: the
    // task's first attempt (A) ends it, settles Mid's sync point and is about to fail Mid when the
    // retry (B) starts (A died in a parallel call: the rest of it runs on, as the rest of a Lambda
    // invocation does when its environment is reused). A wins the write failing Mid and dies
    // before counting Mid's end on the root's sync point; B loses that write. Found by seed 81848.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let aPaused!: () => void;
    const aPausedGate = new Promise<void>((resolve) => (aPaused = resolve));
    let releaseA!: () => void;
    const releaseAGate = new Promise<void>((resolve) => (releaseA = resolve));
    let a: Promise<unknown> | undefined;
    let writes = 0;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      if (branchId === 'root.0' && to === 'FAILED') {
        if (++writes === 1) {
          aPaused();
          await releaseAGate;
        } else {
          releaseA();
          await a;
        }
      }
      return transitionBranch(scope, branchId, from, to, patch);
    };
    let crashed = false;
    const recordChildEnd = store.recordChildEnd.bind(store);
    store.recordChildEnd = async (scope, parentId, seq, childId, outcome) => {
      if (parentId === 'root' && childId === 'root.0' && !crashed) {
        crashed = true;
        throw new HarnessCrash("crash before counting root.0's end");
      }
      return recordChildEnd(scope, parentId, seq, childId, outcome);
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Mid'], responses: [{ next_action: 'parallel_invoke', agents: ['Mid'] }] },
      Mid: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker'] }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const { runId } = await startRun(h.deps, { team: TEAM, name: 'retry-beside-its-first-attempt', request: 'x', entry: 'Boss', agents, failurePolicy: { maxFailedFraction: 0 } });
      const scope: Scope = { team: TEAM, runId };
      // Boss spawns Mid, Mid spawns its Workers (whose steps stay queued).
      for (const id of ['root', 'root.0']) {
        const message = await h.queue.receive();
        expect(message.body.branchId).toBe(id);
        await executeStep(h.deps, message.body, { messageId: message.messageId, receiveCount: 1 });
      }
      const failure = { team: TEAM, runId, parentId: 'root.0', seq: 1, branchId: 'root.0.0', error: 'States.Timeout' };
      a = recordChildFailure(h.deps, { ...failure, retryCount: 0 }).catch((error: unknown) => error);
      await aPausedGate;
      await recordChildFailure(h.deps, { ...failure, retryCount: 1 });
      expect(await a).toBeInstanceOf(HarnessCrash);
      expect(crashed).toBe(true);
      expect((await store.getBranch(scope, 'root.0'))?.status).toBe('FAILED');
      // Mid's end is counted on the root's sync point (its Aggregate fails the root and the run).
      expect((await store.getSyncPoint(scope, 'root', 1))?.counters).toEqual({ total: 1, succeeded: 0, failed: 1, cancelled: 0 });
      expect(h.events.some((e) => e.type === 'BranchFailed' && e.branchId === 'root.0')).toBe(true);
    } finally {
      releaseA();
      h.stop();
    }
  });
});

describe('an early exit whose settlement crashed after cancelling a child', () => {
  // wait_for any: Fast completes while Slow is still in its agent call; Fast's step settles the
  // sync point (claims it) and cancels Slow. With `crash`, it dies right after writing Slow's end:
  // its message comes back, and the retry of the settlement must tell SyncPointReached again.
  async function earlyExit(crash: boolean) {
    const { invoker, agents, releaseSlow } = fastOrSlow();
    let crashed = false;
    const faults: Faults = {
      hit(point, key) {
        if (point === 'after-mark-complete' && key.endsWith('/root.1')) {
          releaseSlow();
          if (crash && !crashed) {
            crashed = true;
            throw new HarnessCrash(`crash at ${point} ${key}`);
          }
        }
      },
    };
    const h = createMemoryHarness({ invoker, faults });
    try {
      const outcome = await h.run({ name: 'early', request: 'x', entry: 'Boss', agents });
      expect(crashed).toBe(crash);
      expect(outcome.run.status).toBe('COMPLETED');
      expect(outcome.branches.map((b) => [b.id, b.status])).toEqual([
        ['root', 'COMPLETED'],
        ['root.0', 'COMPLETED'],
        ['root.1', 'CANCELLED'],
      ]);
      return outcome.events.filter((e) => e.type === 'SyncPointReached');
    } finally {
      releaseSlow();
      h.stop();
    }
  }

  it('the retry tells SyncPointReached again, with the same eventId and the final counts', async () => {
    const told = await earlyExit(true);
    expect(told.length).toBeGreaterThanOrEqual(1);
    expect(new Set(told.map((e) => e.eventId)).size).toBe(1);
    for (const e of told) expect(e.detail).toMatchObject({ outcome: 'resume', succeeded: 1, cancelled: 1, failed: 0 });
  });

  it('without the crash, tells it exactly once', async () => {
    expect(await earlyExit(false)).toHaveLength(1);
  });
});

describe("a failed iteration that fails the run and dies, while its child's step finds the end it counted", () => {
  it("the step leaves the settlement to the task, so nothing stops the fan-out before the task's retry tells the run's end", async () => {
    // One failure of two fails the root at once. root.0's iteration fails: the task (A) ends
    // root.0 and counts it. root.0's step message then finds root.0 ended by the task. It used to
    // settle the sync point too (claim it, cancel root.1, stop the fan-out) and, about to fail the
    // root, let A go on: A failed the root and the run and died before telling RunFailed, and the
    // stop had dropped A's retry: RunFailed never told. Found by seed 70308. Now the step, which
    // did not make the count, leaves the settlement to A, whose retry is kept.
    const store = new MemoryBranchStore();
    const h = createMemoryHarness({ store });
    let aCounted!: () => void;
    const aCountedGate = new Promise<void>((resolve) => (aCounted = resolve));
    let releaseA!: () => void;
    const releaseAGate = new Promise<void>((resolve) => (releaseA = resolve));
    let a: Promise<unknown> | undefined;
    let counts = 0;
    const recordChildEnd = store.recordChildEnd.bind(store);
    store.recordChildEnd = async (scope, parentId, seq, childId, outcome) => {
      const counted = await recordChildEnd(scope, parentId, seq, childId, outcome);
      if (childId === 'root.0' && ++counts === 1) {
        aCounted();
        await releaseAGate;
      }
      return counted;
    };
    let stepRuns = false;
    const transitionBranch = store.transitionBranch.bind(store);
    store.transitionBranch = async (scope, branchId, from, to, patch) => {
      if (branchId === 'root' && to === 'FAILED' && stepRuns) {
        stepRuns = false;
        releaseA();
        await a;
      }
      return transitionBranch(scope, branchId, from, to, patch);
    };
    let crashed = false;
    const finishRun = store.finishRun.bind(store);
    store.finishRun = async (scope, status, patch) => {
      const finished = await finishRun(scope, status, patch);
      if (finished && status === 'FAILED' && !crashed) {
        crashed = true;
        throw new HarnessCrash('crash after failing the run');
      }
      return finished;
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker'] }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const { runId } = await startRun(h.deps, { team: TEAM, name: 'step-covers-a-task', request: 'x', entry: 'Boss', agents, failurePolicy: { maxFailedFraction: 0 } });
      const scope: Scope = { team: TEAM, runId };
      const first = await h.queue.receive();
      await executeStep(h.deps, first.body, { messageId: first.messageId, receiveCount: 1 });
      const failure = { team: TEAM, runId, parentId: 'root', seq: 1, branchId: 'root.0', error: 'States.Timeout' };
      a = recordChildFailure(h.deps, { ...failure, retryCount: 0 }).catch((error: unknown) => error);
      await aCountedGate;
      const step = await h.queue.receive();
      expect(step.body.branchId).toBe('root.0');
      stepRuns = true;
      await executeStep(h.deps, step.body, { messageId: step.messageId, receiveCount: 1 });
      stepRuns = false;
      releaseA();
      expect(await a).toBeInstanceOf(HarnessCrash);
      // Step Functions retries the task only if its execution was not stopped.
      const execution = h.fanOut.describeRunning().find((e) => e.request.parentId === 'root');
      if (execution && !execution.stopped) await recordChildFailure(h.deps, { ...failure, retryCount: 1 });
      expect((await store.getRun(scope))?.status).toBe('FAILED');
      expect(h.events.filter((e) => e.type === 'RunFailed')).toHaveLength(1);
      // The task's retry stopped its fan-out last.
      expect(h.fanOut.describeRunning().filter((e) => e.request.parentId === 'root' && !e.stopped)).toEqual([]);
    } finally {
      releaseA();
      h.stop();
    }
  });
});

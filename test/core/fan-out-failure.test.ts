/**
 * RecordFanOutFailure: the fan-out's Map or Aggregate failed for good (their Catch in the state
 * machine). Nothing would settle the sync point any more, so the parent still waiting on it fails
 * the way every branch ends: its children are cancelled and the run is told.
 */
import { describe, expect, it } from 'vitest';
import { recordFanOutFailure } from '../../core/use-cases';
import type { AgentInvocation, AgentInvoker } from '../../core/ports';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { WorkMark } from '../../core/work-mark';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

const TEAM = 'team-a';

describe('a fan-out that failed for good', () => {
  it('fails the waiting parent (children cancelled, the run FAILED), idempotently, and leaves a parent that moved on alone', async () => {
    const script = new KindRouter({ script: new ScriptInvoker() });
    let failFanOut: ((call: AgentInvocation) => Promise<void>) | undefined;
    // While the child runs (the parent WAITING on sync point 1), its fan-out's execution fails.
    const invoker: AgentInvoker = {
      invoke: async (call) => {
        if (call.agentName === 'Worker' && failFanOut) await failFanOut(call);
        return script.invoke(call);
      },
    };
    const h = createMemoryHarness({ invoker });
    const seen: string[] = [];
    failFanOut = async (call) => {
      failFanOut = undefined;
      const input = { team: call.team, runId: call.runId, parentId: 'root', seq: 1, error: 'States.TaskFailed', cause: 'RecordChildFailure failed' };
      const root = await h.store.getBranch(call, 'root');
      seen.push(`${root?.status}@${root?.spawn?.seq}`);
      await recordFanOutFailure(h.deps, input);
      // A retry of the task (its Retry, or a duplicate): the same end, told again (its event again:
      // events are at-least-once), nothing else changes.
      await recordFanOutFailure(h.deps, input);
      // An execution of another sync point (an earlier one failing late) finds the parent elsewhere.
      await recordFanOutFailure(h.deps, { ...input, seq: 2 });
    };
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker'] }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const outcome = await h.run({ team: TEAM, name: 'fan-out-fails', request: 'x', entry: 'Boss', agents });
      expect(seen[0]).toBe('WAITING@1');
      expect(outcome.run.status).toBe('FAILED');
      const root = outcome.branches.find((b) => b.id === 'root')!;
      expect(root.status).toBe('FAILED');
      expect(root.error).toBe('the fan-out of sync point 1 failed: States.TaskFailed (RecordChildFailure failed)');
      expect(outcome.branches.filter((b) => b.parentId === 'root').map((b) => b.status)).toEqual(['CANCELLED']);
      expect(outcome.events.filter((e) => e.type === 'BranchFailed' && e.branchId === 'root')).toHaveLength(2);
      expect(outcome.events.filter((e) => e.type === 'RunFailed').length).toBeGreaterThanOrEqual(1);
    } finally {
      h.stop();
    }
  });

  it('tells again an end its Aggregate wrote (it is that task\'s Catch), and no other work\'s end', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker'] }, { next_action: 'final_response', content: 'ok' }] },
      Worker: { responses: [{ next_action: 'final_response', content: 'done' }] },
    });
    try {
      const outcome = await h.run({ team: TEAM, name: 'fan-out-catch', request: 'x', entry: 'Boss', agents });
      const scope = { team: TEAM, runId: outcome.run.runId };
      const input = { ...scope, parentId: 'root', seq: 1, error: 'States.TaskFailed' };
      const failedBy = async (by: WorkMark): Promise<number> => {
        // The root as the Aggregate (or other work) would have left it: FAILED under that work's mark.
        const root = (await h.store.getBranch(scope, 'root'))!;
        await h.store.updateBranch(scope, 'root', root.version, { status: 'FAILED', error: 'the aggregate failed', advancedBy: by });
        const before = h.events.length;
        await recordFanOutFailure(h.deps, input);
        return h.events.slice(before).filter((e) => e.type === 'BranchFailed' && e.branchId === 'root').length;
      };
      expect(await failedBy(WorkMark.aggregate('root', 1))).toBe(1);
      expect(await failedBy(WorkMark.settle('root', 1))).toBe(1);
      expect(await failedBy(WorkMark.cancel)).toBe(0);
      expect(await failedBy(WorkMark.settle('root', 2))).toBe(0);
    } finally {
      h.stop();
    }
  });
});

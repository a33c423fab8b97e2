/**
 * A spawn whose step died while opening it (a crash, a Lambda past its timeout) is opened again by
 * the step's redelivery: the retry writes only the children the first try did not write, so a
 * 10,000-child spawn cut short goes on from where it stopped instead of starting over.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { createMemoryHarness, HarnessCrash, scriptAgents } from '../support/memory-harness';

describe('a spawn opened again after its step died', () => {
  it('writes only the children the first try did not write', async () => {
    const written: string[] = [];
    class CountedStore extends MemoryBranchStore {
      override async createBranches(branches: Parameters<MemoryBranchStore['createBranches']>[0]): Promise<string[]> {
        written.push(...branches.map((b) => b.id).filter((id) => id !== 'root'));
        return super.createBranches(branches);
      }
    }
    let crashed = false;
    const h = createMemoryHarness({
      store: new CountedStore(),
      faults: {
        hit: (point) => {
          // The first try dies once every child is written (a step past its time, a crash): its message comes back.
          if (point === 'after-write-children' && !crashed) {
            crashed = true;
            throw new HarnessCrash('died after writing the children');
          }
        },
      },
    });
    const children = 30;
    const agents = scriptAgents({
      Boss: { allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: Array(children).fill('Worker') }, { next_action: 'final_response', content: '$input' }] },
      Worker: { responses: [{ next_action: 'final_response', content: { v: 1 } }] },
    });
    try {
      const outcome = await h.run({ name: 'spawn-retry', request: 'x', entry: 'Boss', agents, limits: { maxFanOut: children } });
      expect(crashed).toBe(true);
      expect(outcome.run.status).toBe('COMPLETED');
      expect((outcome.run.result as { child_count: number }).child_count).toBe(children);
      expect(written).toHaveLength(children);
    } finally {
      h.stop();
    }
  });
});

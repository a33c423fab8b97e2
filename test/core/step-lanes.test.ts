import { describe, expect, it } from 'vitest';
import type { StepMessage } from '../../core/ports';
import { LanedStepQueue, laneOf } from '../../core/step-lanes';

const scope = { team: 't', runId: 'r' };

describe('step lanes', () => {
  it('a first step starts, every later step continues', () => {
    expect(laneOf({ ...scope, branchId: 'root', step: 0 })).toBe('start');
    expect(laneOf({ ...scope, branchId: 'root.3', step: 0, taskToken: 'x' })).toBe('start');
    expect(laneOf({ ...scope, branchId: 'root', step: 2 })).toBe('continue');
  });

  it('sends each message to its lane, keeping the order within a lane', async () => {
    const sent: Record<string, StepMessage[]> = { start: [], continue: [] };
    const queue = new LanedStepQueue({
      start: { send: async (m) => void sent.start.push(...m) },
      continue: { send: async (m) => void sent.continue.push(...m) },
    });
    await queue.send([
      { ...scope, branchId: 'a', step: 0 },
      { ...scope, branchId: 'b', step: 1 },
      { ...scope, branchId: 'c', step: 0 },
      { ...scope, branchId: 'd', step: 4 },
    ]);
    expect(sent.start.map((m) => m.branchId)).toEqual(['a', 'c']);
    expect(sent.continue.map((m) => m.branchId)).toEqual(['b', 'd']);
  });
});

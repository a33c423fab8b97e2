import { describe, expect, it } from 'vitest';
import type { StepMessage, StepReceipt } from '../../core/ports';
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
      start: { send: async (m) => void sent.start.push(...m), redeliverAfter: async () => undefined },
      continue: { send: async (m) => void sent.continue.push(...m), redeliverAfter: async () => undefined },
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

  it("asks the queue of the message's lane for a backoff (the queue it was received from)", async () => {
    const asked: string[] = [];
    const lane = (name: string) => ({ send: async () => undefined, redeliverAfter: async (r: StepReceipt, s: number) => void asked.push(`${name} ${r.receiptHandle} ${s}`) });
    const queue = new LanedStepQueue({ start: lane('start'), continue: lane('continue') });
    await queue.redeliverAfter({ message: { ...scope, branchId: 'root.1', step: 0 }, receiptHandle: 'h1' }, 3);
    await queue.redeliverAfter({ message: { ...scope, branchId: 'root', step: 2 }, receiptHandle: 'h2' }, 7);
    expect(asked).toEqual(['start h1 3', 'continue h2 7']);
  });
});

/**
 * The rehearsal's queue clock (local/rehearsal/queue-clock.ts): SQS time runs 60 times as fast,
 * functions in real time. A failed message comes back when its visibility timeout, counted from
 * its receipt, runs out: in AWS the invocation took part of it (its function timeout is at most a
 * sixth of it), so what is left is the visibility less the invocation's (real) time, on the queue
 * clock. Not "what is left of the scaled timeout", which a long invocation had used up.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QueueClock } from '../../local/rehearsal/queue-clock';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('a failed message after an invocation held it', () => {
  const clock = new QueueClock(1 / 60);
  // The step queue's 1,800 s, as fauxqs has it on the queue clock.
  const visibility = clock.seconds(1800);

  async function failAfter(seconds: number): Promise<[string, number][]> {
    const changes: [string, number][] = [];
    const hold = clock.hold(['h'], visibility, async (h, s) => void changes.push([h, s]), (error) => {
      throw error;
    });
    vi.advanceTimersByTime(seconds * 1000);
    changes.length = 0; // the extensions while it ran
    await hold.release(['h']);
    return changes;
  }

  it('held 40 s (past the scaled 30 s visibility): it comes back after 1,760 s of queue time (29 s), not at once', async () => {
    expect(await failAfter(40)).toEqual([['h', 29]]);
  });

  it('held 10 s: after 1,790 s of queue time (30 s)', async () => {
    expect(await failAfter(10)).toEqual([['h', 30]]);
  });

  it('held as long as the function may run (300 s): after 1,500 s of queue time (25 s)', async () => {
    expect(await failAfter(300)).toEqual([['h', 25]]);
  });
});

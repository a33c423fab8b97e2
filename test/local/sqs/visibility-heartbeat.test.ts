import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProcessLag, VisibilityHeartbeat } from '../../../local/sqs/visibility-heartbeat';

describe('the visibility heartbeat of a step in progress', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('asks for the queue timeout on a quiet machine, beaten at half of it, until released', async () => {
    const heartbeat = new VisibilityHeartbeat(4);
    const asked: number[] = [];
    const held = heartbeat.hold(async (seconds) => void asked.push(seconds));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual([4]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(asked).toEqual([4, 4]);
    held.release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(asked).toEqual([4, 4]);
  });

  it('follows a starved process: a beat that fires late extends by more, so the next stall does not let the message lapse', async () => {
    const heartbeat = new VisibilityHeartbeat(2);
    let deadline = Date.now() + 2_000;
    const lapses: number[] = [];
    let beats = 0;
    const held = heartbeat.hold(async (seconds) => {
      beats++;
      if (Date.now() > deadline) lapses.push(Date.now() - deadline);
      deadline = Date.now() + seconds * 1000;
    });
    // The process gets no CPU for 6 s just before the first beat: its timers run late.
    await vi.advanceTimersByTimeAsync(900);
    vi.setSystemTime(Date.now() + 6_000);
    await vi.advanceTimersByTimeAsync(100);
    expect(heartbeat.extension()).toBeGreaterThanOrEqual(2 + 3 * 6);
    lapses.length = 0; // that first stall was longer than any extension asked before it
    // From now on a stall as long in each interval between beats never outlasts an extension.
    for (let i = 0; i < 5; i++) {
      const before = beats;
      vi.setSystemTime(Date.now() + 6_000);
      for (let tick = 0; tick < 1_000 && beats === before; tick++) await vi.advanceTimersByTimeAsync(100);
      expect(beats, 'the next beat came').toBe(before + 1);
    }
    expect(lapses).toEqual([]);
    held.release();
  });

  it('forgets old lateness: the extension comes back to the queue timeout on a quiet machine', () => {
    const lag = new ProcessLag();
    lag.observe(10_000);
    const heartbeat = new VisibilityHeartbeat(5, lag);
    expect(heartbeat.extension()).toBe(35);
    vi.setSystemTime(Date.now() + 10 * 60_000);
    expect(heartbeat.extension()).toBe(5);
  });
});

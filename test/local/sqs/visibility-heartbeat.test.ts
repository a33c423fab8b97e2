import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProcessLag, VisibilityHeartbeat } from '../../../local/sqs/visibility-heartbeat';

describe('the visibility heartbeat of a step in progress', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('asks for the queue timeout on a quiet machine, beaten at a third of it, until released', async () => {
    const heartbeat = new VisibilityHeartbeat(3);
    const asked: number[] = [];
    const held = heartbeat.hold(async (seconds) => void asked.push(seconds));
    await vi.advanceTimersByTimeAsync(999);
    expect(asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual([3]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(asked).toEqual([3, 3]);
    held.release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(asked).toEqual([3, 3]);
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
    await vi.advanceTimersByTimeAsync(500);
    vi.setSystemTime(Date.now() + 6_000);
    await vi.advanceTimersByTimeAsync(200);
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

  it('counts from the receive: 3 s of lateness (the message handed on late, then its timers late) never lets it lapse (5 s timeout)', async () => {
    const lapses: string[] = [];
    for (const delivery of [0, 1_000, 2_000, 3_000]) {
      const stall = 3_000 - delivery;
      for (let stallAt = delivery; stallAt <= 6_000; stallAt += 100) {
        const heartbeat = new VisibilityHeartbeat(5);
        // The queue starts the message's visibility when it answers the receive...
        const received = { at: Date.now(), seconds: heartbeat.extension() };
        let deadline = received.at + received.seconds * 1000;
        const start = received.at;
        // ...and the starved process hands the message to its step `delivery` ms later.
        vi.setSystemTime(start + delivery);
        const held = heartbeat.hold(async (seconds) => {
          if (Date.now() > deadline) lapses.push(`handed on after ${delivery} ms, stalled ${stall} ms at ${stallAt} ms: lapsed ${Date.now() - deadline} ms`);
          deadline = Date.now() + seconds * 1000;
        }, received);
        let stalled = false;
        while (Date.now() < start + 20_000) {
          if (!stalled && Date.now() >= start + stallAt) {
            stalled = true;
            vi.setSystemTime(Date.now() + stall);
          }
          await vi.advanceTimersByTimeAsync(100);
        }
        if (Date.now() > deadline) lapses.push(`handed on after ${delivery} ms, stalled ${stall} ms at ${stallAt} ms: lapsed while held`);
        held.release();
      }
    }
    expect(lapses).toEqual([]);
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

/** The adapters' one retry loop: attempts are bounded, waits follow the backoff or the attempt's own delay. */
import { describe, expect, it } from 'vitest';
import { again, backoffDelay, withRetries } from '../../adapters/retry';

describe('withRetries', () => {
  const recording = () => {
    const waits: number[] = [];
    return { waits, sleep: async (ms: number) => void waits.push(ms) };
  };

  it('returns the first value and waits the backoff between attempts (random 1: the full ceiling)', async () => {
    const { waits, sleep } = recording();
    const seen: [number, boolean][] = [];
    const value = await withRetries({ attempts: 4, baseMs: 100, maxMs: 250, random: () => 1, sleep }, async (n, last) => {
      seen.push([n, last]);
      return n < 4 ? again() : 'done';
    });
    expect(value).toBe('done');
    expect(seen).toEqual([[1, false], [2, false], [3, false], [4, true]]);
    expect(waits).toEqual([100, 200, 250]);
  });

  it('uses the delay an attempt asks for (e.g. Retry-After), including none', async () => {
    const { waits, sleep } = recording();
    await withRetries({ attempts: 3, baseMs: 100, maxMs: 1000, sleep }, async (n) => (n === 1 ? again(1234) : n === 2 ? again(0) : n));
    expect(waits).toEqual([1234, 0]);
  });

  it('passes the attempt error through and never calls past the last attempt', async () => {
    let calls = 0;
    const failing = withRetries({ attempts: 2, baseMs: 1, maxMs: 1, sleep: async () => {} }, async (_n, last) => {
      calls++;
      if (last) throw new Error('gave up');
      return again();
    });
    await expect(failing).rejects.toThrow('gave up');
    expect(calls).toBe(2);
  });

  it('refuses an attempt that asks for more after the last one', async () => {
    await expect(withRetries({ attempts: 1, baseMs: 1, maxMs: 1 }, async () => again())).rejects.toThrow(/after the last of 1 attempts/);
  });

  it('backoffDelay keeps half of the capped exponential fixed', () => {
    expect(backoffDelay(1, 100, 1000, () => 0)).toBe(50);
    expect(backoffDelay(3, 100, 1000, () => 0.5)).toBe(300);
    expect(backoffDelay(10, 100, 1000, () => 1)).toBe(1000);
  });
});

/** The signal an agent call gets under a run's time budget (withRunDeadline). */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withRunDeadline } from '../../core/use-cases/budget-gate';
import { budgetUsage } from '../../core/run-budget';
import type { RunRecord } from '../../core/model';
import type { SpawnerDeps } from '../../core/use-cases';

const NOW = 1_700_000_000_000;
const deps = { clock: { now: () => NOW } } as unknown as SpawnerDeps;
/** A run with `left` seconds of its maxRunSeconds budget left. */
const runWith = (left: number | undefined) =>
  ({ createdAt: NOW, limits: left === undefined ? {} : { maxRunSeconds: left } }) as unknown as RunRecord;

describe('withRunDeadline', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: NOW });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts the call when the time budget runs out, and says that was the reason', () => {
    const branch = new AbortController();
    const deadline = withRunDeadline(deps, runWith(10), branch.signal);
    vi.advanceTimersByTime(9_999);
    expect(deadline.signal?.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(deadline.signal?.aborted).toBe(true);
    expect(deadline.expired()).toBe(true);
    deadline.done();
  });

  it("aborts the call with the branch's signal, which is not the deadline", () => {
    const branch = new AbortController();
    const deadline = withRunDeadline(deps, runWith(10), branch.signal);
    branch.abort(new Error('cancelled'));
    expect(deadline.signal?.aborted).toBe(true);
    expect(deadline.signal?.reason).toEqual(new Error('cancelled'));
    expect(deadline.expired()).toBe(false);
    deadline.done();
  });

  it('once done (the call is over), holds no timer and no listener on the branch signal', () => {
    const branch = new AbortController();
    const deadline = withRunDeadline(deps, runWith(10), branch.signal);
    expect(vi.getTimerCount()).toBe(1);
    expect(getEventListeners(branch.signal, 'abort')).toHaveLength(1);
    deadline.done();
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(branch.signal, 'abort')).toHaveLength(0);
    vi.advanceTimersByTime(20_000);
    branch.abort();
    expect(deadline.signal?.aborted).toBe(false);
    expect(deadline.expired()).toBe(false);
  });

  it('is the branch signal itself when the run has no time budget', () => {
    const branch = new AbortController();
    const deadline = withRunDeadline(deps, runWith(undefined), branch.signal);
    expect(deadline.signal).toBe(branch.signal);
    deadline.done();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('budgetUsage', () => {
  it("after a budget end the tokens used are the run's counter (calls whose answers were dropped spent them too)", () => {
    const run = { createdAt: NOW, limits: { maxRunTokens: 100 }, usedTokens: 480 } as unknown as RunRecord;
    expect(budgetUsage(run, { inputTokens: 100, outputTokens: 20 }, NOW)?.maxRunTokens).toEqual({ limit: 100, used: 480 });
    // A run stored before the counter existed: the branches' sum.
    const old = { createdAt: NOW, limits: { maxRunTokens: 100 } } as unknown as RunRecord;
    expect(budgetUsage(old, { inputTokens: 100, outputTokens: 20 }, NOW)?.maxRunTokens).toEqual({ limit: 100, used: 120 });
  });
});

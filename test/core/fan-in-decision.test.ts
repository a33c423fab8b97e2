import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { completionReason, decideFanIn, fanInRuleOf, type FanInDecision } from '../../core/fan-in-decision';
import type { ChildOutcome, FanInRule, SyncCounters } from '../../core/model';
import type { WaitFor } from '../../core/protocol';

const counters = (total: number, succeeded = 0, failed = 0, cancelled = 0): SyncCounters => ({ total, succeeded, failed, cancelled });
const rule = (waitFor: WaitFor, maxFailedFraction: number, more: Partial<FanInRule> = {}): FanInRule => ({ waitFor, maxFailedFraction, ...more });

describe('decideFanIn', () => {
  it('waits while children are pending under wait_for all', () => {
    expect(decideFanIn(counters(3, 2), rule('all', 0.5))).toEqual({ action: 'wait' });
  });

  it('resumes when all ended, with failures tolerated under the threshold', () => {
    expect(decideFanIn(counters(3, 2, 1), rule('all', 0.5))).toMatchObject({ action: 'resume', cancelRest: false });
  });

  it('fails as soon as failures exceed the fraction, cancelling the rest', () => {
    expect(decideFanIn(counters(4, 0, 3), rule('all', 0.5))).toMatchObject({ action: 'fail', cancelRest: true });
    expect(decideFanIn(counters(4, 1, 2), rule('all', 0.5))).toEqual({ action: 'wait' }); // 2/4 is not more than half
  });

  it('any resumes on the first success and cancels the rest', () => {
    expect(decideFanIn(counters(3, 1), rule('any', 0.5))).toMatchObject({ action: 'resume', cancelRest: true });
  });

  it('a quorum resumes once k succeeded', () => {
    expect(decideFanIn(counters(5, 1), rule(2, 0.9))).toEqual({ action: 'wait' });
    expect(decideFanIn(counters(5, 2), rule(2, 0.9))).toMatchObject({ action: 'resume', cancelRest: true });
  });

  it('fails when everything ended and the quorum was not reached', () => {
    expect(decideFanIn(counters(3, 1, 2), rule(2, 1))).toMatchObject({ action: 'fail', reason: expect.stringMatching(/needed 2/) });
  });
});

describe('per-fan-out options', () => {
  it('a tolerated count is used instead of the fraction: more failures than it fail the parent at once', () => {
    expect(decideFanIn(counters(10, 0, 3), rule('all', 0.5, { toleratedFailures: 3 }))).toEqual({ action: 'wait' });
    expect(decideFanIn(counters(10, 0, 4), rule('all', 0.5, { toleratedFailures: 3 }))).toMatchObject({
      action: 'fail',
      cancelRest: true,
      reason: '4 of 10 children failed (more than the 3 tolerated)',
    });
    // 0 tolerated: the first failure decides, even under a run-wide fraction of 1.
    expect(decideFanIn(counters(4, 1, 1), rule('all', 1, { toleratedFailures: 0 }))).toMatchObject({ action: 'fail' });
  });

  it('on_failure continue resumes where fail would fail, cancelling the rest the same way', () => {
    const past = counters(10, 2, 4);
    const failing = decideFanIn(past, rule('all', 0.5, { toleratedFailures: 3 }));
    const going = decideFanIn(past, rule('all', 0.5, { toleratedFailures: 3, onFailure: 'continue' }));
    expect(failing).toMatchObject({ action: 'fail', cancelRest: true });
    expect(going).toEqual({ ...failing, action: 'resume' });
    // A quorum not reached once everything ended: the parent decides too.
    expect(decideFanIn(counters(3, 1, 2), rule(2, 1, { onFailure: 'continue' }))).toMatchObject({ action: 'resume', cancelRest: false });
  });

  it('a completion function decides instead of wait_for, and its error fails the parent', () => {
    const fn = rule('all', 1, { completeFn: 'aOrBoth' });
    expect(decideFanIn(counters(3, 1), fn, { met: false })).toEqual({ action: 'wait' });
    expect(decideFanIn(counters(3, 1), fn, { met: true })).toMatchObject({ action: 'resume', cancelRest: true });
    expect(decideFanIn(counters(3, 1, 2), fn, { met: true })).toMatchObject({ action: 'resume', cancelRest: false });
    expect(decideFanIn(counters(3, 1, 2), fn, { met: false })).toMatchObject({ action: 'fail', reason: expect.stringMatching(/never said done/) });
    expect(decideFanIn(counters(3, 1, 2), { ...fn, onFailure: 'continue' }, { met: false })).toMatchObject({ action: 'resume' });
    expect(decideFanIn(counters(3, 1), fn, { error: 'it threw' })).toEqual({ action: 'fail', cancelRest: true, reason: 'it threw' });
    // Tolerance still comes first.
    expect(decideFanIn(counters(3, 0, 2), { ...fn, toleratedFailures: 1 }, { met: true })).toMatchObject({ action: 'fail' });
    expect(() => decideFanIn(counters(3, 1), fn)).toThrow(/was not asked/);
  });

  it('the completion reason is read from the final children alone', () => {
    expect(completionReason(counters(10, 10), rule('all', 0.5))).toBe('ALL_COMPLETED');
    expect(completionReason(counters(10, 7, 3), rule('all', 0.5, { toleratedFailures: 3 }))).toBe('ALL_COMPLETED');
    expect(completionReason(counters(10, 3, 0, 7), rule(3, 0.5))).toBe('MIN_SUCCESSFUL_REACHED');
    expect(completionReason(counters(10, 2, 4, 4), rule('all', 0.5, { toleratedFailures: 3, onFailure: 'continue' }))).toBe('FAILURE_TOLERANCE_EXCEEDED');
    expect(completionReason(counters(3, 1, 2), rule(2, 1, { onFailure: 'continue' }))).toBe('FAILURE_TOLERANCE_EXCEEDED');
    const fn = rule('all', 1, { completeFn: 'f' });
    expect(completionReason(counters(3, 1, 0, 2), fn, { met: true })).toBe('MIN_SUCCESSFUL_REACHED');
    expect(completionReason(counters(3, 1, 2), fn, { met: false })).toBe('FAILURE_TOLERANCE_EXCEEDED');
  });

  it("a spawn's options go over the run's failure policy; an agent aggregator's sync point tolerates nothing", () => {
    const policy = { maxFailedFraction: 0.5 };
    expect(fanInRuleOf({ waitFor: 'all' }, policy)).toEqual({ waitFor: 'all', maxFailedFraction: 0.5 });
    expect(fanInRuleOf({ waitFor: 2, options: { toleratedFailures: { fraction: 0.3 }, onFailure: 'continue' } }, policy)).toEqual({
      waitFor: 2,
      maxFailedFraction: 0.3,
      onFailure: 'continue',
    });
    expect(fanInRuleOf({ waitFor: 'all', options: { toleratedFailures: { count: 3 }, onFailure: 'fail', completeFn: 'f', maxConcurrency: 2 } }, policy)).toEqual({
      waitFor: 'all',
      maxFailedFraction: 0.5,
      toleratedFailures: 3,
      completeFn: 'f',
    });
    expect(fanInRuleOf({ waitFor: 'all', aggregationOf: 1, options: { onFailure: 'continue' } }, policy)).toEqual({ waitFor: 'all', maxFailedFraction: 0 });
  });
});

/** Replays a sequence of child ends through the decision, stopping at the first non-wait. */
function replay(outcomes: ChildOutcome[], waitFor: WaitFor, fraction: number, duplicates: number[] = []): FanInDecision {
  const c = counters(outcomes.length);
  const seen = new Set<number>();
  const order = outcomes.flatMap((o, i) => (duplicates.includes(i) ? [[i, o], [i, o]] : [[i, o]])) as [number, ChildOutcome][];
  for (const [i, outcome] of order) {
    if (seen.has(i)) continue; // a repeated report never changes a count (the store's contract)
    seen.add(i);
    c[outcome]++;
    const d = decideFanIn(c, rule(waitFor, fraction));
    if (d.action !== 'wait') return d;
  }
  return decideFanIn(c, rule(waitFor, fraction));
}

describe('properties', () => {
  const outcomes = fc.array(fc.constantFrom<ChildOutcome>('succeeded', 'failed'), { minLength: 1, maxLength: 30 });
  const fraction = fc.constantFrom(0, 0.25, 0.5, 0.75, 1);

  it('under wait_for all the decision is the same for any order of completions', () => {
    fc.assert(
      fc.property(outcomes, fraction, fc.func(fc.integer()), (list, frac, key) => {
        const shuffled = [...list].sort((a, b) => key(a) - key(b) || 0);
        const reversed = [...list].reverse();
        const a = replay(list, 'all', frac).action;
        expect(replay(shuffled, 'all', frac).action).toBe(a);
        expect(replay(reversed, 'all', frac).action).toBe(a);
      }),
      { numRuns: 500 },
    );
  });

  it('for every wait_for, the final decision on the full counts does not depend on order', () => {
    fc.assert(
      fc.property(outcomes, fraction, fc.constantFrom<WaitFor>('all', 'any', 1, 2, 3), (list, frac, waitFor) => {
        const total = counters(list.length);
        for (const o of list) total[o]++;
        const reversed = counters(list.length);
        for (const o of [...list].reverse()) reversed[o]++;
        expect(decideFanIn(total, rule(waitFor, frac))).toEqual(decideFanIn(reversed, rule(waitFor, frac)));
      }),
    );
  });

  it('duplicated completion reports never change the decision', () => {
    fc.assert(
      fc.property(outcomes, fraction, fc.array(fc.nat(29)), (list, frac, dups) => {
        expect(replay(list, 'all', frac, dups)).toEqual(replay(list, 'all', frac));
        expect(replay(list, 'any', frac, dups)).toEqual(replay(list, 'any', frac));
      }),
    );
  });

  it('never resumes early under wait_for all, never waits once everything ended', () => {
    fc.assert(
      fc.property(fc.nat(20), fc.nat(20), fc.nat(20), fc.nat(5), fraction, (s, f, c, pending, frac) => {
        const total = s + f + c + pending;
        fc.pre(total > 0);
        const d = decideFanIn(counters(total, s, f, c), rule('all', frac));
        if (pending === 0) expect(d.action).not.toBe('wait');
        if (d.action === 'resume') expect(pending).toBe(0);
      }),
    );
  });

  it('on_failure continue changes only fail into resume, for any counts, wait_for and tolerance', () => {
    fc.assert(
      fc.property(fc.nat(10), fc.nat(10), fc.nat(3), fc.nat(5), fc.constantFrom<WaitFor>('all', 'any', 1, 2), fc.option(fc.nat(6)), fraction, (s, f, c, pending, waitFor, count, frac) => {
        const total = s + f + c + pending;
        fc.pre(total > 0);
        const base = rule(waitFor, frac, count === null ? {} : { toleratedFailures: count });
        const failing = decideFanIn(counters(total, s, f, c), base);
        const going = decideFanIn(counters(total, s, f, c), { ...base, onFailure: 'continue' });
        expect(going).toEqual(failing.action === 'fail' ? { ...failing, action: 'resume' } : failing);
      }),
    );
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideFanIn, type FanInDecision } from '../../core/fan-in-decision';
import type { ChildOutcome, SyncCounters, WaitFor } from '../../core/model';

const counters = (total: number, succeeded = 0, failed = 0, cancelled = 0): SyncCounters => ({ total, succeeded, failed, cancelled });

describe('decideFanIn', () => {
  it('waits while children are pending under wait_for all', () => {
    expect(decideFanIn(counters(3, 2), 'all', 0.5)).toEqual({ action: 'wait' });
  });

  it('resumes when all ended, with failures tolerated under the threshold', () => {
    expect(decideFanIn(counters(3, 2, 1), 'all', 0.5)).toMatchObject({ action: 'resume', cancelRest: false });
  });

  it('fails as soon as failures exceed the fraction, cancelling the rest', () => {
    expect(decideFanIn(counters(4, 0, 3), 'all', 0.5)).toMatchObject({ action: 'fail', cancelRest: true });
    expect(decideFanIn(counters(4, 1, 2), 'all', 0.5)).toEqual({ action: 'wait' }); // 2/4 is not more than half
  });

  it('any resumes on the first success and cancels the rest', () => {
    expect(decideFanIn(counters(3, 1), 'any', 0.5)).toMatchObject({ action: 'resume', cancelRest: true });
  });

  it('a quorum resumes once k succeeded', () => {
    expect(decideFanIn(counters(5, 1), 2, 0.9)).toEqual({ action: 'wait' });
    expect(decideFanIn(counters(5, 2), 2, 0.9)).toMatchObject({ action: 'resume', cancelRest: true });
  });

  it('fails when everything ended and the quorum was not reached', () => {
    expect(decideFanIn(counters(3, 1, 2), 2, 1)).toMatchObject({ action: 'fail', reason: expect.stringMatching(/needed 2/) });
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
    const d = decideFanIn(c, waitFor, fraction);
    if (d.action !== 'wait') return d;
  }
  return decideFanIn(c, waitFor, fraction);
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
        expect(decideFanIn(total, waitFor, frac)).toEqual(decideFanIn(reversed, waitFor, frac));
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
        const d = decideFanIn(counters(total, s, f, c), 'all', frac);
        if (pending === 0) expect(d.action).not.toBe('wait');
        if (d.action === 'resume') expect(pending).toBe(0);
      }),
    );
  });
});

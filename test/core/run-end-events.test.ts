/** A run's end: the events that tell it, in one list (core/events.ts), and what narrowing them gives. */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { EVENT_TYPES, isEventOf, isRunEnd, runEndEvent, type LifecycleEvent, type RunEndDetail } from '../../core/events';
import { anEvent } from '../support/events';

describe('run ends', () => {
  it('isRunEnd holds for RunCompleted, RunFailed and RunCancelled only', () => {
    expect(EVENT_TYPES.filter((type) => isRunEnd({ type }))).toEqual(['RunCompleted', 'RunFailed', 'RunCancelled']);
  });

  it('runEndEvent names the event of each end status; a run still RUNNING when its end is told failed', () => {
    expect([runEndEvent('COMPLETED'), runEndEvent('FAILED'), runEndEvent('CANCELLED'), runEndEvent('RUNNING')]).toEqual(['RunCompleted', 'RunFailed', 'RunCancelled', 'RunFailed']);
  });

  it('an event narrowed by its type has the detail of that type', () => {
    const events: LifecycleEvent[] = [anEvent('RunFailed', { detail: { error: 'boom' } }), anEvent('BranchWaitingForCallback', { detail: { timeoutAt: 5 } })];
    const ends = events.filter(isRunEnd);
    expectTypeOf(ends[0].detail).toEqualTypeOf<RunEndDetail>();
    expect(ends.map((e) => e.detail.error)).toEqual(['boom']);
    const waits = events.filter((e) => isEventOf(e, 'BranchWaitingForCallback'));
    expectTypeOf(waits[0].detail.timeoutAt).toEqualTypeOf<number>();
    expect(waits.map((e) => e.detail.timeoutAt)).toEqual([5]);
  });
});

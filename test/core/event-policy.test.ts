/** Which lifecycle events go to the team's bus: run-level always, per-branch by the team's setting. */
import { describe, expect, it } from 'vitest';
import { branchEvent, runEvent, syncPointEvent, type LifecycleEvent } from '../../core/events';
import { detailOf, syncPointDetail } from '../support/events';
import { busPublisher, eventPolicyProblem, sendsToBus, SEND_ALL_EVENTS, type EventPolicy } from '../../core/event-policy';

const scope = { team: 't', runId: 'r1' };
const branch = (id: string) => ({ ...scope, id, parentId: 'root', agent: 'A', type: 'SIMPLE' as const, depth: 1, status: 'COMPLETED' as const });
const runStarted = runEvent('RunStarted', scope, 1, detailOf('RunStarted'));
const runEnded = runEvent('RunCompleted', scope, 2, detailOf('RunCompleted'));
const created = (id: string) => branchEvent('BranchCreated', branch(id), 1);
const completed = (id: string) => branchEvent('BranchCompleted', branch(id), 2);
const syncPoint = syncPointEvent(scope, 'root', 1, 3, syncPointDetail());

const sent = (events: LifecycleEvent[], policy: EventPolicy) => events.filter((e) => sendsToBus(e, policy)).map((e) => `${e.type}:${e.branchId ?? ''}`);

describe('the event policy', () => {
  it('sends every event by default', () => {
    const all = [runStarted, created('root.0'), syncPoint, completed('root.0'), runEnded];
    expect(sent(all, SEND_ALL_EVENTS)).toHaveLength(5);
  });

  it('keeps run-level events whatever the setting; `ends` keeps only branch ends; `off` none of a branch', () => {
    const all = [runStarted, created('root.0'), syncPoint, completed('root.0'), runEnded];
    expect(sent(all, { branches: 'ends', sample: 1 })).toEqual(['RunStarted:', 'BranchCompleted:root.0', 'RunCompleted:']);
    expect(sent(all, { branches: 'off', sample: 1 })).toEqual(['RunStarted:', 'RunCompleted:']);
  });

  it('samples by branch: the same branches every time, all of a sampled branch\'s events, about the fraction asked', () => {
    const policy = { branches: 'all' as const, sample: 0.2 };
    const ids = Array.from({ length: 5000 }, (_, i) => `root.${i}`);
    const chosen = ids.filter((id) => sendsToBus(created(id), policy));
    expect(ids.filter((id) => sendsToBus(created(id), policy))).toEqual(chosen);
    for (const id of ids) expect(sendsToBus(completed(id), policy)).toBe(chosen.includes(id));
    expect(chosen.length).toBeGreaterThan(900);
    expect(chosen.length).toBeLessThan(1100);
    expect(sendsToBus(runStarted, { branches: 'all', sample: 0.0001 })).toBe(true);
  });

  it('the bus publisher passes on only what the policy sends, and nothing when nothing is left', async () => {
    const calls: LifecycleEvent[][] = [];
    const publisher = busPublisher({ publish: async (events) => void calls.push(events) }, { branches: 'off', sample: 1 });
    await publisher.publish([created('root.0'), completed('root.0')]);
    await publisher.publish([runStarted, created('root.1')]);
    expect(calls).toEqual([[runStarted]]);
  });

  it('names the bad field of a setting from outside', () => {
    expect(eventPolicyProblem({ branches: 'ends', sample: 0.5 })).toBeUndefined();
    expect(eventPolicyProblem({ branches: 'most', sample: 0.5 })).toMatchObject({ field: 'branches' });
    expect(eventPolicyProblem({ branches: 'all', sample: 0 })).toMatchObject({ field: 'sample' });
    expect(eventPolicyProblem({ branches: 'all', sample: '1' })).toMatchObject({ field: 'sample' });
  });
});

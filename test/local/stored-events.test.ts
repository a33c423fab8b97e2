/**
 * The events route reads the run's stored stream: every event the bus carried, SyncPointReached
 * included, in the order it was stored, and an event is there as soon as it is published (no
 * hold: the stream was once worked out from the records and held back the last 2 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { parseScenario } from '../../core/scenario';
import { runInputOf } from '../../core/use-cases/start-run';
import { runEventsAfter } from '../../core/use-cases/run-events';
import { LocalRuntime } from '../../local/runtime';

let runtime: LocalRuntime;
beforeAll(async () => {
  runtime = await LocalRuntime.start({});
});
afterAll(async () => {
  await runtime?.close();
});

const scope = (runId: string) => ({ team: runtime.team, runId });

async function allEvents(runId: string): Promise<LifecycleEvent[]> {
  const events: LifecycleEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await runEventsAfter(runtime.deps, scope(runId), after, 3);
    events.push(...page.events);
    after = page.cursor ?? undefined;
    if (page.done) return events;
  }
}

describe('stored lifecycle events', () => {
  it('holds what the bus carried, SyncPointReached included, in order, paged by the cursor', async () => {
    const published: LifecycleEvent[] = [];
    const stop = runtime.bus.subscribe((e) => void published.push(e));
    const runId = await runtime.startRun(
      runInputOf(
        parseScenario({
          name: 'fan', entry: 'Root', request: 'x',
          agents: {
            Root: { kind: 'script', allowed: ['Leaf'], responses: [{ next_action: 'parallel_invoke', agents: ['Leaf', 'Leaf'] }, { next_action: 'final_response', content: 'done' }] },
            Leaf: { kind: 'script', responses: [{ next_action: 'final_response', content: 'leaf' }] },
          },
        }, 'fan'),
      ),
    );
    await runtime.waitForRun(runId);
    await runtime.settle();
    stop();
    const stored = await allEvents(runId);
    const ofRun = published.filter((e) => e.runId === runId && e.type !== 'ToolCalled');
    expect(stored.map((e) => e.eventId).sort()).toEqual(ofRun.map((e) => e.eventId).sort());
    expect(stored.filter((e) => e.type === 'SyncPointReached')).toHaveLength(1);
    expect(stored[0].type).toBe('RunStarted');
    expect(stored.findIndex((e) => e.type === 'SyncPointReached')).toBeLessThan(stored.findIndex((e) => e.type === 'RunCompleted'));
  });

  it('gives an event of a running run as soon as it is published', async () => {
    const created = new Promise<void>((resolve) => {
      const stop = runtime.bus.subscribe((e) => {
        if (e.type === 'BranchCreated' && e.branchId === 'root.1') {
          stop();
          resolve();
        }
      });
    });
    const runId = await runtime.startRun(
      runInputOf(
        parseScenario({
          name: 'hang', entry: 'Root', request: 'x',
          agents: {
            Root: { kind: 'script', allowed: ['Stuck'], responses: [{ next_action: 'parallel_invoke', agents: ['Stuck', 'Stuck'] }, { next_action: 'final_response', content: 'never' }] },
            Stuck: { kind: 'script', responses: [{ $hang: true, next_action: 'final_response', content: 'never' }] },
          },
        }, 'hang'),
      ),
    );
    await created;
    const page = await runEventsAfter(runtime.deps, scope(runId), undefined);
    expect(page.events.map((e) => `${e.type} ${e.branchId ?? ''}`)).toEqual(expect.arrayContaining(['RunStarted ', 'BranchCreated root', 'BranchCreated root.1']));
    expect(page.done).toBe(false);
    await runtime.cancel(runId);
    await runtime.waitForRun(runId);
  });
});

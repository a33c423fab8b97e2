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

async function allEvents(runId: string, on = runtime): Promise<LifecycleEvent[]> {
  const events: LifecycleEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await runEventsAfter(on.deps, { team: on.team, runId }, after, 3);
    events.push(...page.events);
    after = page.cursor ?? undefined;
    if (page.done) return events;
  }
}

const fanScenario = () =>
  runInputOf(
    parseScenario({
      name: 'fan', entry: 'Root', request: 'x',
      agents: {
        Root: { kind: 'script', allowed: ['Leaf'], responses: [{ next_action: 'parallel_invoke', agents: ['Leaf', 'Leaf'] }, { next_action: 'final_response', content: 'done' }] },
        Leaf: { kind: 'script', responses: [{ next_action: 'final_response', content: 'leaf' }] },
      },
    }, 'fan'),
  );

describe('stored lifecycle events', () => {
  it('holds what the bus carried, SyncPointReached included, in order, paged by the cursor', async () => {
    const published: LifecycleEvent[] = [];
    const stop = runtime.bus.subscribe((e) => void published.push(e));
    const runId = await runtime.startRun(fanScenario());
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

  it("keeps what the team's event setting sends to its bus: only branch ends, or only the run's events", async () => {
    const kept: Record<string, string[]> = {};
    for (const branches of ['ends', 'off'] as const) {
      const other = await LocalRuntime.start({ events: { branches, sample: 1 } });
      try {
        const published: LifecycleEvent[] = [];
        const stop = other.bus.subscribe((e) => void published.push(e));
        const runId = await other.startRun(fanScenario());
        await other.waitForRun(runId);
        await other.settle();
        stop();
        kept[branches] = (await allEvents(runId, other)).map((e) => `${e.type} ${e.branchId ?? ''}`.trim()).sort();
        // The local bus (trace, hooks) still gets every event.
        expect(published.filter((e) => e.runId === runId).map((e) => e.type)).toEqual(expect.arrayContaining(['BranchCreated', 'SyncPointReached']));
      } finally {
        await other.close();
      }
    }
    expect(kept.ends).toEqual(['BranchCompleted root', 'BranchCompleted root.0', 'BranchCompleted root.1', 'RunCompleted', 'RunStarted']);
    expect(kept.off).toEqual(['RunCompleted', 'RunStarted']);
  });
});

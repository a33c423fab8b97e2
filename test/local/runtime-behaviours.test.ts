/**
 * Every behaviour of the protocol, fan-in and limits end to end on the embedded engines: the real handlers,
 * dynalite, fauxqs and the fan-out ASL in aws-local-stepfunctions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { LocalRuntime } from '../../local/runtime';
import { behaviours, checkInvariants } from '../support/behaviours';

const aggregators = Object.assign({}, ...behaviours.map((b) => b.aggregators ?? {}));

describe.each([
  { delivery: 'single delivery', duplicateDelivery: false },
  { delivery: 'every message delivered twice', duplicateDelivery: true },
])('embedded engines ($delivery)', ({ duplicateDelivery }) => {
  let runtime: LocalRuntime;
  const events: LifecycleEvent[] = [];

  beforeAll(async () => {
    runtime = await LocalRuntime.start({ aggregators, chaos: { duplicateDelivery }, visibilityTimeoutSeconds: 30 });
    runtime.bus.subscribe((e) => void events.push(e));
  });
  afterAll(async () => {
    await runtime?.close();
  });

  for (const behaviour of behaviours) {
    it(behaviour.name, async () => {
      const runId = await runtime.startRun(behaviour.run);
      const run = await runtime.waitForRun(runId);
      const branches = await runtime.deps.store.listBranches({ team: runtime.team, runId });
      const outcome = { run, branches, events: events.filter((e) => e.runId === runId) };
      behaviour.check(outcome);
      checkInvariants(outcome);
      expect(runtime.errors).toEqual([]);
    });
  }
});

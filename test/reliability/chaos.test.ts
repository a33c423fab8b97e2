/**
 * Fault injection: every example scenario (the llm one needs a model server) under every fault
 * ends in the same terminal state with the same result as its clean run, with exact counters
 * and nothing lost (the invariants are in ./support.ts).
 *
 * Faults: duplicate delivery (every message sent twice), a crash at each crash point (each piece
 * of work crashes once there, see local/chaos.ts), and flaky agents (outcomes change by design:
 * checked against the invariants only). RELIABILITY_LONG=1 adds duplicate delivery combined
 * with each crash point, and more flaky seeds. RELIABILITY_TIER=journal|engines runs it on that
 * engine tier instead of the default memory tier.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { CRASH_POINTS, type ChaosOptions } from '../../local/chaos';
import { LocalRuntime } from '../../local/runtime';
import { checkRunInvariants, exampleScenarios, recordEvents, runToEnd, type RunOutcome } from './support';
import { report } from '../support/report';
import { onTier } from '../support/tiers';
import type { EngineTier } from '../../local/embedded-engines';

const LONG = process.env.RELIABILITY_LONG === '1';
const TIER = (process.env.RELIABILITY_TIER ?? 'memory') as EngineTier;
const scenarios = await exampleScenarios();
const aggregators = Object.assign({}, ...scenarios.map((s) => s.aggregators));

interface Fault {
  name: string;
  chaos: ChaosOptions;
  /** Compare with the clean run (false: the fault changes outcomes by design; invariants only). */
  comparable: boolean;
}

const flaky = (seed: number, p = 0.2): Fault => ({ name: `agent-flaky=${p} seed ${seed}`, chaos: { agentFlaky: p, seed }, comparable: false });

const FAULTS: Fault[] = [
  { name: 'duplicate-delivery', chaos: { duplicateDelivery: true }, comparable: true },
  ...CRASH_POINTS.map((point) => ({ name: `crash=${point}`, chaos: { crash: [point] }, comparable: true })),
  flaky(7),
  ...(LONG
    ? [
        ...CRASH_POINTS.map((point) => ({
          name: `duplicate-delivery + crash=${point}`,
          chaos: { duplicateDelivery: true, crash: [point] },
          comparable: true,
        })),
        { name: 'crash at every point', chaos: { crash: CRASH_POINTS }, comparable: true },
        ...[1, 2, 3, 4, 5].map((seed) => flaky(seed, 0.1)),
        ...[11, 12, 13].map((seed) => flaky(seed, 0.4)),
      ]
    : []),
];

async function start(chaos?: ChaosOptions) {
  // A failed step is offered again at once (crash recovery must not depend on how long
  // redelivery takes: failures.yaml times a child out after 2 s); a message whose worker
  // stopped without a word comes back after 1 s.
  const runtime = await LocalRuntime.start({ ...onTier(TIER), aggregators, chaos, visibilityTimeoutSeconds: 1, retryFailedAfterSeconds: 0 });
  return { runtime, events: recordEvents(runtime) };
}

const clean = new Map<string, RunOutcome>();
/** What was injected and how the runs ended, per fault (printed at the end, for docs/reliability.md). */
const faultReport: { fault: string; runs: number; statuses: Record<string, number>; injected: Record<string, number> }[] = [];

afterAll(() => {
  report('fault injection report:\n' + faultReport.map((r) => JSON.stringify(r)).join('\n'));
});

describe('clean runs (the reference)', () => {
  let rt: { runtime: LocalRuntime; events: LifecycleEvent[] };
  beforeAll(async () => (rt = await start()));
  afterAll(async () => rt?.runtime.close());
  for (const s of scenarios) {
    it.concurrent(s.scenario.name, async () => {
      const outcome = await runToEnd(rt.runtime, s.scenario, rt.events);
      checkRunInvariants(outcome, `${s.scenario.name} (clean)`);
      expect(rt.runtime.errors).toEqual([]);
      clean.set(s.scenario.name, outcome);
    });
  }
});

// RELIABILITY_FAULT=<text> runs only the faults whose name contains it (to chase one).
const only = process.env.RELIABILITY_FAULT;
for (const fault of FAULTS.filter((f) => !only || f.name.includes(only))) {
  // One runtime per fault; its scenarios run at once (the engines are shared, the runs are not).
  describe(fault.name, () => {
    let rt: { runtime: LocalRuntime; events: LifecycleEvent[] };
    const statuses: Record<string, number> = {};
    beforeAll(async () => (rt = await start(fault.chaos)));
    afterAll(async () => {
      faultReport.push({ fault: fault.name, runs: scenarios.length, statuses, injected: { ...rt.runtime.faults.injected } });
      await rt?.runtime.close();
    });
    for (const s of scenarios) {
      it.concurrent(s.scenario.name, async () => {
        const outcome = await runToEnd(rt.runtime, s.scenario, rt.events);
        statuses[outcome.run.status] = (statuses[outcome.run.status] ?? 0) + 1;
        checkRunInvariants(outcome, `${s.scenario.name} under ${fault.name}`);
        if (fault.comparable) {
          // Exact, wait_for quorum included: quorum-median's winners are its two 100 ms estimators
          // (the third takes 20 s), and its aggregate is a median, which names no branch.
          const reference = clean.get(s.scenario.name)!;
          expect(outcome.run.status).toBe(reference.run.status);
          expect(outcome.run.result).toEqual(reference.run.result);
          expect(outcome.branches.map((b) => [b.id, b.status])).toEqual(reference.branches.map((b) => [b.id, b.status]));
        }
        expect(rt.runtime.errors).toEqual([]);
      });
    }
  });
}

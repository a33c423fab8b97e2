// Long-running: started first (vitest.config.ts).
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
import { afterAll, describe, expect, it } from 'vitest';
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

/** What was injected and how the runs ended, per fault (printed at the end, for docs/reliability.md). */
const faultReport: { fault: string; runs: number; statuses: Record<string, number>; injected: Record<string, number> }[] = [];

// Every fault's runs go at once (they mostly wait on agents' delays, timeouts and redeliveries):
// one runtime per fault, started by its first run, closed at the end.
const runtimes = new Map<string, Promise<{ runtime: LocalRuntime; events: LifecycleEvent[] }>>();
const runtimeFor = (name: string, chaos?: ChaosOptions) => {
  if (!runtimes.has(name)) runtimes.set(name, start(chaos));
  return runtimes.get(name)!;
};
/**
 * A fault's runs all start with its first test, on its runtime: a run's end waits for its runtime
 * to settle, so a run started whenever a test slot freed up (maxConcurrency) kept the runs
 * started before it waiting, one after another.
 */
const faultRuns = new Map<string, Map<string, Promise<RunOutcome>>>();
function faultRun(fault: Fault, s: (typeof scenarios)[number]): Promise<RunOutcome> {
  let runs = faultRuns.get(fault.name);
  if (!runs) {
    runs = new Map();
    faultRuns.set(fault.name, runs);
    for (const each of scenarios) {
      const outcome = runtimeFor(fault.name, fault.chaos).then((rt) => runToEnd(rt.runtime, each.scenario, rt.events));
      outcome.catch(() => undefined); // told by its own test
      runs.set(each.scenario.name, outcome);
    }
  }
  return runs.get(s.scenario.name)!;
}
/** The net under each test: runs are watched for progress (runToEnd); this only bounds the whole file. */
const TEST_TIMEOUT_MS = 10 * 60_000;
const statusesOf = new Map<string, Record<string, number>>();
const CLEAN = '(clean)';

afterAll(async () => {
  for (const [name, started] of runtimes) {
    const { runtime } = await started;
    if (name !== CLEAN) faultReport.push({ fault: name, runs: scenarios.length, statuses: statusesOf.get(name) ?? {}, injected: { ...runtime.faults.injected } });
    await runtime.close();
  }
  report('fault injection report:\n' + faultReport.map((r) => JSON.stringify(r)).join('\n'));
});

/** The clean run of each scenario, the reference of the comparable faults (run once, awaited by all). */
const cleanRuns = new Map<string, Promise<RunOutcome>>();
function cleanRun(s: (typeof scenarios)[number]): Promise<RunOutcome> {
  if (!cleanRuns.has(s.scenario.name)) {
    cleanRuns.set(s.scenario.name, runtimeFor(CLEAN).then((rt) => runToEnd(rt.runtime, s.scenario, rt.events)));
  }
  return cleanRuns.get(s.scenario.name)!;
}

describe('clean runs (the reference)', () => {
  for (const s of scenarios) {
    it.concurrent(s.scenario.name, async () => {
      const outcome = await cleanRun(s);
      checkRunInvariants(outcome, `${s.scenario.name} (clean)`);
      expect((await runtimeFor(CLEAN)).runtime.errors).toEqual([]);
    }, TEST_TIMEOUT_MS);
  }
});

// RELIABILITY_FAULT=<text> runs only the faults whose name contains it (to chase one).
const only = process.env.RELIABILITY_FAULT;
// describe.concurrent: the faults' suites run at once too, not one after another.
describe.concurrent('under faults', () => {
  for (const fault of FAULTS.filter((f) => !only || f.name.includes(only))) {
    describe(fault.name, () => {
      for (const s of scenarios) {
        it.concurrent(s.scenario.name, async () => {
          const rt = await runtimeFor(fault.name, fault.chaos);
          const outcome = await faultRun(fault, s);
          const statuses = statusesOf.get(fault.name) ?? {};
          statusesOf.set(fault.name, statuses);
          statuses[outcome.run.status] = (statuses[outcome.run.status] ?? 0) + 1;
          checkRunInvariants(outcome, `${s.scenario.name} under ${fault.name}`);
          if (fault.comparable) {
            // Exact, wait_for quorum included: quorum-median's winners are its two 100 ms estimators
            // (the third takes 20 s), and its aggregate is a median, which names no branch.
            const reference = await cleanRun(s);
            expect(outcome.run.status).toBe(reference.run.status);
            expect(outcome.run.result).toEqual(reference.run.result);
            expect(outcome.branches.map((b) => [b.id, b.status])).toEqual(reference.branches.map((b) => [b.id, b.status]));
          }
          expect(rt.runtime.errors).toEqual([]);
        }, TEST_TIMEOUT_MS);
      }
    });
  }
});

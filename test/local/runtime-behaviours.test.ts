// Long-running: started first (vitest.config.ts).
/**
 * Every behaviour of the protocol, fan-in and limits end to end on each engine tier of the local runtime: the real handlers and the
 * fan-out ASL in aws-local-stepfunctions (batched, and one iteration per child), on the memory tier (in-memory store and queues), the
 * journal tier (the same, kept in a journal in a data folder) and the engines tier (dynalite, fauxqs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { ENGINE_TIERS } from '../../local/embedded-engines';
import { LocalRuntime } from '../../local/runtime';
import { behaviours, checkInvariants } from '../support/behaviours';
import { onTier, RUNTIME_START_TIMEOUT_MS } from '../support/tiers';
import { WATCHED_TEST_TIMEOUT_MS, watchRun } from '../reliability/support';

const aggregators = Object.assign({}, ...behaviours.map((b) => b.aggregators ?? {}));

describe.each(
  ENGINE_TIERS.flatMap((tier) => [
    { tier, delivery: 'single delivery', duplicateDelivery: false, dispatch: 'batched' as const },
    { tier, delivery: 'every message delivered twice', duplicateDelivery: true, dispatch: 'batched' as const },
    // The per-child path (one Map iteration per child) holds the same behaviours.
    { tier, delivery: 'single delivery', duplicateDelivery: false, dispatch: 'per-child' as const },
  ]),
  // The nine runtimes run at once (each block's runs wait mostly on agents' delays and timeouts);
  // within a block the behaviours still run one after another, as on one machine's runtime.
)('$tier tier ($delivery, $dispatch dispatch)', { concurrent: true }, ({ tier, duplicateDelivery, dispatch }) => {
  let runtime: LocalRuntime;
  const events: LifecycleEvent[] = [];

  beforeAll(async () => {
    runtime = await LocalRuntime.start({ ...onTier(tier), aggregators, chaos: { duplicateDelivery }, visibilityTimeoutSeconds: 30, fanOutDispatch: dispatch });
    expect(runtime.tier).toBe(tier);
    runtime.bus.subscribe((e) => void events.push(e));
  }, RUNTIME_START_TIMEOUT_MS);
  afterAll(async () => {
    await runtime?.close();
  });

  // Nine runtimes at once make each run slow on a loaded machine (a 2 s run took over 60 s in a
  // full suite at load 30 on 2 cores): the runs are watched for progress (watchRun), not timed.
  for (const behaviour of behaviours) {
    it(behaviour.name, { concurrent: false, timeout: WATCHED_TEST_TIMEOUT_MS }, async () => {
      const outcome = await watchRun(runtime, await runtime.startRun(behaviour.run), events);
      behaviour.check(outcome);
      checkInvariants(outcome);
      expect(runtime.errors).toEqual([]);
    });
  }
});

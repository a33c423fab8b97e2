/**
 * The cost table (core/cost-model.ts, printed by `npm run bench -- --cost`) against the cost
 * meter: each path's leaf is measured with the meter, then fan-outs of another width, with 0 ms
 * and 250 ms agents, are metered and compared with what the formula predicts for them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkWorkload, COST_PATHS, profilePath, type PathProfile } from '../../bench/cost-table';
import { LocalRuntime } from '../../local/runtime';

describe('the cost table and the meter', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await LocalRuntime.start();
  });
  afterAll(async () => {
    await runtime?.close();
  });

  for (const path of COST_PATHS) {
    it(`agree within 5 % on every workload: ${path.design}`, async () => {
      const profile: PathProfile = await profilePath(runtime, path);
      expect(profile.leaf.counts.stepFunctionsTransitions).toBeGreaterThan(0);
      for (const agentMs of [0, 250]) {
        const check = await checkWorkload(runtime, profile, 120, agentMs);
        expect(Math.abs(check.difference), JSON.stringify(check)).toBeLessThanOrEqual(0.05);
      }
    }, 120_000);
  }
});

/**
 * The cost table (core/cost-model.ts, printed by `npm run bench -- --cost`) against the cost
 * meter: each path's leaf is measured with the meter, then fan-outs of another width, with 0 ms
 * and 100 ms agents, are metered and compared with what the formula predicts for them. (The
 * bench checks 250 ms; here the wait is kept short so that timers firing late on a loaded
 * machine stay a small part of the bill.)
 */
import { describe, expect, it } from 'vitest';
import { checkWorkload, COST_PATHS, profilePath, runtimeFor, type PathProfile } from '../../bench/cost-table';

describe('the cost table and the meter', () => {
  for (const path of COST_PATHS) {
    it(`agree within 5 % on every workload: ${path.design}`, async () => {
      const runtime = await runtimeFor(path);
      try {
        const profile: PathProfile = await profilePath(runtime, path);
        expect(profile.leaf.counts.lambdaRequests).toBeGreaterThan(0);
        for (const agentMs of [0, 100]) {
          const check = await checkWorkload(runtime, profile, 120, agentMs);
          expect(Math.abs(check.difference), JSON.stringify(check)).toBeLessThanOrEqual(0.05);
        }
      } finally {
        await runtime.close();
      }
    }, 120_000);
  }
});

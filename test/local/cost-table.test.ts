/**
 * The cost table (core/cost-model.ts, printed by `npm run bench -- --cost`) against the cost
 * meter: each path's leaf is measured with the meter, then fan-outs of another width are metered
 * and compared with what the formula predicts for them, part by part. Only the counted parts are
 * checked here: Lambda's GB-seconds are measured handler time, which a loaded machine stretches
 * (beside two CPU burners the meter once billed 200 concurrent 100 ms waits 8.9 % above the
 * formula); the bench prints that comparison.
 */
import { describe, expect, it } from 'vitest';
import { usdOf } from '../../core/cost';
import { checkWorkload, COST_PATHS, profilePath, runtimeFor, type MeterCheck, type PathProfile } from '../../bench/cost-table';

/** $ of the counted parts of a check: the meter's or the formula's. */
function countedUsd(check: MeterCheck, side: 'meter' | 'formula'): number {
  const c = Object.fromEntries(Object.entries(check.counted).map(([field, v]) => [field, v[side]]));
  return usdOf({ ...c, lambdaGbSeconds: 0 } as Parameters<typeof usdOf>[0]);
}

describe('the cost table and the meter', () => {
  for (const path of COST_PATHS) {
    it(`agree on every counted part: ${path.design}`, async () => {
      const runtime = await runtimeFor(path);
      try {
        const profile: PathProfile = await profilePath(runtime, path);
        expect(profile.leaf.counts.lambdaRequests).toBeGreaterThan(0);
        for (const agentMs of [0, 100]) {
          const check = await checkWorkload(runtime, profile, 120, agentMs);
          const { counted } = check;
          const about = JSON.stringify(check);
          // Counted per message, request, entry and line: the same for every run of the same width.
          for (const field of ['sqsRequests', 'stepFunctionsTransitions', 'eventBridgeEntries', 'lambdaRequests', 'logBytes'] as const) {
            expect(counted[field].meter, `${field}: ${about}`).toBeCloseTo(counted[field].formula, 6);
          }
          // Write units: a spawn's BranchCreated events are one deflated item, whose units grow a
          // little less than linearly with the width (1 % is about 8 units here).
          expect(Math.abs(counted.writeUnits.meter / counted.writeUnits.formula - 1), about).toBeLessThanOrEqual(0.01);
          // Read units move a little with the order concurrent steps take (some reads race):
          // they are held by the counted parts' $, where they weigh a few percent.
          expect(Math.abs(countedUsd(check, 'formula') / countedUsd(check, 'meter') - 1), about).toBeLessThanOrEqual(0.05);
        }
      } finally {
        await runtime.close();
      }
    }, 180_000);
  }
});

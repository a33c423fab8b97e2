/** The cost meter's Lambda rules: billed duration and memory, shares of an invocation, pricing. */
import { describe, expect, it } from 'vitest';
import { billedGbSeconds, emptyCost, invocationUsage, LAMBDA_PLATFORM_LOG_BYTES, usdOf, type CostCounters } from '../../core/cost';
import { CostMeter } from '../../core/cost-meter';
import { PRICES } from '../../core/prices';

const a = { team: 't', runId: 'a' };
const b = { team: 't', runId: 'b' };

function recorded(meter: CostMeter): Promise<Map<string, CostCounters>> {
  const sums = new Map<string, CostCounters>();
  return meter
    .flush({
      addCost: async (scope, usage) => {
        sums.set(scope.runId, { ...emptyCost(), ...usage } as CostCounters);
      },
    })
    .then(() => sums);
}

describe('Lambda in the cost meter', () => {
  it('bills the duration rounded up to 1 ms, times the memory in GB', () => {
    expect(billedGbSeconds(0.2, 1024)).toBeCloseTo(0.001, 12);
    expect(billedGbSeconds(12.01, 512)).toBeCloseTo(0.013 * 0.5, 12);
    expect(billedGbSeconds(5000, 256)).toBeCloseTo(5 * 0.25, 12);
    expect(invocationUsage(3, 1024, 100)).toEqual({ lambdaRequests: 1, lambdaGbSeconds: 0.003, logBytes: 100 + LAMBDA_PLATFORM_LOG_BYTES });
  });

  it('shares an invocation equally among the runs it served', async () => {
    const meter = new CostMeter();
    meter.add(a, { writeUnits: 1 });
    meter.add(b, { writeUnits: 2 });
    meter.addToPending({ lambdaRequests: 1, lambdaGbSeconds: 0.5 });
    const sums = await recorded(meter);
    expect(sums.get('a')).toMatchObject({ writeUnits: 1, lambdaRequests: 0.5, lambdaGbSeconds: 0.25 });
    expect(sums.get('b')).toMatchObject({ writeUnits: 2, lambdaRequests: 0.5, lambdaGbSeconds: 0.25 });
    const shared = new CostMeter();
    shared.addShared([a, a, b], { lambdaRequests: 1 });
    expect((await recorded(shared)).get('a')!.lambdaRequests).toBe(0.5);
  });

  it('prices requests, GB-seconds and log bytes with the table', () => {
    const p = PRICES.prices;
    const usd = usdOf({ ...emptyCost(), lambdaRequests: 1e6, lambdaGbSeconds: 1e6, logBytes: 1024 ** 3 });
    expect(usd).toBeCloseTo(p.lambdaRequest.usdPerMillion + p.lambdaArmGbSecond.usdPerMillion + p.cloudWatchLogsIngestedGb.usdPerMillion / 1e6, 6);
  });
});

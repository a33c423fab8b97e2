/** The cost table's formula (core/cost-model.ts): our leaf from the meter's counts, and the two AWS designs. */
import { describe, expect, it } from 'vitest';
import { emptyCost } from '../../core/cost';
import { durableFunctionPerLeaf, leafCounters, marginalLeaf, standardExecutionPerLeaf, usdPerMillionLeaves, type LeafProfile } from '../../core/cost-model';

const leaf: LeafProfile = {
  counts: { readUnits: 4, writeUnits: 6, sqsRequests: 1.2, stepFunctionsTransitions: 1, eventBridgeEntries: 2, lambdaRequests: 1, logBytes: 400 },
  handlerMs: 10,
  memoryMb: 512,
};

describe('the cost formula', () => {
  it('prices a leaf: every service per unit, Lambda from the handler time plus the agent\'s wait at the memory', () => {
    expect(leafCounters(leaf, 990).lambdaGbSeconds).toBeCloseTo(0.5, 12);
    const services = 4 * 0.125 + 6 * 0.625 + 1.2 * 0.4 + 25 + 2 * 1 + 0.2 + (400 * 1e6 / 1024 ** 3) * 0.5;
    expect(usdPerMillionLeaves(leaf, 0)).toBeCloseTo(services + 0.01 * 0.5 * 13.3334, 4);
    // Each second of wait at 512 MB adds half a million GB-seconds per million leaves.
    expect(usdPerMillionLeaves(leaf, 5000) - usdPerMillionLeaves(leaf, 0)).toBeCloseTo(5 * 0.5 * 13.3334, 4);
  });

  it('a marginal leaf is the difference of two widths, its handler time without the agent\'s wait', () => {
    const narrow = { leaves: 50, cost: { ...emptyCost(), writeUnits: 310, lambdaRequests: 52, lambdaGbSeconds: 52 * 0.11 } };
    const wide = { leaves: 150, cost: { ...emptyCost(), writeUnits: 910, lambdaRequests: 152, lambdaGbSeconds: 152 * 0.11 } };
    const m = marginalLeaf(narrow, wide, 100, 1024);
    expect(m.counts.writeUnits).toBeCloseTo(6, 9);
    expect(m.counts.lambdaRequests).toBeCloseTo(1, 9);
    expect(m.handlerMs).toBeCloseTo(10, 6);
  });

  it('one Standard execution per branch: 4 transitions and the agent\'s Lambda; durable functions: 2 operations, checkpoints and the same Lambda time', () => {
    expect(standardExecutionPerLeaf(0, 1024, 1)).toBeCloseTo(100 + 0.2 + 0.001 * 13.3334, 4);
    const data = ((2 * 256 * 1e6) / 1024 ** 3) * 0.25;
    expect(durableFunctionPerLeaf(0, 1024, 1)).toBeCloseTo(16 + data + 0.001 * 13.3334, 4);
    expect(durableFunctionPerLeaf(5000, 256, 1) - durableFunctionPerLeaf(0, 256, 1)).toBeCloseTo(5 * 0.25 * 13.3334, 3);
  });
});

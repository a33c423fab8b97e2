import { describe, expect, it } from 'vitest';
import { usdOf } from '../../core/cost';
import { fanOutTransitions, planFanOut } from '../../core/fan-out-plan';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

describe('the cost meter on a run', () => {
  it('puts metrics.cost in the run document, counted from the requests made and priced with the table', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--json'], io), io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    const cost = doc.metrics.cost;
    const { spawns, maxWidth } = doc.metrics.fanOut;
    expect(spawns).toBe(1);
    // One fan-out: its transitions from the state machine's structure (10 at once: inline).
    expect(cost.stepFunctionsTransitions).toBe(fanOutTransitions(planFanOut(maxWidth, 10), maxWidth));
    // Every branch wrote (created, started, ended) and every lifecycle event is one entry.
    expect(cost.dynamodb.writeUnits).toBeGreaterThanOrEqual(3 * doc.metrics.totalCreated);
    expect(cost.dynamodb.readUnits).toBeGreaterThan(0);
    expect(cost.eventBridgeEntries).toBeGreaterThanOrEqual(2 * doc.metrics.totalCreated);
    expect(cost.sqsRequests).toBeGreaterThan(maxWidth);
    const counters = {
      readUnits: cost.dynamodb.readUnits,
      writeUnits: cost.dynamodb.writeUnits,
      sqsRequests: cost.sqsRequests,
      stepFunctionsTransitions: cost.stepFunctionsTransitions,
      eventBridgeEntries: cost.eventBridgeEntries,
    };
    expect(cost.usd).toBeCloseTo(usdOf(counters), 6);
  });
});

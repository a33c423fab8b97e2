import { describe, expect, it } from 'vitest';
import { countersOf, LAMBDA_PLATFORM_LOG_BYTES, usdOf } from '../../core/cost';
import { FUNCTION_MEMORY_MB } from '../../functions/function-memory';
import { fanOutTransitions, planFanOut } from '../../core/fan-out-plan';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { LocalRuntime } from '../../local/runtime';

describe('the cost meter on a run', () => {
  it('puts metrics.cost in the run document, counted from the requests made and priced with the table', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--json'], io), io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    const cost = doc.metrics.cost;
    const { spawns, maxWidth } = doc.metrics.fanOut;
    expect(spawns).toBe(1);
    // One fan-out: its transitions from the state machine's structure (three children: one batch).
    expect(cost.stepFunctionsTransitions).toBe(fanOutTransitions(planFanOut(maxWidth, 10), maxWidth));
    // Every branch wrote (created, started, ended) and every lifecycle event is one entry.
    expect(cost.dynamodb.writeUnits).toBeGreaterThanOrEqual(3 * doc.metrics.totalCreated);
    expect(cost.dynamodb.readUnits).toBeGreaterThan(0);
    expect(cost.eventBridgeEntries).toBeGreaterThanOrEqual(2 * doc.metrics.totalCreated);
    expect(cost.sqsRequests).toBeGreaterThan(maxWidth);
    // Lambda: one invocation per step message, one per fan-in (aggregate), one per batch of
    // children (DispatchBatch: the plan batches them), one for the start (api).
    const { steps } = doc.metrics;
    const plan = planFanOut(maxWidth, 10);
    const batches = plan.mode === 'BATCHED' ? Math.ceil(maxWidth / plan.batchSize) : 0;
    expect(batches).toBe(1);
    expect(cost.lambda.requests).toBe(steps + spawns + batches + 1);
    // Each at least 1 ms billed, at the memory the stack gives it.
    const least = (steps * FUNCTION_MEMORY_MB['step-worker'] + (spawns + batches + 1) * 512) / 1024 / 1000;
    expect(cost.lambda.gbSeconds).toBeGreaterThanOrEqual(least);
    expect(cost.logs.ingestedBytes).toBe(cost.lambda.requests * LAMBDA_PLATFORM_LOG_BYTES);
    expect(cost.usd).toBeCloseTo(usdOf(countersOf(cost)), 6);
  });

  it('counts as EventBridge entries only the events the team\'s setting sends; the local bus still gets them all', async () => {
    const { loadScenarioFile } = await import('../../local/scenario-file');
    const { runInputOf } = await import('../../core/use-cases/start-run');
    const { scenario } = await loadScenarioFile('examples/simple-parallel.yaml');
    const entries: Record<string, number> = {};
    for (const branches of ['all', 'ends', 'off'] as const) {
      const runtime = await LocalRuntime.start({ events: { branches, sample: 1 } });
      try {
        const seen: string[] = [];
        runtime.bus.subscribe((event) => void seen.push(event.type));
        const runId = await runtime.startRun(runInputOf(scenario));
        await runtime.waitForRun(runId);
        const doc = await runtime.describe(runId);
        entries[branches] = (await runtime.costOf(runId)).eventBridgeEntries;
        const ends = doc.branches.length;
        if (branches === 'all') expect(entries.all).toBe(seen.length);
        if (branches === 'ends') expect(entries.ends).toBe(2 + ends);
        if (branches === 'off') expect(entries.off).toBe(2);
        // The trace and the hooks are unaffected: every event reached the local bus.
        expect(seen.filter((t) => t.startsWith('Branch'))).toHaveLength(seen.length - 2 - seen.filter((t) => t === 'SyncPointReached').length);
        expect(seen.filter((t) => t === 'BranchCreated')).toHaveLength(ends);
      } finally {
        await runtime.close();
      }
    }
    expect(entries.all).toBeGreaterThan(entries.ends);
  });
});

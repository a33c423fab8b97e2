/**
 * The floor: the same tree as plain recursive async functions, one semaphore per fan-out
 * (at most `concurrency` children running), Promise.all for the fan-in. No durability at all.
 */
import { agentCall, fanInStats, mapLimit, ProcessMeter, startProfiler, type CaseResult, type CaseSpec, processFigures } from './measure';
import { branchCount, QUICK_SHAPES, type TreeShape } from './workloads';

interface Tally {
  completed: number;
  fanIn: number[];
}

async function branch(shape: TreeShape, level: number, latencyMs: number, concurrency: number, tally: Tally): Promise<unknown> {
  if (level === shape.fanOuts.length) {
    const result = await agentCall(latencyMs, { next_action: 'final_response', content: { v: 1 } });
    tally.completed++;
    return result;
  }
  await agentCall(latencyMs, { next_action: 'parallel_invoke' });
  let lastChildEnd = 0;
  const children = Array.from({ length: shape.fanOuts[level] }, (_, i) => i);
  const results = await mapLimit(children, concurrency, async () => {
    const r = await branch(shape, level + 1, latencyMs, concurrency, tally);
    lastChildEnd = performance.now();
    return r;
  });
  tally.fanIn.push(performance.now() - lastChildEnd);
  const final = await agentCall(latencyMs, { next_action: 'final_response', content: { child_count: results.length } });
  tally.completed++;
  return final;
}

export async function runPromiseAll(spec: CaseSpec): Promise<CaseResult> {
  await branch(QUICK_SHAPES.balanced, 0, 0, spec.concurrency, { completed: 0, fanIn: [] });
  const tally: Tally = { completed: 0, fanIn: [] };
  const stopProfiler = await startProfiler(spec.profileFile);
  const meter = new ProcessMeter();
  await branch(spec.shape, 0, spec.latencyMs, spec.concurrency, tally);
  const m = meter.stop();
  await stopProfiler();
  const expected = branchCount(spec.shape);
  return {
    spec,
    status: tally.completed === expected ? 'completed' : 'failed',
    expectedBranches: expected,
    completedBranches: tally.completed,
    ...processFigures(m, tally.completed),
    fanIn: fanInStats(tally.fanIn),
  };
}

/**
 * `npm run bench -- --cost`: the cost table per million leaves (core/cost-model.ts) for our fan-out
 * paths, 0 ms and 5 s agents, beside one Standard execution per branch and Lambda durable
 * functions, and the check that the table agrees with the cost meter.
 *
 * Each path's leaf is measured on the default tier with the meter: one fan-out of 50 and one of
 * 200 script leaves (0 ms), the difference divided by 150 (the marginal leaf). The check then runs
 * more fan-outs of the same path (another width, 0 ms and with a latency) and compares what the
 * meter counted for each run with what the formula predicts for it: the run's fixed part (the
 * 50-leaf run less its leaves) plus its leaves priced by the formula at the run's latency.
 */
import { COST_FIELDS, emptyCost, usdOf, type CostCounters } from '../core/cost';
import { costTable, marginalLeaf, usdPerMillionLeaves, type LeafProfile } from '../core/cost-model';
import { fanOutTransitions, planFanOut, type FanOutDispatch } from '../core/fan-out-plan';
import { functionMemoryMb } from '../functions/function-memory';
import { LocalRuntime } from '../local/runtime';
import { agents } from './wide-cost';

export interface CostPath {
  design: string;
  maxConcurrentBranches: number;
  dispatch: FanOutDispatch;
}

/** Our paths: children dispatched in batches (the default), and one inline Map iteration per child. */
export const COST_PATHS: CostPath[] = [
  { design: 'ours, batched (c = 10)', maxConcurrentBranches: 10, dispatch: 'batched' },
  { design: 'ours, batched (c = 200)', maxConcurrentBranches: 200, dispatch: 'batched' },
  { design: 'ours, per child, inline Map (c = 10)', maxConcurrentBranches: 10, dispatch: 'per-child' },
];
export const TABLE_LATENCIES_MS = [0, 5_000] as const;
const NARROW = 50;
const WIDE = 200;

/**
 * One metered fan-out. The meter writes a run's cost item once a second while it runs (one write
 * unit each, counted in the run's cost): a run slowed by a busy machine pays for more of them.
 * Those beyond the first are taken out, so the figures are those of the work itself.
 */
async function meteredFanOut(runtime: LocalRuntime, leaves: number, c: number, delayMs: number): Promise<{ leaves: number; cost: CostCounters }> {
  const store = runtime.engines.store;
  const addCost = store.addCost.bind(store);
  let runId: string | undefined;
  let flushes = 0;
  store.addCost = async (scope, usage) => {
    if (scope.runId === runId) flushes++;
    return addCost(scope, usage);
  };
  try {
    runId = await runtime.startRun({
      name: `cost-${leaves}-${delayMs}`,
      request: 'review every document',
      entry: 'Fanner',
      agents: agents(leaves, delayMs),
      limits: { maxFanOut: leaves, maxBranches: leaves + 1, maxConcurrentBranches: c },
    });
    const run = await runtime.waitForRun(runId);
    if (run.status !== 'COMPLETED') throw new Error(`the ${leaves}-leaf fan-out ended ${run.status}`);
    await runtime.settle();
    const cost = await runtime.costOf(runId);
    return { leaves, cost: { ...cost, writeUnits: cost.writeUnits - Math.max(0, flushes - 1) } };
  } finally {
    store.addCost = addCost;
  }
}

/** The parts of the bill that are counted, not timed: everything but Lambda's GB-seconds. */
export type CountedParts = LeafProfile['counts'];
export const COUNTED_FIELDS = COST_FIELDS.filter((f): f is keyof CountedParts => f !== 'lambdaGbSeconds');

export interface PathProfile {
  path: CostPath;
  leaf: LeafProfile;
  /** $ of a run that is not its leaves' (the root, its fan-out, the run's events). */
  fixedUsd: number;
  /** The counted parts of a run that are not its leaves'. */
  fixedCounts: CountedParts;
}

/** A path's marginal leaf and fixed part, measured with the meter (0 ms leaves). */
export async function profilePath(runtime: LocalRuntime, path: CostPath): Promise<PathProfile> {
  const memoryMb = functionMemoryMb('step-worker');
  const narrow = await meteredFanOut(runtime, NARROW, path.maxConcurrentBranches, 0);
  const wide = await meteredFanOut(runtime, WIDE, path.maxConcurrentBranches, 0);
  const leaf = marginalLeaf(narrow, wide, 0, memoryMb);
  const fixedCounts = Object.fromEntries(COUNTED_FIELDS.map((f) => [f, narrow.cost[f] - NARROW * leaf.counts[f]])) as CountedParts;
  return { path, leaf, fixedUsd: usdOf(narrow.cost) - (NARROW * usdPerMillionLeaves(leaf, 0)) / 1e6, fixedCounts };
}

export interface MeterCheck {
  design: string;
  leaves: number;
  agentMs: number;
  meterUsd: number;
  formulaUsd: number;
  /** formula ÷ meter − 1 */
  difference: number;
  /** Each counted part: what the meter counted for the run, and what the formula predicts. */
  counted: Record<keyof CountedParts, { meter: number; formula: number }>;
}

/** Runs a fan-out of the path through the meter and compares its $ with the formula's. */
export async function checkWorkload(runtime: LocalRuntime, profile: PathProfile, leaves: number, agentMs: number): Promise<MeterCheck> {
  const run = await meteredFanOut(runtime, leaves, profile.path.maxConcurrentBranches, agentMs);
  const meterUsd = usdOf(run.cost);
  const formulaUsd = profile.fixedUsd + (leaves * usdPerMillionLeaves(profile.leaf, agentMs)) / 1e6;
  const counted = Object.fromEntries(
    COUNTED_FIELDS.map((f) => [f, { meter: run.cost[f], formula: profile.fixedCounts[f] + leaves * profile.leaf.counts[f] }]),
  ) as MeterCheck['counted'];
  // The run's one fan-out: its transitions are the plan's (per leaf they are an average: one per
  // batch of children is not linear in the width).
  counted.stepFunctionsTransitions.formula = fanOutTransitions(planFanOut(leaves, profile.path.maxConcurrentBranches, profile.path.dispatch), leaves);
  return { design: profile.path.design, leaves, agentMs, meterUsd, formulaUsd, difference: formulaUsd / meterUsd - 1, counted };
}

const money = (n: number) => n.toFixed(2);

/** A runtime on the default tier dispatching as the path does. */
export function runtimeFor(path: CostPath): Promise<LocalRuntime> {
  return LocalRuntime.start({ fanOutDispatch: path.dispatch });
}

export async function runCostTable(): Promise<void> {
  const runtimes = new Map<CostPath, LocalRuntime>();
  try {
    const profiles: PathProfile[] = [];
    for (const path of COST_PATHS) {
      runtimes.set(path, await runtimeFor(path));
      profiles.push(await profilePath(runtimes.get(path)!, path));
    }
    const memoryMb = functionMemoryMb('step-worker');
    // The AWS designs are given our handler time per leaf (the paths' mean: each is a noisy few ms).
    const handlerMs = profiles.reduce((sum, p) => sum + p.leaf.handlerMs, 0) / profiles.length;
    const rows = costTable(profiles.map((p) => ({ design: p.path.design, leaf: p.leaf })), TABLE_LATENCIES_MS, { memoryMb, handlerMs });
    console.log(`Per leaf (marginal, ${NARROW} → ${WIDE} leaves; step-worker ${memoryMb} MB):`);
    console.log('| path | mode | RRU | WRU | SQS requests | SFN transitions | EB entries | Lambda requests | handler ms | log bytes |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const p of profiles) {
      const c = { ...emptyCost(), ...p.leaf.counts };
      console.log(
        `| ${p.path.design} | ${planFanOut(WIDE, p.path.maxConcurrentBranches, p.path.dispatch).mode} | ${c.readUnits.toFixed(2)} | ${c.writeUnits.toFixed(2)} | ${c.sqsRequests.toFixed(2)} | ${c.stepFunctionsTransitions.toFixed(3)} | ${c.eventBridgeEntries.toFixed(2)} | ${c.lambdaRequests.toFixed(2)} | ${p.leaf.handlerMs.toFixed(1)} | ${c.logBytes.toFixed(0)} |`,
      );
    }
    console.log(`\n$ per million leaves (handler time of the AWS designs: ${handlerMs.toFixed(1)} ms, memory ${memoryMb} MB):`);
    console.log(`| design | ${TABLE_LATENCIES_MS.map((ms) => `${ms / 1000} s agents`).join(' | ')} |`);
    console.log(`|---|${TABLE_LATENCIES_MS.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.design} | ${row.usd.map(money).join(' | ')} |`);
    console.log('\nThe table against the meter (each run: the meter\'s $, the formula\'s $ for the same run):');
    console.log('| path | leaves | agent ms | meter $ | formula $ | difference | WRU meter / formula | RRU meter / formula |');
    console.log('|---|---|---|---|---|---|---|---|');
    const checks: MeterCheck[] = [];
    for (const p of profiles) for (const ms of [0, 250]) checks.push(await checkWorkload(runtimes.get(p.path)!, p, 120, ms));
    for (const c of checks) {
      const units = (f: 'writeUnits' | 'readUnits') => `${c.counted[f].meter} / ${c.counted[f].formula.toFixed(1)}`;
      console.log(`| ${c.design} | ${c.leaves} | ${c.agentMs} | ${c.meterUsd.toFixed(6)} | ${c.formulaUsd.toFixed(6)} | ${(c.difference * 100).toFixed(2)} % | ${units('writeUnits')} | ${units('readUnits')} |`);
    }
    const worst = Math.max(...checks.map((c) => Math.abs(c.difference)));
    console.log(`\nworst difference ${(worst * 100).toFixed(2)} % (the bound is 5 %)`);
    console.log(JSON.stringify({ profiles, rows, checks }));
    if (worst > 0.05) process.exitCode = 1;
  } finally {
    for (const runtime of runtimes.values()) await runtime.close();
  }
}

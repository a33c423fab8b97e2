/**
 * `npm run bench -- --wide`: one agent-decided fan-out at 200, 1,000 and 10,000 children (0 ms
 * script leaves) on the default tier and the default (batched) dispatch, at maxConcurrentBranches
 * 40 and 200, with what the cost meter counted
 * (metrics.cost): write units per leaf and $ per million leaves. Each case in this process, one
 * after the other (the meter's counts do not depend on timing).
 */
import { runCost, usdOf, type CostCounters } from '../core/cost';
import { planFanOut } from '../core/fan-out-plan';
import type { AgentRegistry } from '../core/model';
import { LocalRuntime } from '../local/runtime';

export interface WideCase {
  children: number;
  maxConcurrentBranches: number;
}

export const WIDE_CASES: WideCase[] = [
  { children: 200, maxConcurrentBranches: 40 },
  { children: 1_000, maxConcurrentBranches: 40 },
  { children: 200, maxConcurrentBranches: 200 },
  { children: 1_000, maxConcurrentBranches: 200 },
  { children: 10_000, maxConcurrentBranches: 200 },
];

/** A fan-out of `children` script leaves (each answering after `delayMs`), averaged by weight. */
export function agents(children: number, delayMs = 0): AgentRegistry {
  return {
    Fanner: {
      kind: 'script',
      allowed: ['Leaf'],
      rules: [{ when: 'total_weight', responses: [{ next_action: 'final_response', content: '$input' }] }],
      responses: [{ next_action: 'parallel_invoke', aggregator: 'weighted_average', agents: Array.from({ length: children }, () => 'Leaf') }],
    },
    Leaf: { kind: 'script', responses: [{ ...(delayMs ? { $delayMs: delayMs } : {}), next_action: 'final_response', content: { value: 1, weight: 1 } }] },
  };
}

export async function runWideCase(c: WideCase) {
  const runtime = await LocalRuntime.start();
  try {
    const started = Date.now();
    const runId = await runtime.startRun({
      name: `wide-${c.children}`,
      request: 'review every document',
      entry: 'Fanner',
      agents: agents(c.children),
      limits: { maxFanOut: c.children, maxBranches: c.children + 1, maxConcurrentBranches: c.maxConcurrentBranches },
    });
    const run = await runtime.waitForRun(runId);
    await runtime.settle();
    const cost: CostCounters = await runtime.costOf(runId);
    const branches = c.children + 1;
    return {
      ...c,
      path: planFanOut(c.children, c.maxConcurrentBranches).mode,
      status: run.status,
      ms: Date.now() - started,
      cost: runCost(cost),
      writeUnitsPerBranch: cost.writeUnits / branches,
      readUnitsPerBranch: cost.readUnits / branches,
      transitionsPerLeaf: cost.stepFunctionsTransitions / c.children,
      usdPerMillionLeaves: (usdOf(cost) / c.children) * 1e6,
    };
  } finally {
    await runtime.close();
  }
}

export async function runWide(): Promise<void> {
  const rows = [];
  for (const c of WIDE_CASES) rows.push(await runWideCase(c));
  console.log('| children | c | path | status | WRU/branch | RRU/branch | SFN transitions/leaf | $ per million leaves | wall ms (shared machine) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.children.toLocaleString('en')} | ${r.maxConcurrentBranches} | ${r.path} | ${r.status} | ${r.writeUnitsPerBranch.toFixed(2)} | ${r.readUnitsPerBranch.toFixed(2)} | ${r.transitionsPerLeaf.toFixed(3)} | ${r.usdPerMillionLeaves.toFixed(2)} | ${r.ms} |`,
    );
  }
  console.log(JSON.stringify(rows));
}

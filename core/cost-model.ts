/**
 * What a leaf costs per million, by formula: the one home of the cost table the bench prints and
 * docs/performance.md shows, for our paths and for the two AWS designs we compare with.
 *
 *   $ per million leaves = Σ (units per leaf × $ per million units), where the Lambda part is
 *   requests per leaf × $0.20 + GB-seconds per leaf × $ per GB-second, and
 *   GB-seconds per leaf = (handler ms per leaf + agent ms) / 1000 × memory MB / 1024.
 *
 * Our per-leaf counts come from the cost meter (a marginal leaf: the difference between two
 * widths of the same fan-out), so the formula prices what the code does today; the agent's
 * latency enters only through the step-worker's billed time, as it does in the meter. Every
 * design is priced with the wait billed once per leaf (each step its own invocation, as the
 * local tiers meter it); a batch of steps sharing one invocation divides that part.
 */
import { billedGbSeconds, COST_FIELDS, emptyCost, usdOf, type CostCounters } from './cost';
import { PRICES, type PriceTable } from './prices';

/** What one leaf uses besides its agent's wait: the meter's counts, and the handlers' own time. */
export interface LeafProfile {
  counts: Omit<CostCounters, 'lambdaGbSeconds'>;
  /** Milliseconds the functions ran per leaf, the agent's wait excluded, at `memoryMb`. */
  handlerMs: number;
  memoryMb: number;
}

/** The counters of one leaf whose agent takes `agentMs`. */
export function leafCounters(leaf: LeafProfile, agentMs: number): CostCounters {
  return { ...emptyCost(), ...leaf.counts, lambdaGbSeconds: ((leaf.handlerMs + agentMs) / 1000) * (leaf.memoryMb / 1024) };
}

export function usdPerMillionLeaves(leaf: LeafProfile, agentMs: number, prices: PriceTable = PRICES): number {
  return usdOf(scaled(leafCounters(leaf, agentMs), 1e6), prices);
}

/**
 * A leaf's profile from two metered runs of the same fan-out at two widths (the marginal leaf),
 * with the handler time the meter billed, less the agent's wait it included.
 */
export function marginalLeaf(
  narrow: { leaves: number; cost: CostCounters },
  wide: { leaves: number; cost: CostCounters },
  agentMs: number,
  memoryMb: number,
): LeafProfile {
  const leaves = wide.leaves - narrow.leaves;
  const per = scaled(difference(wide.cost, narrow.cost), 1 / leaves);
  const { lambdaGbSeconds, ...counts } = per;
  return { counts, handlerMs: Math.max(0, (lambdaGbSeconds * 1000 * 1024) / memoryMb - agentMs), memoryMb };
}

/**
 * One Standard workflow execution per branch, in its cheapest form: the parent's Map starts
 * each child with startExecution.sync (1 transition), the child runs InvokeAgent → Choice →
 * Succeed (3), and InvokeAgent is a Lambda that waits on the agent. No table, queue or events.
 */
export function standardExecutionPerLeaf(agentMs: number, memoryMb: number, handlerMs: number, prices: PriceTable = PRICES): number {
  return usdOf(
    scaled({ ...emptyCost(), stepFunctionsTransitions: 4, lambdaRequests: 1, lambdaGbSeconds: billedGbSeconds(handlerMs + agentMs, memoryMb) }, 1e6),
    prices,
  );
}

/** Operations of a Lambda durable function per leaf of a fan-out: the map item and the step that calls the agent. */
export const DURABLE_OPERATIONS_PER_LEAF = 2;
/** Checkpoint bytes per operation (the step's result and its bookkeeping; small results). */
export const DURABLE_CHECKPOINT_BYTES = 256;

/**
 * Lambda durable functions for the same fan-out: a map over the children, each item a step
 * that calls the agent. Billed per operation and per byte checkpointed, plus the function's
 * duration while a step runs (its agent call); waits between operations are not billed.
 */
export function durableFunctionPerLeaf(agentMs: number, memoryMb: number, handlerMs: number, prices: PriceTable = PRICES): number {
  const p = prices.prices;
  const operations = DURABLE_OPERATIONS_PER_LEAF * p.lambdaDurableOperation.usdPerMillion;
  const data = ((DURABLE_OPERATIONS_PER_LEAF * DURABLE_CHECKPOINT_BYTES * 1e6) / 1024 ** 3) * (p.lambdaDurableDataWrittenGb.usdPerMillion / 1e6);
  const compute = usdOf(scaled({ ...emptyCost(), lambdaGbSeconds: billedGbSeconds(handlerMs + agentMs, memoryMb) }, 1e6), prices);
  return operations + data + compute;
}

export interface CostTableRow {
  design: string;
  /** $ per million leaves at each agent latency of the table. */
  usd: number[];
}

/** The table: our paths (their leaf profiles), then the two AWS designs at the same memory and handler time. */
export function costTable(
  ours: { design: string; leaf: LeafProfile }[],
  latenciesMs: readonly number[],
  comparison: { memoryMb: number; handlerMs: number },
  prices: PriceTable = PRICES,
): CostTableRow[] {
  return [
    ...ours.map(({ design, leaf }) => ({ design, usd: latenciesMs.map((ms) => usdPerMillionLeaves(leaf, ms, prices)) })),
    {
      design: 'one Standard execution per branch',
      usd: latenciesMs.map((ms) => standardExecutionPerLeaf(ms, comparison.memoryMb, comparison.handlerMs, prices)),
    },
    {
      design: 'Lambda durable functions (map + step per leaf)',
      usd: latenciesMs.map((ms) => durableFunctionPerLeaf(ms, comparison.memoryMb, comparison.handlerMs, prices)),
    },
  ];
}

function scaled(c: CostCounters, factor: number): CostCounters {
  const out = emptyCost();
  for (const field of COST_FIELDS) out[field] = c[field] * factor;
  return out;
}

function difference(a: CostCounters, b: CostCounters): CostCounters {
  const out = emptyCost();
  for (const field of COST_FIELDS) out[field] = a[field] - b[field];
  return out;
}

/**
 * The benchmark trees, built in code: regular trees described by their fan-out per level, the
 * scenario documents that make script agents grow them, and their exact ideal makespan.
 */
import type { AgentRegistry, Limits } from '../core/model';

export type ShapeName = 'wide' | 'balanced' | 'deep' | 'scale' | 'huge';

/** A regular tree: every branch at level i has fanOuts[i] children; the last level are leaves. */
export interface TreeShape {
  name: ShapeName;
  fanOuts: number[];
}

/** The tree of `--huge`: exactly 100,000 branches (the maxBranches ceiling), fan-out 271 then 368 (99,728 leaves). */
export const HUGE: TreeShape = { name: 'huge', fanOuts: [271, 368] };

export const SHAPES: Record<Exclude<ShapeName, 'huge'>, TreeShape> = {
  wide: { name: 'wide', fanOuts: [1000] },
  balanced: { name: 'balanced', fanOuts: [10, 10, 10] },
  deep: { name: 'deep', fanOuts: Array.from({ length: 50 }, () => 1) },
  scale: { name: 'scale', fanOuts: [100, 100] },
};

/** Smaller trees of the same kinds, for --quick and for warming up a process. */
export const QUICK_SHAPES: Record<Exclude<ShapeName, 'huge'>, TreeShape> = {
  wide: { name: 'wide', fanOuts: [200] },
  balanced: { name: 'balanced', fanOuts: [5, 5, 5] },
  deep: { name: 'deep', fanOuts: Array.from({ length: 10 }, () => 1) },
  scale: { name: 'scale', fanOuts: [10, 50] },
};

export function branchCount(shape: TreeShape): number {
  let total = 1;
  let level = 1;
  for (const f of shape.fanOuts) {
    level *= f;
    total += level;
  }
  return total;
}

export function leafCount(shape: TreeShape): number {
  return shape.fanOuts.reduce((n, f) => n * f, 1);
}

/** Parents (branches that spawn) = branches - leaves. */
export function parentCount(shape: TreeShape): number {
  return branchCount(shape) - leafCount(shape);
}

/** Agent calls in the tree: one per leaf, two per parent (the spawn decision and the resumed step). */
export function agentCalls(shape: TreeShape): number {
  return leafCount(shape) + 2 * parentCount(shape);
}

/**
 * Ideal makespan with zero orchestration cost and at most `concurrency` running children per
 * fan-out (the Map's MaxConcurrency). Subtrees at one level are identical, so
 *   T(leaf) = L,   T(level i) = 2L + ceil(f_i / c) * T(level i+1)
 * (two agent calls of the parent around ceil(f/c) waves of equal children; for equal jobs waves
 * are optimal, so this is the exact critical path, not a bound).
 */
export function idealMakespanMs(shape: TreeShape, latencyMs: number, concurrency: number): number {
  let t = latencyMs;
  for (let i = shape.fanOuts.length - 1; i >= 0; i--) {
    t = 2 * latencyMs + Math.ceil(shape.fanOuts[i] / concurrency) * t;
  }
  return t;
}

export function agentName(shape: TreeShape, level: number): string {
  return level === shape.fanOuts.length ? 'Leaf' : `L${level}`;
}

export interface ScenarioInput {
  name: string;
  request: unknown;
  entry: string;
  agents: AgentRegistry;
  limits: Partial<Limits>;
}

/**
 * One script agent per level. A parent answers parallel_invoke with f copies of the next level's
 * agent, then (resumed with the aggregate) a constant final answer, so items never grow with
 * the depth of the tree. Limits are opened exactly as wide as the tree needs.
 */
export function scenarioFor(shape: TreeShape, latencyMs: number, concurrency: number): ScenarioInput {
  const delay = latencyMs > 0 ? { $delayMs: latencyMs } : {};
  const agents: AgentRegistry = {};
  shape.fanOuts.forEach((fanOut, level) => {
    const child = agentName(shape, level + 1);
    agents[agentName(shape, level)] = {
      kind: 'script',
      allowed: [child],
      responses: [
        { ...delay, next_action: 'parallel_invoke', agents: Array.from({ length: fanOut }, () => child) },
        { ...delay, next_action: 'final_response', content: 'done' },
      ],
    };
  });
  agents.Leaf = { kind: 'script', responses: [{ ...delay, next_action: 'final_response', content: { v: 1 } }] };
  return {
    name: `bench-${shape.name}`,
    request: 'go',
    entry: agentName(shape, 0),
    agents,
    limits: {
      maxDepth: Math.max(1, shape.fanOuts.length),
      maxFanOut: Math.max(1, ...shape.fanOuts),
      maxBranches: branchCount(shape),
      maxConcurrentBranches: concurrency,
      maxStepsPerBranch: 25,
    },
  };
}

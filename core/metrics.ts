/** Run metrics, computed from the branches: counts by status, depth, success rate, timings, usage. */
import type { RunCost } from './cost';
import type { BranchRecord, BranchStatus, RunRecord } from './model';
import { budgetUsage, type BudgetUsage } from './run-budget';
import { mergeToolStats, type ToolStats } from './tools';

export interface RunMetrics {
  totalCreated: number;
  activeCount: number;
  maxDepth: number;
  avgDepth: number;
  /** Percentage of ended (non-cancelled) branches that completed; null when none ended (0/0). */
  successRate: number | null;
  completed: number;
  failed: number;
  cancelled: number;
  timedOut: number;
  byStatus: Record<BranchStatus, number>;
  fanOut: { spawns: number; maxWidth: number; avgWidth: number };
  steps: number;
  /** Agent call attempts made again by the agents' retry policies (`retry`), in all. */
  retries: number;
  usage: { inputTokens: number; outputTokens: number };
  /** User tool calls per tool (LLM agents with tools): calls, failed calls, time spent; absent when none ran. */
  tools?: Record<string, ToolStats[string] & { avgMs: number }>;
  /** Usage against the run's budgets (`limits.maxRunTokens`, `limits.maxRunSeconds`), when it has any. */
  budgets?: BudgetUsage;
  /** What the run cost in AWS services (the cost meter, core/cost-meter.ts); absent where no meter ran. */
  cost?: RunCost;
}

export type MetricBranch = Pick<BranchRecord, 'status' | 'depth' | 'parentId' | 'parentSeq' | 'stepCount'> &
  Partial<Pick<BranchRecord, 'usage' | 'toolStats' | 'agentRetries'>>;

/** What computeMetrics reads of a branch, and nothing else (a run's metrics kept without its values). */
export function metricBranch(b: MetricBranch): MetricBranch {
  const { status, depth, parentId, parentSeq, stepCount, usage, toolStats, agentRetries } = b;
  return { status, depth, parentId, parentSeq, stepCount, usage, toolStats, agentRetries };
}

export function computeMetrics(
  branches: readonly MetricBranch[],
  run?: Pick<RunRecord, 'limits' | 'createdAt' | 'endedAt'>,
  now: number = run?.endedAt ?? Date.now(),
): RunMetrics {
  const byStatus: Record<BranchStatus, number> = {
    PENDING: 0, RUNNING: 0, WAITING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0, TIMED_OUT: 0,
  };
  const widths = new Map<string, number>();
  let depthSum = 0;
  let maxDepth = 0;
  let steps = 0;
  let retries = 0;
  const usage = { inputTokens: 0, outputTokens: 0 };
  const tools: ToolStats = {};
  for (const b of branches) {
    mergeToolStats(tools, b.toolStats);
    byStatus[b.status]++;
    depthSum += b.depth;
    maxDepth = Math.max(maxDepth, b.depth);
    steps += b.stepCount;
    retries += b.agentRetries ?? 0;
    usage.inputTokens += b.usage?.inputTokens ?? 0;
    usage.outputTokens += b.usage?.outputTokens ?? 0;
    if (b.parentId !== null) {
      const key = `${b.parentId}#${b.parentSeq}`;
      widths.set(key, (widths.get(key) ?? 0) + 1);
    }
  }
  const ended = byStatus.COMPLETED + byStatus.FAILED + byStatus.TIMED_OUT;
  const widthList = [...widths.values()];
  return {
    totalCreated: branches.length,
    activeCount: byStatus.PENDING + byStatus.RUNNING + byStatus.WAITING,
    maxDepth,
    avgDepth: round(branches.length ? depthSum / branches.length : 0),
    successRate: ended ? round((byStatus.COMPLETED / ended) * 100) : null,
    completed: byStatus.COMPLETED,
    failed: byStatus.FAILED,
    cancelled: byStatus.CANCELLED,
    timedOut: byStatus.TIMED_OUT,
    byStatus,
    fanOut: {
      spawns: widthList.length,
      maxWidth: widthList.length ? Math.max(...widthList) : 0,
      avgWidth: round(widthList.length ? widthList.reduce((a, b) => a + b, 0) / widthList.length : 0),
    },
    steps,
    retries,
    usage,
    ...(Object.keys(tools).length
      ? { tools: Object.fromEntries(Object.entries(tools).map(([name, s]) => [name, { ...s, avgMs: round(s.totalMs / s.calls) }])) }
      : {}),
    ...(run && budgetUsage(run, usage, now) ? { budgets: budgetUsage(run, usage, now) } : {}),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * How one sync point's fan-out runs on the state machine (adapters/stepfunctions/fan-out.asl.json),
 * and what it costs in Step Functions transitions. Pure: the adapters build the execution input
 * from the plan, the cost meter counts from it.
 *
 * - INLINE: one Map state in the execution. The cheapest (one transition per child), but AWS
 *   runs at most 40 inline iterations at once whatever MaxConcurrency says, and a Standard
 *   execution's history ends at 25,000 events (an iteration writes about 10).
 * - DISTRIBUTED: a Distributed Map whose child executions each take a batch of children and
 *   run them in an inline Map; the child executions run `batchConcurrency` at a time, so up to
 *   batchConcurrency × batchSize children are in flight, and each child execution has its own
 *   history. Per batch it costs two transitions more (the child execution and its Map).
 */
import { SQS_CONSUME_PER_MESSAGE, type CostCounters } from './cost';

export type FanOutMode = 'INLINE' | 'DISTRIBUTED';

/** AWS runs at most this many inline Map iterations at once. */
export const INLINE_MAP_MAX_CONCURRENCY = 40;
/** Widest fan-out kept inline: ~10 history events per child stays well inside 25,000. */
export const INLINE_MAX_CHILDREN = 1_000;

export interface FanOutPlan {
  mode: FanOutMode;
  /** Children per child execution (DISTRIBUTED); all of them for INLINE. */
  batchSize: number;
  /** Child executions at once (DISTRIBUTED); 1 for INLINE. */
  batchConcurrency: number;
}

export function planFanOut(children: number, maxConcurrency: number): FanOutPlan {
  const inFlight = Math.max(1, Math.min(children, maxConcurrency));
  if (children <= INLINE_MAX_CHILDREN && inFlight <= INLINE_MAP_MAX_CONCURRENCY) {
    return { mode: 'INLINE', batchSize: Math.max(1, children), batchConcurrency: 1 };
  }
  const batchSize = Math.min(INLINE_MAP_MAX_CONCURRENCY, inFlight);
  return { mode: 'DISTRIBUTED', batchSize, batchConcurrency: Math.max(1, Math.floor(inFlight / batchSize)) };
}

/**
 * Transitions one fan-out costs when every child reports: ChoosePath, the Map, one DispatchChild
 * per child and Aggregate; DISTRIBUTED adds a child execution and its inner Map per batch.
 * Each RecordChildFailure (a child that timed out or could not be dispatched) adds one more.
 */
export function fanOutTransitions(plan: FanOutPlan, children: number): number {
  const base = 3 + children;
  return plan.mode === 'INLINE' ? base : base + 2 * Math.ceil(children / plan.batchSize);
}

/**
 * What starting one fan-out costs, counted once per execution actually started: its
 * transitions, and the SQS requests of its DispatchChild sends (one each, plus their
 * consumption by the step worker's event source mapping).
 */
export function fanOutUsage(children: number, maxConcurrency: number): Partial<CostCounters> {
  return {
    stepFunctionsTransitions: fanOutTransitions(planFanOut(children, maxConcurrency), children),
    sqsRequests: children * (1 + SQS_CONSUME_PER_MESSAGE),
  };
}

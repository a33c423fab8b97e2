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
 * - BATCHED (the default from two children on): one Map iteration per batch of up to
 *   BATCH_MAX_CHILDREN children, and one task token per batch. Its DispatchBatch task sends the
 *   batch's first `window` children; each child's end sends the batch's next child (so at most
 *   `window` of a batch run at once, and `batchConcurrency × window` in all), and the end that
 *   finds every child of the batch counted releases the batch's token. One transition per batch
 *   instead of one per child: 150 children cost 4 transitions, not 153. A batch's timeout is the
 *   child timeout once per wave of the window and once more (the safety net: each child's own timeout is
 *   enforced where it runs). A single child keeps INLINE: batching saves nothing there and adds
 *   a hop.
 * The per-child paths (INLINE, DISTRIBUTED) stay for a runtime that asks for them (`per-child`),
 * and the conformance suites and the simulation hold both.
 */
import { SQS_CONSUME_PER_MESSAGE, type CostCounters } from './cost';

export type FanOutMode = 'INLINE' | 'DISTRIBUTED' | 'BATCHED';
/** How children are dispatched: in batches (the default) or one Map iteration each. */
export type FanOutDispatch = 'batched' | 'per-child';

/** AWS runs at most this many inline Map iterations at once. */
export const INLINE_MAP_MAX_CONCURRENCY = 40;
/** Widest fan-out kept inline: ~10 history events per child stays well inside 25,000. */
export const INLINE_MAX_CHILDREN = 1_000;
/** Children per batch: a fan-in shard's worth, so 10,000 children are 40 batches (one inline Map). */
export const BATCH_MAX_CHILDREN = 250;
/** From this width on, children are dispatched in batches. */
export const BATCHED_MIN_CHILDREN = 2;

export interface FanOutPlan {
  mode: FanOutMode;
  /** Children per child execution (DISTRIBUTED); all of them for INLINE. */
  batchSize: number;
  /** Child executions at once (DISTRIBUTED), batches at once (BATCHED); 1 for INLINE. */
  batchConcurrency: number;
  /** BATCHED: children of one batch running at once (each end sends the next); batchSize otherwise. */
  window: number;
}

/** The one rule choosing a fan-out's path and batch sizes from its width and concurrency limit (0: no limit). */
export function planFanOut(children: number, maxConcurrency: number, dispatch: FanOutDispatch = 'batched'): FanOutPlan {
  if (dispatch === 'batched' && children >= BATCHED_MIN_CHILDREN) {
    const inFlight = maxConcurrency > 0 ? Math.min(children, maxConcurrency) : children;
    const batchSize = Math.min(children, BATCH_MAX_CHILDREN);
    const batches = Math.ceil(children / batchSize);
    const batchConcurrency = Math.min(batches, INLINE_MAP_MAX_CONCURRENCY, inFlight);
    const window = maxConcurrency > 0 ? Math.min(batchSize, Math.max(1, Math.floor(inFlight / batchConcurrency))) : batchSize;
    return { mode: 'BATCHED', batchSize, batchConcurrency, window };
  }
  const inFlight = Math.max(1, Math.min(children, maxConcurrency));
  if (children <= INLINE_MAX_CHILDREN && inFlight <= INLINE_MAP_MAX_CONCURRENCY) {
    return { mode: 'INLINE', batchSize: Math.max(1, children), batchConcurrency: 1, window: Math.max(1, children) };
  }
  const batchSize = Math.min(INLINE_MAP_MAX_CONCURRENCY, inFlight);
  return { mode: 'DISTRIBUTED', batchSize, batchConcurrency: Math.max(1, Math.floor(inFlight / batchSize)), window: batchSize };
}

/**
 * BATCHED: the batch timeout, the safety net above each child's own: one child timeout per wave
 * of the window, and one more (a child's clock starts with its first step, the batch's when it
 * is dispatched: queue time is the batch's).
 */
export function batchTimeoutSeconds(plan: FanOutPlan, childTimeoutSeconds: number): number {
  return childTimeoutSeconds * (Math.ceil(plan.batchSize / plan.window) + 1);
}

/**
 * Transitions one fan-out costs when every child reports: ChoosePath, the Map, one DispatchChild
 * per child and Aggregate; DISTRIBUTED adds a child execution and its inner Map per batch;
 * BATCHED has one DispatchBatch per batch instead of one DispatchChild per child.
 * Each RecordChildFailure (a child that timed out or could not be dispatched) or
 * RecordBatchFailure adds one more.
 */
export function fanOutTransitions(plan: FanOutPlan, children: number): number {
  const batches = Math.ceil(children / plan.batchSize);
  if (plan.mode === 'BATCHED') return 3 + batches;
  const base = 3 + children;
  return plan.mode === 'INLINE' ? base : base + 2 * batches;
}

/**
 * What starting one fan-out costs, counted once per execution actually started: its
 * transitions, and the SQS requests of its DispatchChild sends (one each, plus their
 * consumption by the step worker's event source mapping). A batch's children are sent by the
 * use cases through the step queue, whose meter counts them (meteredQueue).
 */
export function fanOutUsage(children: number, maxConcurrency: number, dispatch?: FanOutDispatch): Partial<CostCounters> {
  const plan = planFanOut(children, maxConcurrency, dispatch);
  return {
    stepFunctionsTransitions: fanOutTransitions(plan, children),
    sqsRequests: plan.mode === 'BATCHED' ? 0 : children * (1 + SQS_CONSUME_PER_MESSAGE),
  };
}

/**
 * How one sync point's fan-out runs on the state machine (adapters/stepfunctions/fan-out.asl.json),
 * and what it costs in Step Functions transitions. Pure: the adapters build the execution input
 * from the plan, the cost meter counts from it.
 *
 * - INLINE: one Map state in the execution, one iteration (and one transition) per child. AWS
 *   runs at most 40 inline iterations at once whatever MaxConcurrency says, and a Standard
 *   execution's history ends at 25,000 events (an iteration writes about 10).
 * - BATCHED (the default from two children on): one Map iteration per batch of up to
 *   BATCH_MAX_CHILDREN children, and one task token per batch. Its DispatchBatch task sends the
 *   batch's first `window` children; each child's end claims and sends the batch's next child not
 *   yet sent (a pool, as a Map's MaxConcurrency: at most `window` of a batch run at once, and
 *   `batchConcurrency × window` in all, and a slow child holds only its own place), and the end that
 *   finds every child of the batch counted releases the batch's token. One transition per batch
 *   instead of one per child: 150 children cost 4 transitions, not 153. A batch's timeout is the
 *   child timeout once per wave of the window and once more (the safety net: each child's own timeout is
 *   enforced where it runs). A single child keeps INLINE: batching saves nothing there and adds
 *   a hop.
 * A runtime may ask for one Map iteration per child (`per-child`, the path before batching, kept
 * for comparison: the conformance suites and the simulation hold both); it gets INLINE where one
 * execution's inline Map can hold the fan-out (at most INLINE_MAX_CHILDREN children, at most
 * INLINE_MAP_MAX_CONCURRENCY at once) and BATCHED past that. (A Distributed Map, whose child
 * executions cost two transitions more per batch, was the wide per-child path until batching
 * made every wide fan-out cheaper: it is gone.)
 */
import { SQS_CONSUME_PER_MESSAGE, type CostCounters } from './cost';

export type FanOutMode = 'INLINE' | 'BATCHED';
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
  /** Children per batch (BATCHED); all of them for INLINE. */
  batchSize: number;
  /** Batches at once (BATCHED); 1 for INLINE. */
  batchConcurrency: number;
  /** BATCHED: children of one batch running at once (each end sends the next); batchSize otherwise. */
  window: number;
}

/** The one rule choosing a fan-out's path and batch sizes from its width and concurrency limit (0: no limit). */
export function planFanOut(children: number, maxConcurrency: number, dispatch: FanOutDispatch = 'batched'): FanOutPlan {
  const inFlight = maxConcurrency > 0 ? Math.min(children, maxConcurrency) : children;
  const inlineFits = children <= INLINE_MAX_CHILDREN && inFlight <= INLINE_MAP_MAX_CONCURRENCY;
  if (children < BATCHED_MIN_CHILDREN || (dispatch === 'per-child' && inlineFits)) {
    return { mode: 'INLINE', batchSize: Math.max(1, children), batchConcurrency: 1, window: Math.max(1, children) };
  }
  const batchSize = Math.min(children, BATCH_MAX_CHILDREN);
  const batches = Math.ceil(children / batchSize);
  const batchConcurrency = Math.min(batches, INLINE_MAP_MAX_CONCURRENCY, inFlight);
  const window = maxConcurrency > 0 ? Math.min(batchSize, Math.max(1, Math.floor(inFlight / batchConcurrency))) : batchSize;
  return { mode: 'BATCHED', batchSize, batchConcurrency, window };
}

/**
 * BATCHED: the batch timeout, the safety net above each child's own: one child timeout per wave
 * of the window, and one more (a child's clock starts with its first step, the batch's when it
 * is dispatched: queue time is the batch's). It bounds the pool too: a place is never idle while
 * a child waits, so (list scheduling) the batch ends within n/w child timeouts of work shared by
 * w places, plus the one child that may start last and run a whole timeout: ≤ n/w·T + T.
 */
export function batchTimeoutSeconds(plan: FanOutPlan, childTimeoutSeconds: number): number {
  return childTimeoutSeconds * (Math.ceil(plan.batchSize / plan.window) + 1);
}

/**
 * Transitions one fan-out costs when every child reports: ChoosePath, the Map, one DispatchChild
 * per child and Aggregate; BATCHED has one DispatchBatch per batch instead of one DispatchChild
 * per child. Each RecordChildFailure (a child that timed out or could not be dispatched) or
 * RecordBatchFailure adds one more.
 */
export function fanOutTransitions(plan: FanOutPlan, children: number): number {
  if (plan.mode === 'BATCHED') return 3 + Math.ceil(children / plan.batchSize);
  return 3 + children;
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

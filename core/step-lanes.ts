/**
 * Two lanes for step messages, so a parent resumed after its fan-in never waits behind the leaf
 * steps of a wide tree. A branch's first step (step 0: a new child, the root) takes the `start`
 * lane; every later step (a parent resumed with its children's results, the next agent of a
 * hand-off) takes the `continue` lane, which has its own consumers. Work already under way thus
 * finishes before new work starts, and the fan-in latency no longer grows with the backlog.
 */
import type { SendOptions, StepMessage, StepQueue, StepReceipt } from './ports';

export type StepLane = 'start' | 'continue';

export const STEP_LANES: readonly StepLane[] = ['start', 'continue'];

/** Deliveries of a step message before it goes to the dead-letter queue (each lane's redrive, AWS and local). */
export const MAX_RECEIVE_COUNT = 5;

export function laneOf(message: StepMessage): StepLane {
  return message.step > 0 ? 'continue' : 'start';
}

/**
 * How many consumers the continue lane gets for `start` consumers of the start lane: half as
 * many, at least two. Resumed parents are fewer than leaves (one per fan-out), so half is ample,
 * and two keep a resume from waiting behind another that is slow. Used by the local runtime
 * (pollers) and the AWS stack (the continue queue's event source MaximumConcurrency, where
 * Lambda's minimum is also 2).
 */
export function continueLaneConcurrency(start: number): number {
  return Math.max(2, Math.ceil(start / 2));
}

/** A StepQueue that sends each message to the queue of its lane (order kept within a lane). */
export class LanedStepQueue implements StepQueue {
  constructor(private readonly lanes: Record<StepLane, StepQueue>) {}

  async send(messages: StepMessage[], options?: SendOptions): Promise<void> {
    const start = messages.filter((m) => laneOf(m) === 'start');
    const next = messages.filter((m) => laneOf(m) === 'continue');
    if (start.length) await this.lanes.start.send(start, options);
    if (next.length) await this.lanes.continue.send(next, options);
  }

  /** A message was received from the queue of its lane. */
  async redeliverAfter(receipt: StepReceipt, seconds: number): Promise<void> {
    await this.lanes[laneOf(receipt.message)].redeliverAfter(receipt, seconds);
  }
}

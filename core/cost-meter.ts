/**
 * The cost meter (what core/cost.ts counts, counted on the real code path). Adapters report into
 * a CostMeter (a CostSink) by run; the meter flushes its sums to the run's cost record in
 * batches, so metering adds about one small write per flush, not per request. meteredQueue and
 * meteredPublisher count the SQS requests and EventBridge entries of what they pass on.
 */
import { addCost, emptyCost, shareOf, SQS_CONSUME_PER_MESSAGE, type CostCounters } from './cost';
import { SEND_ALL_EVENTS, sendsToBus, type EventPolicy } from './event-policy';
import type { LifecycleEvent } from './events';
import type { Scope } from './model';
import type { CostSink, EventPublisher, SendOptions, StepMessage, StepQueue } from './ports';

/** Messages per SendMessageBatch. */
const SEND_BATCH = 10;

/** Where the meter's sums go (the store's cost record of the run). */
export interface CostRecorder {
  addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void>;
}

/** Sums usage by run in memory; flush() adds the sums to the cost records (one write per run). */
export class CostMeter implements CostSink {
  private pending = new Map<string, { scope: Scope; usage: CostCounters }>();

  add(scope: Scope, usage: Partial<CostCounters>): void {
    const key = `${scope.team}\u0000${scope.runId}`;
    let entry = this.pending.get(key);
    if (!entry) this.pending.set(key, (entry = { scope: { team: scope.team, runId: scope.runId }, usage: emptyCost() }));
    addCost(entry.usage, usage);
  }

  /**
   * Usage of work that served every run with usage not flushed yet (a Lambda invocation: the
   * meter is flushed at the end of each, so these are the runs it touched), in equal shares.
   */
  addToPending(usage: Partial<CostCounters>): void {
    const entries = [...this.pending.values()];
    for (const entry of entries) addCost(entry.usage, shareOf(usage, entries.length));
  }

  /** Usage shared equally by some runs (an invocation whose records came from several). */
  addShared(scopes: readonly Scope[], usage: Partial<CostCounters>): void {
    const distinct = new Map(scopes.map((s) => [`${s.team}\u0000${s.runId}`, s]));
    for (const scope of distinct.values()) this.add(scope, shareOf(usage, distinct.size));
  }

  /** Usage not flushed yet for a run (for views that read before a flush). */
  pendingFor(scope: Scope): CostCounters | undefined {
    return this.pending.get(`${scope.team}\u0000${scope.runId}`)?.usage;
  }

  async flush(recorder: CostRecorder): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    const failed: typeof batch = [];
    await Promise.all(
      batch.map(async (entry) => {
        try {
          await recorder.addCost(entry.scope, entry.usage);
        } catch {
          failed.push(entry);
        }
      }),
    );
    // Not lost: what could not be written goes back for the next flush.
    for (const entry of failed) this.add(entry.scope, entry.usage);
  }
}

/** Counts the SQS requests of the step messages a queue sends (and their consumption). */
export function meteredQueue(queue: StepQueue, sink: CostSink): StepQueue {
  return {
    send: async (messages: StepMessage[], options?: SendOptions) => {
      await queue.send(messages, options);
      for (const [scope, count] of byRun(messages)) {
        sink.add(scope, { sqsRequests: Math.ceil(count / SEND_BATCH) + count * SQS_CONSUME_PER_MESSAGE });
      }
    },
    redeliverAfter: async (receipt, seconds) => {
      await queue.redeliverAfter(receipt, seconds);
      sink.add({ team: receipt.message.team, runId: receipt.message.runId }, { sqsRequests: 1 });
    },
  };
}

/**
 * Counts one EventBridge entry per lifecycle event the team's policy sends to the bus (all of
 * them by default). Locally every event still reaches the local bus (the trace, the hooks); only
 * those the stack would send are counted.
 */
export function meteredPublisher(events: EventPublisher, sink: CostSink, policy: EventPolicy = SEND_ALL_EVENTS): EventPublisher {
  return {
    publish: async (list: LifecycleEvent[]) => {
      await events.publish(list);
      for (const [scope, count] of byRun(list.filter((event) => sendsToBus(event, policy)))) sink.add(scope, { eventBridgeEntries: count });
    },
  };
}

function byRun(items: Scope[]): [Scope, number][] {
  const counts = new Map<string, [Scope, number]>();
  for (const item of items) {
    const key = `${item.team}\u0000${item.runId}`;
    const entry = counts.get(key);
    if (entry) entry[1]++;
    else counts.set(key, [{ team: item.team, runId: item.runId }, 1]);
  }
  return [...counts.values()];
}

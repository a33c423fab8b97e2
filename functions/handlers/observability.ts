/**
 * What the handlers measure, as CloudWatch metrics (Powertools Metrics, embedded metric format):
 * one namespace, one dimension set `{ service: "branch-spawner", team }` so the dashboard and the
 * alarms (infra/spawner-monitoring.ts) read the same series whichever function emitted them.
 *
 * The measuring is done by decorators of the ports (events, agent invoker), so the use cases stay
 * unaware of it: a lifecycle event is counted as it is published, an agent call timed as it runs.
 */
import type { LifecycleEvent } from '../../core/events';
import type { AgentInvocation, AgentInvoker, AgentReply, EventPublisher } from '../../core/ports';

export const METRIC_NAMESPACE = 'BranchSpawner';
/** The `service` dimension of every metric (not the function's name: one series for all functions). */
export const METRIC_SERVICE = 'branch-spawner';

export const METRICS = {
  branchesCreated: 'BranchesCreated',
  branchesCompleted: 'BranchesCompleted',
  branchesFailed: 'BranchesFailed',
  branchesCancelled: 'BranchesCancelled',
  runsStarted: 'RunsStarted',
  runsFailed: 'RunsFailed',
  /** Milliseconds the Aggregate task takes to settle a sync point (claim, aggregate, resume the parent). */
  fanInLatency: 'FanInLatency',
  /** Milliseconds of one agent call (all kinds). */
  agentLatency: 'AgentLatency',
  agentErrors: 'AgentErrors',
  /** Agent call attempts made again by an agent's retry policy (AgentRetryScheduled events). */
  agentRetries: 'AgentRetries',
  inputTokens: 'InputTokens',
  outputTokens: 'OutputTokens',
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];
export type MetricUnitName = 'Count' | 'Milliseconds';

/** The part of Powertools' Metrics the handlers use (a recorder in tests). */
export interface MetricSink {
  addMetric(name: MetricName, unit: MetricUnitName, value: number): void;
}

const EVENT_METRICS: Partial<Record<LifecycleEvent['type'], MetricName>> = {
  BranchCreated: METRICS.branchesCreated,
  BranchCompleted: METRICS.branchesCompleted,
  BranchFailed: METRICS.branchesFailed,
  BranchCancelled: METRICS.branchesCancelled,
  RunStarted: METRICS.runsStarted,
  RunFailed: METRICS.runsFailed,
  AgentRetryScheduled: METRICS.agentRetries,
};

/** Counts lifecycle events as they are published (at-least-once, like the events themselves). */
export function eventsWithMetrics(publisher: EventPublisher, sink: MetricSink): EventPublisher {
  return {
    async publish(events) {
      await publisher.publish(events);
      for (const event of events) {
        const name = EVENT_METRICS[event.type];
        if (name) sink.addMetric(name, 'Count', 1);
      }
    },
  };
}

/** Times every agent call and counts its tokens. */
export function invokerWithMetrics(invoker: AgentInvoker, sink: MetricSink, now: () => number = () => Date.now()): AgentInvoker {
  return {
    async invoke(call: AgentInvocation): Promise<AgentReply> {
      const started = now();
      try {
        const reply = await invoker.invoke(call);
        if (reply?.usage) {
          if (Number.isFinite(reply.usage.inputTokens)) sink.addMetric(METRICS.inputTokens, 'Count', reply.usage.inputTokens);
          if (Number.isFinite(reply.usage.outputTokens)) sink.addMetric(METRICS.outputTokens, 'Count', reply.usage.outputTokens);
        }
        return reply;
      } catch (error) {
        sink.addMetric(METRICS.agentErrors, 'Count', 1);
        throw error;
      } finally {
        sink.addMetric(METRICS.agentLatency, 'Milliseconds', now() - started);
      }
    },
  };
}

/** Times a sync point's settlement (the Aggregate task). */
export async function timedFanIn<T>(sink: MetricSink, work: () => Promise<T>, now: () => number = () => Date.now()): Promise<T> {
  const started = now();
  try {
    return await work();
  } finally {
    sink.addMetric(METRICS.fanInLatency, 'Milliseconds', now() - started);
  }
}

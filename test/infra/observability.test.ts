/**
 * Powertools in the stack: every function traced (active X-Ray, Tracer settings) and sending EMF
 * metrics to one namespace; alarms and dashboard widgets built on the handlers' own metrics.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { AGENT_LATENCY_ALARM_MS, BRANCH_FAILURE_RATE_ALARM_PERCENT, FAN_IN_LATENCY_ALARM_MS } from '../../infra/spawner-monitoring';
import type { SpawnerFunctionName } from '../../infra/spawner-function';
import { METRIC_NAMESPACE, METRIC_SERVICE, METRICS, eventsWithMetrics, invokerWithMetrics, timedFanIn, type MetricSink } from '../../functions/handlers/observability';
import { agentRetryEvent, branchEvent } from '../../core/events';
import { functionOf, resourcesOf, synthTeam, type Synthesized } from './support';

const FUNCTIONS: SpawnerFunctionName[] = ['api', 'trigger', 'step-worker', 'record-child-failure', 'aggregate', 'dlq-handler'];
let research: Synthesized;
beforeAll(() => {
  research = synthTeam('research', { bundle: false });
});

describe('tracer and metrics configuration', () => {
  it('every function has active tracing and the Powertools settings (one metrics namespace, no responses in traces)', () => {
    for (const name of FUNCTIONS) {
      const { props } = functionOf(research.template, name);
      expect(props.TracingConfig, name).toEqual({ Mode: 'Active' });
      expect(props.Environment.Variables, name).toMatchObject({
        POWERTOOLS_SERVICE_NAME: name,
        POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
        POWERTOOLS_TRACER_CAPTURE_RESPONSE: 'false',
        POWERTOOLS_TRACER_CAPTURE_ERROR: 'true',
        TEAM: 'research',
      });
    }
  });
});

describe('alarms on the handlers metrics', () => {
  const dimensions = [
    { Name: 'service', Value: METRIC_SERVICE },
    { Name: 'team', Value: 'research' },
  ];

  it('branch failure rate: failed / (completed + failed) over 50 % for three 5-minute periods', () => {
    research.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: BRANCH_FAILURE_RATE_ALARM_PERCENT,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: Match.anyValue(),
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: '100 * failed / (completed + failed)' }),
        Match.objectLike({
          Id: 'failed',
          MetricStat: Match.objectLike({
            Metric: { Namespace: METRIC_NAMESPACE, MetricName: METRICS.branchesFailed, Dimensions: dimensions },
            Stat: 'Sum',
            Period: 300,
          }),
        }),
        Match.objectLike({
          Id: 'completed',
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: METRICS.branchesCompleted }) }),
        }),
      ]),
    });
  });

  it('agent latency and fan-in latency p99 over their thresholds for 15 minutes', () => {
    for (const [metric, threshold] of [[METRICS.agentLatency, AGENT_LATENCY_ALARM_MS], [METRICS.fanInLatency, FAN_IN_LATENCY_ALARM_MS]] as const) {
      research.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: METRIC_NAMESPACE,
        MetricName: metric,
        Dimensions: dimensions,
        ExtendedStatistic: 'p99',
        Period: 300,
        Threshold: threshold,
        EvaluationPeriods: 3,
        AlarmActions: Match.anyValue(),
      });
    }
  });

  it('every alarm notifies the alarm topic, and the dashboard graphs the handlers metrics', () => {
    for (const [, alarm] of resourcesOf(research.template, 'AWS::CloudWatch::Alarm')) {
      expect(alarm.Properties.AlarmActions).toHaveLength(1);
    }
    const [[, dashboard]] = resourcesOf(research.template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const metric of Object.values(METRICS).filter((m) => m !== METRICS.runsStarted && m !== METRICS.runsFailed)) {
      expect(body, metric).toContain(`"${METRIC_NAMESPACE}\\",\\"${metric}\\"`);
    }
  });
});

describe('the metering decorators', () => {
  const recorder = () => {
    const seen: [string, string, number][] = [];
    const sink: MetricSink = { addMetric: (name, unit, value) => void seen.push([name, unit, value]) };
    return { seen, sink };
  };

  it('count lifecycle events (an agent\'s retried attempt as AgentRetries), time agent calls with their tokens and errors, and time a fan-in', async () => {
    const { seen, sink } = recorder();
    const branch = { team: 't', runId: 'r', id: 'root', parentId: null, agent: 'A', type: 'SIMPLE' as const, depth: 0, status: 'COMPLETED' as const };
    const retried = agentRetryEvent(branch, 0, 2, { attempt: 1, attempts: 3, delayMs: 100, kind: 'error', error: 'boom' });
    await eventsWithMetrics({ publish: async () => undefined }, sink).publish([branchEvent('BranchCreated', branch, 1), retried, branchEvent('BranchCompleted', branch, 2)]);
    let clock = 0;
    const now = () => (clock += 25);
    const ok = invokerWithMetrics({ invoke: async () => ({ response: 'x', usage: { inputTokens: 10, outputTokens: 5 } }) }, sink, now);
    await ok.invoke({} as never);
    const failing = invokerWithMetrics({ invoke: async () => Promise.reject(new Error('no')) }, sink, now);
    await expect(failing.invoke({} as never)).rejects.toThrow('no');
    expect(await timedFanIn(sink, async () => 'done', now)).toBe('done');
    expect(seen).toEqual([
      [METRICS.branchesCreated, 'Count', 1],
      [METRICS.agentRetries, 'Count', 1],
      [METRICS.branchesCompleted, 'Count', 1],
      [METRICS.inputTokens, 'Count', 10],
      [METRICS.outputTokens, 'Count', 5],
      [METRICS.agentLatency, 'Milliseconds', 25],
      [METRICS.agentErrors, 'Count', 1],
      [METRICS.agentLatency, 'Milliseconds', 25],
      [METRICS.fanInLatency, 'Milliseconds', 25],
    ]);
  });
});

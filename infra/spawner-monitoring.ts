/**
 * Watching a team's stack: the alarms (to an SNS topic, emailed when the team names an address) on
 * the queues, the fan-out, the functions, the API and the handlers' own metrics, and a dashboard.
 * Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { METRIC_NAMESPACE, METRIC_SERVICE, METRICS, type MetricName } from '../functions/handlers/observability';
import type { SpawnerFunction, SpawnerFunctionName } from './spawner-function';

/** Alarm thresholds on the handlers' metrics (each must hold for three 5-minute periods). */
export const BRANCH_FAILURE_RATE_ALARM_PERCENT = 50;
export const AGENT_LATENCY_ALARM_MS = 120_000;
export const FAN_IN_LATENCY_ALARM_MS = 30_000;
/** Step queue messages older than this raise an alarm: the workers do not keep up. */
export const STEP_QUEUE_AGE_ALARM_SECONDS = 300;

/** A metric the handlers emit (functions/handlers/observability.ts), in this team's series. */
export function spawnerMetric(team: string, name: MetricName, options: { statistic?: string; period?: Duration } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRIC_NAMESPACE,
    metricName: name,
    dimensionsMap: { service: METRIC_SERVICE, team },
    period: options.period ?? Duration.minutes(5),
    statistic: options.statistic ?? cloudwatch.Stats.SUM,
  });
}

/** What is watched. */
export interface Monitored {
  team: string;
  alarmEmail?: string;
  stepQueue: sqs.Queue;
  continueQueue: sqs.Queue;
  stepDlq: sqs.Queue;
  triggerDlq: sqs.Queue;
  stateMachine: sfn.StateMachine;
  functions: Record<SpawnerFunctionName, SpawnerFunction>;
  api: apigw.RestApi;
}

export interface Monitoring {
  alarmTopic: sns.Topic;
  alarms: cloudwatch.Alarm[];
  dashboard: cloudwatch.Dashboard;
}

export function createMonitoring(scope: Construct, m: Monitored, dashboardName: string): Monitoring {
  const alarmTopic = new sns.Topic(scope, 'AlarmTopic', { displayName: `branch-spawner ${m.team} alarms`, enforceSSL: true });
  if (m.alarmEmail) alarmTopic.addSubscription(new subscriptions.EmailSubscription(m.alarmEmail));
  const alarms = createAlarms(scope, { ...m, alarmTopic });
  return { alarmTopic, alarms, dashboard: createDashboard(scope, m, alarms, dashboardName) };
}

function createAlarms(scope: Construct, m: Monitored & { alarmTopic: sns.Topic }): cloudwatch.Alarm[] {
  const alarms: cloudwatch.Alarm[] = [];
  const metric = (name: MetricName, options?: { statistic?: string }) => spawnerMetric(m.team, name, options);
  const action = new cwActions.SnsAction(m.alarmTopic);
  const alarm = (id: string, metric: cloudwatch.IMetric, description: string) => {
    const a = new cloudwatch.Alarm(scope, id, {
      metric,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `branch-spawner ${m.team}: ${description}`,
    });
    a.addAlarmAction(action);
    alarms.push(a);
    return a;
  };
  const minute = { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM };
  const fiveMinutes = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };
  // The dlq-handler drains the step DLQ at once, so its visible count stays near 0: what it
  // received is what went there (a redrive is not counted in NumberOfMessagesSent). The visible
  // count still tells when the handler itself fails to drain it.
  alarm('StepDlqReceivedAlarm', m.stepDlq.metricNumberOfMessagesReceived(fiveMinutes), 'branch steps were dead-lettered (the dlq-handler failed their branches)');
  alarm('StepDlqNotEmptyAlarm', m.stepDlq.metricApproximateNumberOfMessagesVisible(minute), 'branch steps are in the step DLQ');
  alarm('TriggerDlqNotEmptyAlarm', m.triggerDlq.metricApproximateNumberOfMessagesVisible(minute), 'run requests are in the trigger DLQ');
  alarm('FanOutFailedAlarm', m.stateMachine.metricFailed(fiveMinutes), 'fan-out executions failed');
  alarm('FanOutTimedOutAlarm', m.stateMachine.metricTimedOut(fiveMinutes), 'fan-out executions timed out');
  // A throttled SQS batch comes back only after the queue's visibility timeout.
  const throttles = Object.values(m.functions);
  alarm(
    'FunctionThrottlesAlarm',
    new cloudwatch.MathExpression({
      expression: throttles.map((_, i) => `t${i}`).join(' + '),
      usingMetrics: Object.fromEntries(throttles.map((f, i) => [`t${i}`, f.metricThrottles(fiveMinutes)])),
      period: Duration.minutes(5),
      label: 'throttled invocations (all functions)',
    }),
    'Lambda throttled the functions (reserved or account concurrency)',
  );
  alarm('StepWorkerErrorsAlarm', m.functions['step-worker'].metricErrors(fiveMinutes), 'the step-worker raised errors');
  alarm('ApiServerErrorsAlarm', m.api.metricServerError(fiveMinutes), 'the API answered 5xx');

  // On the handlers' own metrics (functions/handlers/observability.ts).
  const failureRate = new cloudwatch.MathExpression({
    expression: '100 * failed / (completed + failed)',
    usingMetrics: {
      failed: metric(METRICS.branchesFailed, { statistic: cloudwatch.Stats.SUM }),
      completed: metric(METRICS.branchesCompleted, { statistic: cloudwatch.Stats.SUM }),
    },
    period: Duration.minutes(5),
    label: 'branch failure rate (%)',
  });
  const threshold = (id: string, metric: cloudwatch.IMetric, value: number, periods: number, description: string) => {
    const a = new cloudwatch.Alarm(scope, id, {
      metric,
      threshold: value,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: periods,
      datapointsToAlarm: periods,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `branch-spawner ${m.team}: ${description}`,
    });
    a.addAlarmAction(action);
    alarms.push(a);
  };
  for (const [id, queue, lane] of [['StepQueueAgeAlarm', m.stepQueue, 'start'], ['ContinueQueueAgeAlarm', m.continueQueue, 'continue']] as const) {
    threshold(
      id,
      queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      STEP_QUEUE_AGE_ALARM_SECONDS,
      1,
      `the ${lane} lane's oldest step waited over ${STEP_QUEUE_AGE_ALARM_SECONDS} s (the workers do not keep up)`,
    );
  }
  threshold('BranchFailureRateAlarm', failureRate, BRANCH_FAILURE_RATE_ALARM_PERCENT, 3, `more than ${BRANCH_FAILURE_RATE_ALARM_PERCENT}% of ended branches failed for 15 minutes`);
  threshold(
    'AgentLatencyAlarm',
    metric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(99) }),
    AGENT_LATENCY_ALARM_MS,
    3,
    `agent calls took over ${AGENT_LATENCY_ALARM_MS / 1000} s (p99) for 15 minutes`,
  );
  threshold(
    'FanInLatencyAlarm',
    metric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(99) }),
    FAN_IN_LATENCY_ALARM_MS,
    3,
    `settling a sync point took over ${FAN_IN_LATENCY_ALARM_MS / 1000} s (p99) for 15 minutes`,
  );
  return alarms;
}

function createDashboard(scope: Construct, m: Monitored, alarms: cloudwatch.Alarm[], dashboardName: string): cloudwatch.Dashboard {
  const metric = (name: MetricName, options?: { statistic?: string }) => spawnerMetric(m.team, name, options);
  const fns = Object.values(m.functions);
  const fiveMinutes = { period: Duration.minutes(5) };
  return new cloudwatch.Dashboard(scope, 'Dashboard', {
    dashboardName,
    widgets: [
      [
        new cloudwatch.GraphWidget({
          title: 'API requests and errors',
          left: [m.api.metricCount(fiveMinutes), m.api.metricClientError(fiveMinutes), m.api.metricServerError(fiveMinutes)],
          right: [m.api.metricLatency({ ...fiveMinutes, statistic: cloudwatch.Stats.p(99) })],
        }),
        new cloudwatch.GraphWidget({
          title: 'Step queues (start and continue lanes)',
          left: [
            m.stepQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'start: visible' }),
            m.stepQueue.metricApproximateNumberOfMessagesNotVisible({ ...fiveMinutes, label: 'start: in flight' }),
            m.continueQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'continue: visible' }),
            m.continueQueue.metricApproximateNumberOfMessagesNotVisible({ ...fiveMinutes, label: 'continue: in flight' }),
          ],
          right: [
            m.stepQueue.metricApproximateAgeOfOldestMessage({ ...fiveMinutes, label: 'start: oldest (s)' }),
            m.continueQueue.metricApproximateAgeOfOldestMessage({ ...fiveMinutes, label: 'continue: oldest (s)' }),
          ],
        }),
        new cloudwatch.GraphWidget({
          title: 'Dead-letter queues',
          left: [
            m.stepDlq.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'step DLQ' }),
            m.triggerDlq.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, label: 'trigger DLQ' }),
          ],
        }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: 'Fan-out executions',
          left: [
            m.stateMachine.metricStarted(fiveMinutes),
            m.stateMachine.metricSucceeded(fiveMinutes),
            m.stateMachine.metricFailed(fiveMinutes),
            m.stateMachine.metricAborted(fiveMinutes),
            m.stateMachine.metricTimedOut(fiveMinutes),
          ],
        }),
        new cloudwatch.GraphWidget({
          title: 'Function errors',
          left: fns.map((f) => f.metricErrors({ ...fiveMinutes, label: f.spawnerName })),
        }),
        new cloudwatch.GraphWidget({
          title: 'Function duration p99',
          left: fns.map((f) => f.metricDuration({ ...fiveMinutes, statistic: cloudwatch.Stats.p(99), label: f.spawnerName })),
        }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: 'Branches',
          left: [METRICS.branchesCreated, METRICS.branchesCompleted, METRICS.branchesFailed, METRICS.branchesCancelled].map((m) =>
            metric(m),
          ),
        }),
        new cloudwatch.GraphWidget({
          title: 'Agent calls and fan-in (ms)',
          left: [
            metric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(50) }),
            metric(METRICS.agentLatency, { statistic: cloudwatch.Stats.p(99) }),
            metric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(50) }),
            metric(METRICS.fanInLatency, { statistic: cloudwatch.Stats.p(99) }),
          ],
          right: [metric(METRICS.agentErrors), metric(METRICS.agentRetries)],
        }),
        new cloudwatch.GraphWidget({
          title: 'Tokens',
          left: [metric(METRICS.inputTokens), metric(METRICS.outputTokens)],
        }),
      ],
      [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: alarms, width: 24 })],
    ],
  });
}

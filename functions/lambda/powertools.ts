/**
 * Powertools in the Lambda entries: one Metrics (EMF to stdout, flushed after every invocation,
 * with a cold-start metric) and one Tracer (X-Ray: a segment per invocation, a subsegment per AWS
 * SDK call) per container. Only the Lambda entries load this: local runs emit no EMF.
 */
import middy from '@middy/core';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { Context } from 'aws-lambda';
import { METRIC_NAMESPACE, METRIC_SERVICE, type MetricSink } from '../handlers/observability';

export const tracer = new Tracer({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? METRIC_SERVICE });

export const metrics = new Metrics({
  namespace: METRIC_NAMESPACE,
  serviceName: METRIC_SERVICE,
  defaultDimensions: process.env.TEAM ? { team: process.env.TEAM } : {},
});

/** Powertools' Metrics behind the handlers' MetricSink. */
export const metricSink: MetricSink = {
  addMetric: (name, unit, value) => metrics.addMetric(name, unit === 'Count' ? MetricUnit.Count : MetricUnit.Milliseconds, value),
};

/** A Lambda entry with tracing (the handler's segment) and metrics flushed after each invocation. */
export function instrument<E, R>(handler: (event: E, context: Context) => Promise<R>) {
  return middy(handler)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}

/** Traces an AWS SDK v3 client's calls (a subsegment each). */
export function traced<C>(client: C): C {
  return tracer.captureAWSv3Client(client);
}

/**
 * Builds the use cases' dependencies from the Lambda environment (set by the CDK stack).
 * Clients are created once per container and reused across invocations.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../adapters/s3/s3-blob-store';
import { llmInvokers } from '../../adapters/agents';
import { ToolBox } from '../../adapters/tools/tool-box';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { HttpInvoker } from '../../adapters/agents/http-invoker';
import { LambdaInvoker } from '../../adapters/agents/lambda-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { DynamoBranchStore } from '../../adapters/dynamodb';
import { EventBridgePublisher } from '../../adapters/eventbridge/eventbridge-publisher';
import { SqsStepQueue } from '../../adapters/sqs/sqs-step-queue';
import type { Context } from 'aws-lambda';
import { recordedEvents } from '../../core/use-cases/run-events';
import { invocationUsage } from '../../core/cost';
import { CostMeter, meteredPublisher, meteredQueue } from '../../core/cost-meter';
import { takeLoggedBytes } from './logged-bytes';
import { LanedStepQueue } from '../../core/step-lanes';
import { busPublisher, SEND_ALL_EVENTS, type EventPolicy } from '../../core/event-policy';
import { SfnFanOutOrchestrator } from '../../adapters/stepfunctions/sfn-fan-out';
import { AggregatorRegistry } from '../../core/aggregators';
import { teamAggregators } from './team-aggregators';
import { teamToolModules } from './team-tools';
import type { Limits } from '../../core/model';
import type { AgentPolicy } from '../../core/run-request';
import { systemClock } from '../../core/ports';
import type { SpawnerDeps } from '../../core/use-cases';
import { eventsWithMetrics, invokerWithMetrics, type MetricSink } from '../handlers/observability';
import { metricSink, traced } from './powertools';
import { fromLambdaEnvironment, STACK_TOOL_VALUES, type SecretSource } from '../lambda-environment';
import type { ToolValueMode } from '../../core/tools';
import { SecretValues } from './secrets';
import { agentPolicyOf } from '../team-config';

export interface AwsConfig {
  team: string;
  tableName: string;
  /** The start lane's queue (step 0) and the continue lane's (later steps): core/step-lanes.ts. */
  stepQueueUrl: string;
  continueQueueUrl: string;
  stateMachineArn: string;
  eventBusName: string;
  policy: AgentPolicy;
  limitMaxima: Partial<Limits>;
  maxBodyBytes: number;
  ttlSeconds?: number;
  /** The team stack's bucket for large values; without one, values stay in the items. */
  blobBucket?: string;
  secretSources: Record<string, SecretSource>;
  audience?: string[];
  shareRuns?: boolean;
  /** Which per-branch events go to the bus (core/event-policy.ts). */
  events: EventPolicy;
  /** How ToolCalled events carry tool arguments and outputs (core/tools.ts). */
  toolValues: ToolValueMode;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AwsConfig {
  const values = fromLambdaEnvironment(env);
  return {
    team: values.team,
    tableName: values.tableName,
    stepQueueUrl: values.stepQueueUrl,
    continueQueueUrl: values.continueQueueUrl,
    stateMachineArn: values.stateMachineArn,
    eventBusName: values.eventBusName,
    policy: agentPolicyOf({ agents: values.agentRegistry, allowInlineScriptAgents: values.allowInlineScript }),
    limitMaxima: values.limitMaxima,
    maxBodyBytes: values.maxBodyBytes,
    ...(values.runTtlSeconds ? { ttlSeconds: values.runTtlSeconds } : {}),
    ...(values.blobBucket ? { blobBucket: values.blobBucket } : {}),
    secretSources: values.secretSources ?? {},
    ...(values.audience ? { audience: values.audience } : {}),
    ...(values.shareRuns ? { shareRuns: true } : {}),
    events: values.events ?? SEND_ALL_EVENTS,
    toolValues: values.toolValues ?? STACK_TOOL_VALUES,
  };
}

export interface Observability {
  /** Where the handlers' metrics go (Powertools Metrics in Lambda). */
  sink?: MetricSink;
  /** Wraps each AWS SDK client (Powertools Tracer in Lambda). */
  traced?: <C>(client: C) => C;
}

export function createAwsDeps(
  config: AwsConfig,
  meter = new CostMeter(),
  observe: Observability = {},
  secrets = new SecretValues(config.secretSources),
): SpawnerDeps {
  const traced = observe.traced ?? (<C>(client: C) => client);
  const sqs = traced(new SQSClient({}));
  // Values over 1 KB go to the team's bucket (adapters/dynamodb/item-codec.ts, the claim check);
  // http and lambda agents get values of a request past 256 KB as presigned GETs of it (core/agent-request.ts).
  const blobs = config.blobBucket ? new S3BlobStore({ client: traced(new S3Client({})), bucket: config.blobBucket }) : undefined;
  const store = new DynamoBranchStore({
    client: traced(new DynamoDBClient({})),
    tableName: config.tableName,
    ttlSeconds: config.ttlSeconds,
    meter,
    ...(blobs ? { blobs } : {}),
  });
  // The team's event setting filters what reaches the bus (and is billed) and the run's stored
  // stream (the events route reads it) alike; the handlers' metrics see every event.
  const events = recordedEvents(
    store,
    busPublisher(meteredPublisher(new EventBridgePublisher({ client: traced(new EventBridgeClient({})), eventBusName: config.eventBusName }), meter), config.events),
    config.events,
  );
  const invoker = new KindRouter({
    script: new ScriptInvoker(),
    http: new HttpInvoker({ links: blobs }),
    lambda: new LambdaInvoker({ client: traced(new LambdaClient({})), links: blobs }),
    // API keys come from the secret store (secrets.ts), never from a request. No local file is
    // loaded here: module tools are the registry's, bundled at synth (team-tools.ts); lambda tools
    // share the agents' traced client.
    ...llmInvokers({
      openai: { env: secrets.env },
      toolBox: new ToolBox({
        bundledModules: teamToolModules(),
        lambdaClient: traced(new LambdaClient({})),
        // Tool arguments and outputs past the preview (all of them, by the stack's default) are kept in the bucket, by reference.
        trace: { mode: config.toolValues, ...(blobs ? { blobs } : {}) },
      }),
    }),
  });
  return {
    store,
    // A resumed parent's step never waits behind leaf steps (core/step-lanes.ts).
    // Metered per lane: each lane's send is its own SendMessageBatch.
    queue: new LanedStepQueue({
      start: meteredQueue(new SqsStepQueue({ client: sqs, queueUrl: config.stepQueueUrl }), meter),
      continue: meteredQueue(new SqsStepQueue({ client: sqs, queueUrl: config.continueQueueUrl }), meter),
    }),
    fanOut: new SfnFanOutOrchestrator({ client: traced(new SFNClient({})), stateMachineArn: config.stateMachineArn, meter }),
    events: observe.sink ? eventsWithMetrics(events, observe.sink) : events,
    meter,
    invoker: observe.sink ? invokerWithMetrics(invoker, observe.sink) : invoker,
    clock: systemClock,
    aggregators: new AggregatorRegistry(teamAggregators()),
    runCache: new Map(),
  };
}

let cached: { config: AwsConfig; deps: SpawnerDeps; meter: CostMeter; secrets: SecretValues } | undefined;

/** One configuration, one set of clients, one cost meter and one secrets cache per Lambda container. */
export function awsRuntime(): { config: AwsConfig; deps: SpawnerDeps; meter: CostMeter; secrets: SecretValues } {
  if (!cached) {
    const config = configFromEnv();
    const meter = new CostMeter();
    const secrets = new SecretValues(config.secretSources);
    cached = { config, deps: createAwsDeps(config, meter, { sink: metricSink, traced }, secrets), meter, secrets };
  }
  return cached;
}

/**
 * A Lambda handler that writes what its invocation cost to the runs' cost records when it ends
 * (one small write per run it touched, however many requests it made: see core/cost-meter.ts),
 * itself included: a request, its duration rounded up to 1 ms at the memory Lambda gave it
 * (`context.memoryLimitInMB`), and the bytes logged since the previous invocation ended (its
 * metrics line, written after it returned, included), shared by the runs it touched.
 */
export function flushingCost<E, R>(handler: (event: E, context: Context) => Promise<R>): (event: E, context: Context) => Promise<R> {
  takeLoggedBytes();
  return async (event: E, context: Context) => {
    const started = performance.now();
    try {
      return await handler(event, context);
    } finally {
      const { deps, meter } = awsRuntime();
      // Up to the flush: its one write is not in the figure (a few ms).
      meter.addToPending(invocationUsage(performance.now() - started, Number(context.memoryLimitInMB), takeLoggedBytes()));
      await meter.flush(deps.store);
    }
  };
}

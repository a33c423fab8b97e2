/**
 * The team's six functions: the registry checked for what Lambda can carry, one environment for
 * all, each function's timeout and settings, and the event sources that feed the step-worker (both
 * lanes) and the dlq-handler. Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { Annotations, Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { toLambdaEnvironment } from '../functions/lambda-environment';
import { continueLaneConcurrency } from '../core/step-lanes';
import { STEP_WORKER_TIMEOUT_SECONDS } from '../core/limit-table';
import { workerReservedConcurrency, type TeamConfig } from '../functions/team-config';
import { functionMemoryMb } from '../functions/function-memory';
import { SpawnerFunction, type SpawnerFunctionName } from './spawner-function';
import type { SpawnerQueues } from './spawner-queues';
import { toolsOf } from '../core/agent-kinds';

/**
 * An agent call can be slow (LLMs); the queue's visibility is six times this (AWS's advice for SQS
 * sources). Agent calls are bounded below it (core/limit-table.ts, agentTimeoutSeconds).
 */
export const WORKER_TIMEOUT = Duration.seconds(STEP_WORKER_TIMEOUT_SECONDS);
/** The dlq-handler consumes the step DLQ, so that queue's visibility is six times this (AWS refuses less than once). */
export const DLQ_HANDLER_TIMEOUT = Duration.seconds(60);
/** The dlq-handler's event source runs at most this many at once (Lambda's minimum). */
export const DLQ_HANDLER_MAX_CONCURRENCY = 2;

// Lambda allows 4 KB of environment in total; the registry must leave room for the rest.
const MAX_REGISTRY_ENV_BYTES = 3 * 1024;

/**
 * Refuses a registry the functions could not carry or run (too large for the environment, a module
 * tool whose file was not found), and warns of an openai agent whose key the stack does not provision.
 */
export function checkRegistry(scope: Construct, config: TeamConfig): void {
  const team = config.team;
  const registryJson = JSON.stringify(config.agents); // as toLambdaEnvironment writes it
  if (Buffer.byteLength(registryJson) > MAX_REGISTRY_ENV_BYTES) {
    throw new Error(
      `team ${team}: agents: the registry is ${Buffer.byteLength(registryJson)} bytes as AGENT_REGISTRY; ` +
        `Lambda environment variables are limited to 4 KB in total (keep it under ${MAX_REGISTRY_ENV_BYTES} bytes)`,
    );
  }
  for (const [name, agent] of Object.entries(config.agents)) {
    for (const [i, tool] of toolsOf(agent).entries()) {
      const module = tool.kind === 'module' ? tool.module : undefined;
      // Bundled into the step worker: a module tool whose file was not found at synth would fail every step that offers it.
      if (module !== undefined && !config.toolModules?.[module]) {
        throw new Error(`team ${team}: agents.${name}.tools.${i}.module: ${module} is not a file the config names (loadTeamConfig resolves module tools)`);
      }
    }
    if (agent.kind === 'openai' && agent.apiKeyEnv !== undefined && !config.secrets[agent.apiKeyEnv]) {
      // A key in a plain Lambda environment variable would be readable by anyone who can read the function.
      Annotations.of(scope).addWarningV2(
        'branch-spawner:openai-api-key',
        `agents.${name}: the stack does not provision ${agent.apiKeyEnv}; name its secret in the team config's "secrets" (Secrets Manager or SSM Parameter Store) before this agent can run`,
      );
    }
  }
}

/** What the functions' environment names (their code finds everything else through the team config). */
export interface FunctionResources {
  tableName: string;
  stepQueueUrl: string;
  continueQueueUrl: string;
  stateMachineArn: string;
  eventBusName: string;
  blobBucket: string;
}

export interface FunctionsProps {
  config: TeamConfig;
  resources: FunctionResources;
  logRetention: logs.RetentionDays;
  /** Where the trigger's failed asynchronous invocations go. */
  triggerDlq: sqs.IQueue;
}

export function createFunctions(scope: Construct, props: FunctionsProps): Record<SpawnerFunctionName, SpawnerFunction> {
  const { config, resources, logRetention } = props;
  const team = config.team;
  const environment = toLambdaEnvironment({
    team,
    ...resources,
    agentRegistry: config.agents,
    allowInlineScript: config.allowInlineScriptAgents,
    limitMaxima: config.limitMaxima,
    maxBodyBytes: config.maxBodyBytes,
    ...(config.runTtlDays ? { runTtlSeconds: config.runTtlDays * 86_400 } : {}),
    // Names of the secrets only; the step-worker fetches the values (functions/lambda/secrets.ts).
    secretSources: config.secrets,
    // The Cognito authorizer checks the pool; the API handler checks the app client (functions/handlers/api.ts).
    ...(config.auth.type === 'jwt' ? { audience: [config.auth.audience].flat() } : {}),
    shareRuns: config.shareRuns,
    events: config.events,
    toolValues: config.toolValues,
  });
  const reserved = workerReservedConcurrency(config);
  const fn = (name: SpawnerFunctionName, id: string, extra: Partial<ConstructorParameters<typeof SpawnerFunction>[2]> = {}) =>
    new SpawnerFunction(scope, id, {
      name,
      description: `branch-spawner ${team} ${name}`,
      environment,
      logRetention,
      aggregatorsModule: config.aggregators,
      ...extra,
    });
  return {
    // API Gateway gives up on an integration after 29 s.
    api: fn('api', 'ApiFunction', { timeout: Duration.seconds(29) }),
    trigger: fn('trigger', 'TriggerFunction', {
      timeout: Duration.seconds(30),
      retryAttempts: 2,
      deadLetterQueue: props.triggerDlq,
    }),
    'step-worker': fn('step-worker', 'StepWorkerFunction', {
      timeout: WORKER_TIMEOUT,
      // The registry's module tools run in the step worker, bundled in (functions/lambda/team-tools.ts).
      ...(config.toolModules ? { toolModules: config.toolModules } : {}),
      // Measured per agent kind (docs/performance.md, "Right-sized workers"); a team setting.
      memorySize: functionMemoryMb('step-worker', config),
      // The worker sends hand-offs, re-asks and resumed parents to the queues it reads, on
      // purpose (each branch is bounded by maxStepsPerBranch, each run by its limits). The AWS
      // SDK copies the invocation's trace header onto every SendMessage (its recursion
      // detection middleware), so Lambda's loop detection would stop a chain after ~16 hops.
      recursiveLoop: lambda.RecursiveLoop.ALLOW,
      // Reserved: the lanes' event sources never find the account's concurrency taken by other
      // functions (throttled batches come back only after the queue's visibility timeout).
      ...(reserved === undefined ? {} : { reservedConcurrentExecutions: reserved }),
    }),
    'record-child-failure': fn('record-child-failure', 'RecordChildFailureFunction', { timeout: Duration.seconds(60) }),
    aggregate: fn('aggregate', 'AggregateFunction', { timeout: Duration.seconds(120) }),
    'dlq-handler': fn('dlq-handler', 'DlqHandlerFunction', { timeout: DLQ_HANDLER_TIMEOUT }),
  };
}

/** The SQS event sources: the step DLQ → dlq-handler, each lane → step-worker. */
export function connectQueues(functions: Record<SpawnerFunctionName, SpawnerFunction>, queues: SpawnerQueues, config: TeamConfig): void {
  // Dead-lettered steps end their branch FAILED so the run cannot hang (functions/handlers/dlq-handler.ts).
  functions['dlq-handler'].addEventSource(
    // Lambda's minimum: dead-lettered steps are rare, and must not take concurrency from the lanes.
    new SqsEventSource(queues.stepDlq, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: DLQ_HANDLER_MAX_CONCURRENCY }),
  );
  // The step-worker consumes both lanes, each with its own event source and concurrency: the
  // continue lane's consumers are never busy with leaf steps.
  const lanes: [sqs.Queue, number][] = [
    [queues.stepQueue, config.workerMaxConcurrency],
    [queues.continueQueue, continueLaneConcurrency(config.workerMaxConcurrency)],
  ];
  // workerReservedConcurrency (team-config.ts) covers both lanes' maxima: an event source is
  // never throttled by the function's own reservation.
  for (const [queue, maxConcurrency] of lanes) {
    functions['step-worker'].addEventSource(new SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency }));
  }
}

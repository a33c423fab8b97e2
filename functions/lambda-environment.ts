/**
 * The Lambda environment contract, written once: the CDK stack writes these variables
 * (`toLambdaEnvironment`) and the composition roots read them back (`fromLambdaEnvironment`).
 * Kept free of handler code so the CDK app does not load middy or the AWS SDK through it.
 */
import { TOOL_VALUE_MODES, type ToolValueMode } from '../core/tools';
import { ValidationError } from '../core/errors';
import { MAX_DOCUMENT_TEXT_BYTES } from '../core/input-bounds';
import type { AgentRegistry, Limits } from '../core/model';
import { eventPolicyProblem, type EventPolicy } from '../core/event-policy';

/**
 * The API's own body limit unless the team config sets one (API Gateway's cap is 10 MiB).
 * Bodies are refused past this before anything parses them (a team may set less). The parsed
 * scenario has its own, smaller limit that names the field (core/input-bounds.ts).
 */
export const DEFAULT_MAX_BODY_BYTES = MAX_DOCUMENT_TEXT_BYTES;

/** Where a secret (an `openai` agent's API key) is read from in AWS: names only, never a value. */
export type SecretSource = { secretsManager: string } | { ssmParameter: string };

export interface LambdaEnvironment {
  team: string;
  tableName: string;
  /** The start lane's queue (a branch's first step); the fan-out state machine sends there too. */
  stepQueueUrl: string;
  /** The continue lane's queue (resumed parents, hand-offs: core/step-lanes.ts). */
  continueQueueUrl: string;
  stateMachineArn: string;
  eventBusName: string;
  /** The agents the deployment trusts, by name. */
  agentRegistry: AgentRegistry;
  /** Whether a request may define `script` agents inline. */
  allowInlineScript: boolean;
  limitMaxima: Partial<Limits>;
  maxBodyBytes: number;
  runTtlSeconds?: number;
  /** The bucket large values are kept in (the claim check: docs/large-values.md). */
  blobBucket?: string;
  /** Secrets by the variable name agents look them up under (`apiKeyEnv`). */
  secretSources?: Record<string, SecretSource>;
  /** The Cognito app clients whose tokens the API takes (JWT auth); none: no check. */
  audience?: string[];
  /** Whether the team's callers may read and cancel each other's runs. */
  shareRuns?: boolean;
  /** Which per-branch events go to the bus (all, when absent). */
  events?: EventPolicy;
  /** How ToolCalled events carry tool arguments and outputs (core/tools.ts): by reference only, when absent. */
  toolValues?: ToolValueMode;
}

/** The variable each field is stored in. */
export const ENVIRONMENT_VARIABLES = {
  team: 'TEAM',
  tableName: 'TABLE_NAME',
  stepQueueUrl: 'STEP_QUEUE_URL',
  continueQueueUrl: 'CONTINUE_QUEUE_URL',
  stateMachineArn: 'STATE_MACHINE_ARN',
  eventBusName: 'EVENT_BUS_NAME',
  agentRegistry: 'AGENT_REGISTRY',
  allowInlineScript: 'ALLOW_INLINE_SCRIPT',
  limitMaxima: 'LIMIT_MAXIMA',
  maxBodyBytes: 'MAX_BODY_BYTES',
  runTtlSeconds: 'RUN_TTL_SECONDS',
  blobBucket: 'BLOB_BUCKET',
  secretSources: 'SECRET_SOURCES',
  audience: 'API_AUDIENCE',
  shareRuns: 'SHARE_RUNS',
  events: 'BRANCH_EVENTS',
  toolValues: 'TOOL_VALUES',
} as const satisfies Record<keyof LambdaEnvironment, string>;

const V = ENVIRONMENT_VARIABLES;

export function toLambdaEnvironment(values: LambdaEnvironment): Record<string, string> {
  return {
    [V.team]: values.team,
    [V.tableName]: values.tableName,
    [V.stepQueueUrl]: values.stepQueueUrl,
    [V.continueQueueUrl]: values.continueQueueUrl,
    [V.stateMachineArn]: values.stateMachineArn,
    [V.eventBusName]: values.eventBusName,
    [V.agentRegistry]: JSON.stringify(values.agentRegistry),
    [V.allowInlineScript]: String(values.allowInlineScript),
    [V.limitMaxima]: JSON.stringify(values.limitMaxima),
    [V.maxBodyBytes]: String(values.maxBodyBytes),
    ...(values.runTtlSeconds ? { [V.runTtlSeconds]: String(values.runTtlSeconds) } : {}),
    ...(values.blobBucket ? { [V.blobBucket]: values.blobBucket } : {}),
    ...(values.audience?.length ? { [V.audience]: JSON.stringify(values.audience) } : {}),
    ...(values.shareRuns ? { [V.shareRuns]: 'true' } : {}),
    ...(values.events && (values.events.branches !== 'all' || values.events.sample < 1) ? { [V.events]: JSON.stringify(values.events) } : {}),
    ...(values.toolValues && values.toolValues !== STACK_TOOL_VALUES ? { [V.toolValues]: values.toolValues } : {}),
    ...(values.secretSources && Object.keys(values.secretSources).length
      ? { [V.secretSources]: JSON.stringify(values.secretSources) }
      : {}),
  };
}

export function fromLambdaEnvironment(env: Record<string, string | undefined>): LambdaEnvironment {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new ValidationError(`environment variable ${name} is not set`, name);
    return value;
  };
  const jsonOf = <T>(name: string, fallback: T): T => {
    const value = env[name];
    if (!value) return fallback;
    try {
      return JSON.parse(value) as T;
    } catch (error) {
      throw new ValidationError(`environment variable ${name} is not valid JSON`, name, { cause: error });
    }
  };
  return {
    team: required(V.team),
    tableName: required(V.tableName),
    stepQueueUrl: required(V.stepQueueUrl),
    continueQueueUrl: required(V.continueQueueUrl),
    stateMachineArn: required(V.stateMachineArn),
    eventBusName: required(V.eventBusName),
    agentRegistry: jsonOf<AgentRegistry>(V.agentRegistry, {}),
    allowInlineScript: env[V.allowInlineScript] === 'true',
    limitMaxima: jsonOf<Partial<Limits>>(V.limitMaxima, {}),
    maxBodyBytes: Number(env[V.maxBodyBytes]) || DEFAULT_MAX_BODY_BYTES,
    ...(env[V.runTtlSeconds] ? { runTtlSeconds: Number(env[V.runTtlSeconds]) } : {}),
    ...(env[V.blobBucket] ? { blobBucket: env[V.blobBucket] } : {}),
    ...(env[V.secretSources] ? { secretSources: jsonOf<Record<string, SecretSource>>(V.secretSources, {}) } : {}),
    ...(env[V.audience] ? { audience: jsonOf<string[]>(V.audience, []) } : {}),
    ...(env[V.shareRuns] === 'true' ? { shareRuns: true } : {}),
    ...(env[V.events] ? { events: eventPolicyOf(jsonOf<Record<string, unknown>>(V.events, {})) } : {}),
    toolValues: toolValuesOf(env[V.toolValues]),
  };
}

/** A stack's ToolCalled events carry references only unless its team says `inline`: the bus is shared with whoever reads it. */
export const STACK_TOOL_VALUES: ToolValueMode = 'reference';

function toolValuesOf(value: string | undefined): ToolValueMode {
  if (value === undefined || value === '') return STACK_TOOL_VALUES;
  if (!(TOOL_VALUE_MODES as readonly string[]).includes(value)) {
    throw new ValidationError(`environment variable ${V.toolValues}: must be one of ${TOOL_VALUE_MODES.join(', ')}`, V.toolValues);
  }
  return value as ToolValueMode;
}

function eventPolicyOf(value: Record<string, unknown>): EventPolicy {
  const problem = eventPolicyProblem(value);
  if (problem) throw new ValidationError(`environment variable ${V.events}: ${problem.field} ${problem.message}`, `${V.events}.${problem.field}`);
  return { branches: value.branches as EventPolicy['branches'], sample: value.sample as number };
}

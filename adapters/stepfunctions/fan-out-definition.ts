/**
 * The fan-out state machine (fan-out.asl.json beside it), shared by CDK
 * (DefinitionBody.fromFile + definitionSubstitutions) and the local engine, and the execution
 * input built from a fan-out request. Its two Lambda tasks' payloads are the FanOutTasks
 * contract of core/ports.ts.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../core/errors';
import { batchTimeoutSeconds, planFanOut, type FanOutMode } from '../../core/fan-out-plan';
import type { Scope } from '../../core/model';
import type { FanOutRequest } from '../../core/ports';

export const FAN_OUT_ASL_PATH = aslPath();

function aslPath(): string {
  try {
    return fileURLToPath(new URL('./fan-out.asl.json', import.meta.url));
  } catch {
    // Bundled to CommonJS (a Lambda importing this module) there is no import.meta.url; only the
    // types and names are of use there, so don't fail at load time.
    return resolve('adapters/stepfunctions/fan-out.asl.json');
  }
}

/** The state names (the local engine keys its task overrides by them). */
export const FAN_OUT_STATES = {
  choosePath: 'ChoosePath',
  fanOut: 'FanOut',
  /** The batched path: one iteration per batch (DispatchBatch, its Catch RecordBatchFailure). */
  fanOutBatched: 'FanOutBatched',
  dispatchBatch: 'DispatchBatch',
  recordBatchFailure: 'RecordBatchFailure',
  dispatchChild: 'DispatchChild',
  recordChildFailure: 'RecordChildFailure',
  aggregate: 'Aggregate',
  /** Where the Catch of the Maps and Aggregate leads: the parent fails. */
  recordFanOutFailure: 'RecordFanOutFailure',
} as const;

export interface FanOutSubstitutions {
  StepQueueUrl: string;
  RecordChildFailureFunctionArn: string;
  AggregateFunctionArn: string;
}

/** The execution input: children as indices, never specs (a Standard execution's input is ≤ 256 KB). */
export interface FanOutExecutionInput extends Scope {
  parentId: string;
  seq: number;
  timeoutSeconds: number;
  mode: FanOutMode;
  /** INLINE: the children's indices, and how many run at once. */
  children?: number[];
  maxConcurrency?: number;
  /** BATCHED: the batches as ranges of indices, batches at once, children of a batch at once, the batch's timeout. */
  batchRanges?: { first: number; count: number }[];
  batchConcurrency?: number;
  window?: number;
  batchTimeoutSeconds?: number;
}

/** Exactly the fields the state machine reads, so a retried spawn sends an identical input. */
export function fanOutInput(request: FanOutRequest): FanOutExecutionInput {
  const plan = planFanOut(request.count, request.maxConcurrency, request.dispatch);
  const base = {
    team: request.team,
    runId: request.runId,
    parentId: request.parentId,
    seq: request.seq,
    timeoutSeconds: request.timeoutSeconds,
    mode: plan.mode,
  };
  if (plan.mode === 'INLINE') {
    return { ...base, children: Array.from({ length: request.count }, (_, i) => request.firstIndex + i), maxConcurrency: request.maxConcurrency };
  }
  const batchRanges: { first: number; count: number }[] = [];
  for (let i = 0; i < request.count; i += plan.batchSize) {
    batchRanges.push({ first: request.firstIndex + i, count: Math.min(plan.batchSize, request.count - i) });
  }
  return {
    ...base,
    batchRanges,
    batchConcurrency: plan.batchConcurrency,
    window: plan.window,
    batchTimeoutSeconds: batchTimeoutSeconds(plan, request.timeoutSeconds),
  };
}

/** The ASL as a plain object (JSON-compatible). */
export type AslDefinition = Record<string, any>;

/** Reads the ASL, replaces every `${Name}` with its substitution and parses it. */
export function loadFanOutDefinition(substitutions: FanOutSubstitutions): AslDefinition {
  const text = readFileSync(FAN_OUT_ASL_PATH, 'utf8');
  const values = substitutions as unknown as Record<string, string>;
  const replaced = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_match, name: string) => {
    const value = values[name];
    if (typeof value !== 'string') throw new ValidationError(`no substitution for \${${name}} in ${FAN_OUT_ASL_PATH}`, name);
    // Substituted into JSON strings: escape like JSON does (quotes, backslashes).
    return JSON.stringify(value).slice(1, -1);
  });
  return JSON.parse(replaced) as AslDefinition;
}

/**
 * Checks what the state machine would otherwise reject at run time with an uncatchable
 * States.Runtime (TimeoutSecondsPath must be a positive integer, MaxConcurrencyPath a
 * non-negative one), so a bad request fails the spawn instead of hanging the parent.
 */
export function assertFanOutRequest(request: FanOutRequest): void {
  if (!/^[A-Za-z0-9_-]{1,80}$/.test(request.executionName)) {
    throw new ValidationError(`invalid fan-out execution name ${JSON.stringify(request.executionName)}`, 'executionName');
  }
  if (!Number.isInteger(request.maxConcurrency) || request.maxConcurrency < 0) {
    throw new ValidationError(`maxConcurrency must be a non-negative integer, got ${request.maxConcurrency}`, 'maxConcurrency');
  }
  if (!Number.isInteger(request.timeoutSeconds) || request.timeoutSeconds < 1) {
    throw new ValidationError(`timeoutSeconds must be a positive integer, got ${request.timeoutSeconds}`, 'timeoutSeconds');
  }
  for (const field of ['firstIndex', 'count'] as const) {
    if (!Number.isInteger(request[field]) || request[field] < 0) {
      throw new ValidationError(`${field} must be a non-negative integer, got ${request[field]}`, field);
    }
  }
}

// --- what the local orchestrators share (the ASL on the engine, and the one in memory) --------

/** The substitutions of the ASL when it runs locally (no queue URL or function ARN is real there). */
export const LOCAL_SUBSTITUTIONS: FanOutSubstitutions = {
  StepQueueUrl: 'local://branch-steps',
  RecordChildFailureFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local-record-child-failure',
  AggregateFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local-aggregate',
};

/** Prefix of the tokens local orchestrators make (AWS tokens are opaque; these only need to be unique). */
export const LOCAL_TOKEN_PREFIX = 'local-token:';

/** The error a child's iteration fails with past its timeout: the same name as in AWS. */
export class StatesTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'States.Timeout';
  }
}

/** The retrier of a Task state's Retry field that takes an error, and what it grants. */
export interface Retrier {
  /** Its position in Retry (each retrier counts its own attempts). */
  index: number;
  maxAttempts: number;
  intervalSeconds: number;
  backoffRate: number;
  maxDelaySeconds?: number;
  /** JitterStrategy FULL: a random wait between 0 and the backoff. */
  jitter: boolean;
}

export type TaskRetry = (error: unknown) => Retrier | undefined;

/**
 * A Task state's Retry as Step Functions applies it: the first retrier whose ErrorEquals names
 * the error (or States.ALL, or States.TaskFailed for anything but a timeout) decides; its
 * defaults are 3 attempts, 1 s, a backoff rate of 2 and no jitter.
 */
export function retryPolicy(state: AslDefinition | undefined): TaskRetry {
  const retriers: Record<string, any>[] = state?.Retry ?? [];
  return (error) => {
    const name = error instanceof Error ? error.name : '';
    const index = retriers.findIndex((r) =>
      (r.ErrorEquals as string[]).some((e) => e === name || e === 'States.ALL' || (e === 'States.TaskFailed' && name !== 'States.Timeout')),
    );
    if (index < 0) return undefined;
    const r = retriers[index];
    return {
      index,
      maxAttempts: r.MaxAttempts ?? 3,
      intervalSeconds: r.IntervalSeconds ?? 1,
      backoffRate: r.BackoffRate ?? 2,
      maxDelaySeconds: r.MaxDelaySeconds,
      jitter: r.JitterStrategy === 'FULL',
    };
  };
}

/** The wait before retry number `attempt + 1` (attempt counts from 0). */
export function retryDelayMs(retrier: Retrier, attempt: number): number {
  let ms = retrier.intervalSeconds * retrier.backoffRate ** attempt * 1000;
  if (retrier.maxDelaySeconds !== undefined) ms = Math.min(ms, retrier.maxDelaySeconds * 1000);
  return retrier.jitter ? Math.random() * ms : ms;
}

export interface FanOutRetryPolicies {
  recordChildFailure: TaskRetry;
  dispatchBatch: TaskRetry;
  recordBatchFailure: TaskRetry;
  aggregate: TaskRetry;
  recordFanOutFailure: TaskRetry;
}

let retryPolicies: FanOutRetryPolicies | undefined;

/** The Retry fields of the Lambda tasks in the ASL file (read once per process). */
export function fanOutRetryPolicies(): FanOutRetryPolicies {
  if (!retryPolicies) {
    const states = loadFanOutDefinition(LOCAL_SUBSTITUTIONS).States;
    retryPolicies = {
      recordChildFailure: retryPolicy(states[FAN_OUT_STATES.fanOut].ItemProcessor.States[FAN_OUT_STATES.recordChildFailure]),
      dispatchBatch: retryPolicy(states[FAN_OUT_STATES.fanOutBatched].ItemProcessor.States[FAN_OUT_STATES.dispatchBatch]),
      recordBatchFailure: retryPolicy(states[FAN_OUT_STATES.fanOutBatched].ItemProcessor.States[FAN_OUT_STATES.recordBatchFailure]),
      aggregate: retryPolicy(states[FAN_OUT_STATES.aggregate]),
      recordFanOutFailure: retryPolicy(states[FAN_OUT_STATES.recordFanOutFailure]),
    };
  }
  return retryPolicies;
}

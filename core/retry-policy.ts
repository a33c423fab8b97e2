/**
 * Backoff, and an agent's retry policy (`retry:` in a scenario's agent, docs/agents.md).
 *
 * The backoff here is the one rule of the product's waits between attempts: the adapters'
 * transport retries (adapters/retry.ts), the step worker's redelivery delay and an agent's policy
 * all use it. The policy's loop runs in the step (core/use-cases/agent-call.ts), around the agent
 * call of every kind, so that it is one loop whatever the kind, its attempts are in the trace and
 * the metrics, and it never multiplies a transport's own retries (see `transportRetries`).
 */
import { z } from 'zod';
import { AgentTimeoutError, AgentTransportError, InvalidAgentResponseError } from './errors';
import { LIMIT_TABLE } from './limit-table';
import { stableChance } from './stable-chance';

export interface Backoff {
  /** The wait before the first retry (its ceiling, with jitter). */
  initialMs: number;
  /** No wait is longer. */
  maxMs: number;
  /** Each wait's ceiling is the one before times this. */
  multiplier: number;
}

/** `full`: uniform in [0, ceiling]; `equal`: half fixed, half random; `none`: the ceiling. */
export type Jitter = 'full' | 'equal' | 'none';

/** The wait before retry `attempt` (1-based: after the first attempt failed), `random` in [0, 1). */
export function backoffDelay(attempt: number, backoff: Backoff, jitter: Jitter, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** (attempt - 1));
  if (jitter === 'none') return Math.round(ceiling);
  if (jitter === 'equal') return Math.round(ceiling / 2 + random() * (ceiling / 2));
  return Math.round(random() * ceiling);
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller then sees the abort). */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * What failed, as the policy's `on` names it:
 * - `error`: the agent failed — threw, `$fail`, a module's rejection, a lambda's FunctionError,
 *   an HTTP 4xx (AgentInvocationError, and anything else an invoker throws);
 * - `timeout`: no answer within the agent's own `timeoutMs` (AgentTimeoutError);
 * - `transport`: the agent could not be reached — a network error, an HTTP 5xx or 429, a lambda
 *   that could not be invoked, after the transport's own retries (AgentTransportError);
 * - `invalid`: the agent answered outside the protocol (InvalidAgentResponseError). Not retried
 *   unless named: the step's re-ask (limits.maxInvalidResponses) tells the agent what was wrong.
 */
export const RETRY_KINDS = ['error', 'timeout', 'transport', 'invalid'] as const;
export type RetryKind = (typeof RETRY_KINDS)[number];

/**
 * The policy's kind of an agent call's failure. What no policy retries never gets here: a
 * TransientError (the step's message comes back instead), an abort, the step's own bounds.
 */
export function retryKindOf(error: unknown): RetryKind {
  if (error instanceof InvalidAgentResponseError) return 'invalid';
  if (error instanceof AgentTimeoutError) return 'timeout';
  if (error instanceof AgentTransportError) return 'transport';
  return 'error';
}

/** The longest wait between two attempts: the worker stays with the step while it waits. */
export const MAX_RETRY_BACKOFF_MS = 30_000;

export interface AgentRetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  backoff: Backoff;
  jitter: 'full' | 'none';
  on: RetryKind[];
}

/** What `retry: {}` means; `retry: { attempts: 3 }` keeps the rest. */
export const RETRY_DEFAULTS: Readonly<AgentRetryPolicy> = Object.freeze({
  attempts: 3,
  backoff: { initialMs: 500, maxMs: 5_000, multiplier: 2 },
  jitter: 'full' as const,
  on: ['error', 'timeout', 'transport'] as RetryKind[],
});

const ms = z.number().int('must be an integer').min(0, 'must be ≥ 0').max(MAX_RETRY_BACKOFF_MS, `must be ≤ ${MAX_RETRY_BACKOFF_MS} (a wait holds the worker)`);

/** A scenario agent's `retry` (its attempts are checked against the run's limit by `agentRetryRefusal`). */
export const retrySchema = z
  .object({
    attempts: z
      .number()
      .int('must be an integer')
      .min(1, 'must be positive (1: no retry)')
      .max(LIMIT_TABLE.maxAgentAttempts.ceiling, `must be ≤ ${LIMIT_TABLE.maxAgentAttempts.ceiling}, the ceiling for every run`)
      .optional(),
    backoff: z
      .object({ initialMs: ms.optional(), maxMs: ms.optional(), multiplier: z.number().min(1, 'must be ≥ 1').max(10, 'must be ≤ 10').optional() })
      .strict()
      .optional(),
    jitter: z.enum(['full', 'none']).optional(),
    on: z.array(z.enum(RETRY_KINDS)).min(1, 'needs at least one kind (or leave retry out)').max(RETRY_KINDS.length).optional(),
  })
  .strict();

/** An agent's policy with the defaults filled in; undefined when it has none (one attempt). */
export function agentRetryPolicy(definition: { retry?: unknown }): AgentRetryPolicy | undefined {
  if (definition.retry === undefined) return undefined;
  const parsed = retrySchema.safeParse(definition.retry);
  // Refused when the run was started (agentRetryRefusal): never here but from code that skipped it.
  if (!parsed.success) return undefined;
  const given = parsed.data;
  return {
    attempts: given.attempts ?? RETRY_DEFAULTS.attempts,
    backoff: { ...RETRY_DEFAULTS.backoff, ...given.backoff },
    jitter: given.jitter ?? RETRY_DEFAULTS.jitter,
    on: [...new Set(given.on ?? RETRY_DEFAULTS.on)],
  };
}

/**
 * Refuses an agent's `retry` that is malformed or asks for more attempts than the run allows
 * (`limits.maxAgentAttempts`); `{ path, message }` below the agent, or undefined.
 */
export function agentRetryRefusal(definition: { kind: string; retry?: unknown; retries?: number }, maxAgentAttempts: number): { path: string; message: string } | undefined {
  if (definition.retry === undefined) return undefined;
  const parsed = retrySchema.safeParse(definition.retry);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = ['retry', ...issue.path.map(String)].join('.');
    const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    return { path, message };
  }
  const policy = agentRetryPolicy(definition)!;
  if (policy.attempts > maxAgentAttempts) {
    return { path: 'retry.attempts', message: `${policy.attempts} attempts; limits.maxAgentAttempts is ${maxAgentAttempts}` };
  }
  if (policy.backoff.initialMs > policy.backoff.maxMs) {
    return { path: 'retry.backoff.initialMs', message: `${policy.backoff.initialMs} ms is more than backoff.maxMs (${policy.backoff.maxMs} ms)` };
  }
  if (definition.retries !== undefined && definition.retries !== 0 && policy.on.includes('transport')) {
    return {
      path: 'retries',
      message: 'the transport would retry what retry already retries (on: transport): leave retries out, or leave transport out of retry.on',
    };
  }
  return undefined;
}

/**
 * The transport retries (`retries` of http, openai and bedrock agents) a call gets under the
 * policy: none when the policy retries transport failures itself, so attempts never multiply.
 */
export function transportRetries(policy: AgentRetryPolicy | undefined): number | undefined {
  return policy?.on.includes('transport') ? 0 : undefined;
}

/**
 * The wait before retry `attempt` of a branch's step: the jitter is drawn from what the attempt
 * is (run, branch, step, attempt), so retries of different branches spread out and a replay waits
 * the same.
 */
export function retryDelay(policy: AgentRetryPolicy, attempt: number, key: string): number {
  return backoffDelay(attempt, policy.backoff, policy.jitter, () => stableChance(attempt, key));
}

/**
 * A step's agent call under its agent's retry policy (`retry:`, core/retry-policy.ts): the one
 * loop that retries agent calls, whatever the kind (script, module, http, lambda, bedrock,
 * openai). It lives in the step, not in an invoker, because only the step can put each retried
 * attempt in the trace (an AgentRetryScheduled event) and on the branch (`agentRetries`, summed
 * into the run's metrics), and bound all attempts and waits by the step's agent call bound.
 *
 * It never multiplies the transports' own retries: when the policy retries transport failures,
 * the call goes out with the transport's retries off (`retries: 0`). What no policy retries is
 * thrown at once: a TransientError (the step's message comes back later, with its own backoff),
 * an abort (the branch or run ended, the call bound or the worker's time ran out), a ConflictError.
 */
import { hasTransportRetries } from '../agent-kinds';
import { ConflictError, errorMessage, TransientError, type InvalidAgentResponseError } from '../errors';
import { agentRetryEvent } from '../events';
import type { AgentDefinition, BranchRecord } from '../model';
import type { AgentReply } from '../ports';
import { abortableSleep, agentRetryPolicy, retryDelay, retryKindOf, transportRetries } from '../retry-policy';
import { publish, type SpawnerDeps } from './deps';

type Usage = { inputTokens: number; outputTokens: number };

/** What the attempts of one call left behind besides its reply. */
export interface CallAttempts {
  /** Attempts made again (0 when the first answered). */
  retries: number;
  /** Tokens reported by the attempts that failed: spent all the same. */
  spent?: Usage;
}

export interface AgentCall {
  branch: BranchRecord;
  step: number;
  definition: AgentDefinition;
  /** The run's `limits.maxAgentAttempts`: no policy gets more. */
  maxAttempts: number;
  signal?: AbortSignal;
  /** Epoch ms the step's agent call bound ends: a wait that would pass it is not started. */
  until: number;
  /** Why a reply is outside the protocol, if it is (for a policy that retries `invalid`). */
  invalid(reply: AgentReply): InvalidAgentResponseError | undefined;
}

/**
 * Calls `invoke` (attempt n, the definition to call with) until an attempt answers or the policy
 * gives up; the last failure is thrown as it was (an invalid last reply is returned, for the
 * step's re-ask). `attempts` is filled in as the attempts go (read it after a throw too).
 */
export async function callAgent(
  deps: SpawnerDeps,
  call: AgentCall,
  invoke: (attempt: number, definition: AgentDefinition) => Promise<AgentReply>,
  attempts: CallAttempts,
): Promise<AgentReply> {
  const policy = agentRetryPolicy(call.definition);
  if (!policy) return invoke(1, call.definition);
  const max = Math.min(policy.attempts, call.maxAttempts);
  const retries = transportRetries(policy);
  const definition = retries !== undefined && hasTransportRetries(call.definition) ? { ...call.definition, retries } : call.definition;
  const { branch, step, signal } = call;
  for (let attempt = 1; ; attempt++) {
    let reply: AgentReply | undefined;
    let failure: unknown;
    try {
      reply = await invoke(attempt, definition);
      failure = policy.on.includes('invalid') ? call.invalid(reply) : undefined;
      if (!failure) return reply;
    } catch (error) {
      if (error instanceof TransientError || error instanceof ConflictError || signal?.aborted) throw error;
      failure = error;
    }
    const kind = retryKindOf(failure);
    const delayMs = retryDelay(policy, attempt, `${branch.team}/${branch.runId}/${branch.id}@${step}`);
    if (attempt >= max || !policy.on.includes(kind) || deps.clock.now() + delayMs >= call.until) {
      if (reply) return reply;
      throw failure;
    }
    const usage = reply ? reply.usage : (failure as { usage?: Usage }).usage;
    if (validUsage(usage)) attempts.spent = { inputTokens: (attempts.spent?.inputTokens ?? 0) + usage.inputTokens, outputTokens: (attempts.spent?.outputTokens ?? 0) + usage.outputTokens };
    attempts.retries++;
    await publish(deps, agentRetryEvent(branch, step, deps.clock.now(), { attempt, attempts: max, delayMs, kind, error: errorMessage(failure) }));
    await abortableSleep(delayMs, signal);
    // Cut during the wait (the branch or run ended, a bound ran out): the step's own handling says what follows.
    if (signal?.aborted) throw signal.reason ?? failure;
  }
}

export function validUsage(usage: unknown): usage is Usage {
  const u = usage as { inputTokens?: unknown; outputTokens?: unknown } | null | undefined;
  return Number.isFinite(u?.inputTokens) && Number.isFinite(u?.outputTokens);
}

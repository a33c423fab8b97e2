/**
 * How the agents that call out (http, lambda, openai, bedrock) make one call and retry it: the one
 * home of the per-attempt rules, so that every kind ends the same way (and of the http and lambda
 * agents' request body).
 *
 * - An attempt runs within the call's own timeout and the branch's signal, raced against both (a
 *   client that ignores its abort must not hold the step).
 * - The branch ending (cancel, its timeout, the run's end) ends the call as `aborted: the branch ended`.
 * - The call's own timeout is an AgentTimeoutError and is never retried: a server or model that
 *   took the whole timeout would most likely take it again.
 * - Only an AgentTransportError (5xx, 429, throttling, network) is tried again, after a backoff or
 *   the server's Retry-After; the last one says how many attempts were made. Which failures are
 *   transport failures: for AWS SDK calls adapters/aws-errors.ts, for HTTP ones `isTransientStatus`.
 */
import { agentRequestBody } from '../../core/agent-request';
import { AgentInvocationError, AgentTimeoutError, AgentTransportError, PayloadTooLargeError } from '../../core/errors';
import type { AgentInvocation, ValueLinks } from '../../core/ports';
import { again, whenAborted, withRetries, type RetryPolicy } from '../retry';

export const ABORTED_MESSAGE = 'aborted: the branch ended';

/** One attempt: `send` gets the signal to pass on; what it throws, unless the branch or the timeout ended it, is the caller's. */
export async function callWithin<T>(
  call: { agentName: string; signal?: AbortSignal },
  timeoutMs: number,
  /** What did not answer, as the timeout's message shows it ("no answer from <what> within …"). */
  what: string,
  send: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (call.signal?.aborted) throw new AgentInvocationError(call.agentName, ABORTED_MESSAGE);
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  try {
    return await whenAborted(send(signal), signal);
  } catch (error) {
    if (call.signal?.aborted) throw new AgentInvocationError(call.agentName, ABORTED_MESSAGE, { cause: error });
    if (timeout.aborted) throw new AgentTimeoutError(call.agentName, `no answer from ${what} within ${timeoutMs} ms`, { cause: error });
    throw error;
  }
}

/**
 * Attempts until one answers or throws what is not a transport failure; a transport failure is
 * tried again while attempts remain (`retryAfterMs` on it overrides the backoff).
 */
export function withTransportRetries<T>(policy: RetryPolicy, attempt: () => Promise<T>): Promise<T> {
  return withRetries(policy, async (n, last) => {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof AgentTransportError)) throw error;
      if (!last) return again(error.retryAfterMs);
      if (n > 1) error.message += ` (after ${n} attempts)`;
      throw error;
    }
  });
}

/** An HTTP status worth another attempt: throttling (429) and the server's own errors (5xx). */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** The longest wait a server's Retry-After gets, by default. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 30_000;

/** A Retry-After header (seconds, or an HTTP date) as ms, at most `maxMs`; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, maxMs = DEFAULT_MAX_RETRY_AFTER_MS, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  let ms: number;
  if (Number.isFinite(seconds)) ms = seconds * 1000;
  else {
    const date = Date.parse(header);
    if (Number.isNaN(date)) return undefined;
    ms = date - now;
  }
  return Math.min(maxMs, Math.max(0, Math.round(ms)));
}

/** The agent's request (core/agent-request.ts); one that cannot be made small enough fails the call naming its size. */
export async function requestBody(call: AgentInvocation, links: ValueLinks | undefined): Promise<string> {
  try {
    return await agentRequestBody(call, links);
  } catch (error) {
    // Storing a value may fail like any store call (transient or not): that error goes on as it is.
    if (!(error instanceof PayloadTooLargeError)) throw error;
    throw new AgentInvocationError(call.agentName, error.message, { cause: error });
  }
}

/**
 * The one retry loop of the adapters (the transports' retries): a bounded number of attempts
 * spaced by exponential backoff with equal jitter (the backoff of core/retry-policy.ts). Each
 * caller's attempt decides what failed and whether to go again; this module only counts and waits.
 * An agent's own retry policy is not here: it runs in the step, around the whole call.
 */
import { abortableSleep, backoffDelay as backoff } from '../core/retry-policy';

export { abortableSleep };

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** The delay before retry `attempt` (1-based): half of the capped exponential (×2 each time) fixed, half random. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return backoff(attempt, { initialMs: baseMs, maxMs, multiplier: 2 }, 'equal', random);
}

export interface RetryPolicy {
  /** Attempts in all (at least 1). */
  attempts: number;
  /** Backoff before the first retry is between baseMs/2 and baseMs; it doubles up to maxMs. */
  baseMs: number;
  maxMs: number;
  random?: () => number;
  sleep?: Sleep;
  /** Cuts a wait short (the attempt then sees the abort itself). */
  signal?: AbortSignal;
}

/** What an attempt answers to ask for another one (`afterMs` overrides the backoff, e.g. Retry-After). */
export class Again {
  constructor(readonly afterMs?: number) {}
}

export const again = (afterMs?: number): Again => new Again(afterMs);

/**
 * Calls `attempt(n, last)` for n = 1, 2, ... until it returns a value (or throws). It may answer
 * `again()` only when `last` is false: on the last attempt it must return or throw its own error.
 */
export async function withRetries<T>(policy: RetryPolicy, attempt: (n: number, last: boolean) => Promise<T | Again>): Promise<T> {
  const attempts = Math.max(1, policy.attempts);
  for (let n = 1; ; n++) {
    const last = n >= attempts;
    const outcome = await attempt(n, last);
    if (!(outcome instanceof Again)) return outcome;
    if (last) throw new Error(`retry requested after the last of ${attempts} attempts`);
    await (policy.sleep ?? abortableSleep)(outcome.afterMs ?? backoffDelay(n, policy.baseMs, policy.maxMs, policy.random), policy.signal);
  }
}

/** The promise, or a rejection with the signal's reason as soon as it aborts (for calls that ignore their abort). */
export function whenAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

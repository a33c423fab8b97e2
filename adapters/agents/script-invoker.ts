/**
 * `script` agents (see docs/scenarios.md): canned responses per step, optional rules matched on the input,
 * and directives to fail (`$fail`), answer raw text (`$raw`), take time (`$delayMs`), never
 * answer until the branch is aborted (`$hang`), be throttled on the first deliveries of a step
 * (`$transientFailures`) or fail its first attempts (`$failures`, for a retry policy).
 * Deterministic, for tests and demos.
 */
import type { ScriptAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, TransientError } from '../../core/errors';
import { failMessage, MAX_TIMER_MS } from '../../core/script-directives';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

export class ScriptInvoker implements AgentInvoker<ScriptAgentDefinition> {
  async invoke(call: AgentInvocation<ScriptAgentDefinition>): Promise<AgentReply> {
    const responses = pickResponses(call);
    if (!responses?.length) {
      throw new AgentInvocationError(call.agentName, `script agent ${call.agentName} has no responses`);
    }
    const nth = call.memory.filter((m) => m.role === 'assistant' && m.agent === call.agentName && !m.inherited).length;
    const chosen = responses[Math.min(nth, responses.length - 1)];
    const { transientFailures, rest } = splitTransient(chosen);
    const { failures, rest: answer } = splitFailures(rest);
    const { delayMs, response } = splitDelay(answer);
    if (delayMs > 0) await delay(delayMs, call.signal);
    // Counted by delivery (not in memory): a failed step leaves no trace in the branch.
    const attempt = call.attempt ?? 1;
    if (attempt <= transientFailures) {
      throw new TransientError(`script agent ${call.agentName} throttled (delivery ${attempt} of the ${transientFailures} that fail)`);
    }
    // Counted by the retry policy's attempt within the step (the agent's `retry`).
    const retryAttempt = call.retryAttempt ?? 1;
    if (retryAttempt <= failures) {
      throw new AgentInvocationError(call.agentName, `script agent ${call.agentName} failed on attempt ${retryAttempt} (its first ${failures} attempts fail)`);
    }
    if (isObject(response) && '$fail' in response) {
      throw new AgentInvocationError(call.agentName, failMessage(response.$fail));
    }
    if (isObject(response) && '$raw' in response) return { response: String(response.$raw) };
    return { response: substituteInput(response, call.input) };
  }
}

function pickResponses(call: AgentInvocation<ScriptAgentDefinition>): unknown[] | undefined {
  const { rules } = call.definition;
  if (rules?.length) {
    const text = typeof call.input === 'string' ? call.input : JSON.stringify(call.input ?? null);
    const rule = rules.find((r) => text.includes(r.when));
    if (rule) return rule.responses;
  }
  return call.definition.responses;
}

function splitTransient(value: unknown): { transientFailures: number; rest: unknown } {
  if (!isObject(value) || !('$transientFailures' in value)) return { transientFailures: 0, rest: value };
  const { $transientFailures, ...rest } = value;
  return { transientFailures: Math.max(0, Number($transientFailures) || 0), rest };
}

function splitFailures(value: unknown): { failures: number; rest: unknown } {
  if (!isObject(value) || !('$failures' in value)) return { failures: 0, rest: value };
  const { $failures, ...rest } = value;
  return { failures: Math.max(0, Number($failures) || 0), rest };
}

function splitDelay(value: unknown): { delayMs: number; response: unknown } {
  if (!isObject(value)) return { delayMs: 0, response: value };
  if ('$hang' in value) {
    // Never answers: the call ends only when the branch is aborted (timeout, cancel, run end).
    const { $hang: _hang, ...rest } = value;
    return { delayMs: Infinity, response: rest };
  }
  if (!('$delayMs' in value)) return { delayMs: 0, response: value };
  const { $delayMs, ...rest } = value;
  // Scenarios are checked when read (core/script-directives); a request built in code is clamped.
  return { delayMs: Math.min(Math.max(Number($delayMs) || 0, 0), MAX_TIMER_MS), response: rest };
}

/** Replaces the string "$input" anywhere in the response with the step's input. */
function substituteInput(value: unknown, input: unknown): unknown {
  if (value === '$input') return input ?? null;
  if (Array.isArray(value)) return value.map((v) => substituteInput(v, input));
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteInput(v, input)]));
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AgentInvocationError('script', 'aborted'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AgentInvocationError('script', 'aborted: the branch was cancelled'));
    };
    // Once the time is up the listener goes: the signal may live on (a branch's, across its steps).
    const timer = Number.isFinite(ms)
      ? setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, ms)
      : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The directives a `script` agent's canned responses may carry (`$fail`, `$raw`, `$delayMs`, `$hang`,
 * `$transientFailures`, `$failures`) and the per-fan-out options of the spawns they answer with:
 * what they mean lives in the script invoker and the protocol; the rules a scenario must follow
 * live here, so a bad value is refused when the scenario is read, naming the field.
 */
import { InvalidAgentResponseError } from './errors';
import { LIMIT_TABLE } from './limit-table';
import { FAN_OUT_OPTION_SCHEMAS, parseAgentResponse } from './protocol';

/** setTimeout's largest delay; a longer one fires at once (Node's TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `$transientFailures: n`: the first n deliveries of the step fail as throttled (a transient
 * error, retried by redelivery); more than the queue's receives before the DLQ is pointless.
 */
export const MAX_TRANSIENT_FAILURES = 10;

export interface DirectiveRefusal {
  /** Where, below the agent: e.g. `responses.2.$delayMs` or `rules.0.responses.1.$delayMs`. */
  path: string;
  message: string;
}

/**
 * Checks every `$delayMs` of a script agent against the branch timeout, the agent call bound and
 * the timer's range; and every durable wait it answers (`next_action: wait`, `wait_for_callback`):
 * its form as the protocol reads it, and `seconds` / `timeout_seconds` against the run's
 * `maxWaitSeconds`, so that a scenario whose wait could never happen is refused when it is read,
 * not re-asked at run time (`until` is a time: how far off it is is checked when the step runs).
 */
export function checkScriptDelays(
  agent: ScriptAgent,
  bounds: { branchTimeoutSeconds: number; agentTimeoutSeconds: number; maxWaitSeconds: number },
): DirectiveRefusal | undefined {
  const { branchTimeoutSeconds, agentTimeoutSeconds } = bounds;
  const maxMs = Math.min(branchTimeoutSeconds * 1000, agentTimeoutSeconds * 1000, MAX_TIMER_MS);
  for (const [prefix, responses] of responseLists(agent)) {
    for (const [i, response] of responses.entries()) {
      if (response === null || typeof response !== 'object' || Array.isArray(response)) continue;
      if ('$hang' in response && (response as { $hang: unknown }).$hang !== true) {
        return { path: `${prefix}.${i}.$hang`, message: 'must be true (the call then waits until the branch times out or is cancelled)' };
      }
      if ('$transientFailures' in response) {
        const count = (response as { $transientFailures: unknown }).$transientFailures;
        if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > MAX_TRANSIENT_FAILURES) {
          return { path: `${prefix}.${i}.$transientFailures`, message: `must be an integer 0..${MAX_TRANSIENT_FAILURES}, got ${JSON.stringify(count)}` };
        }
      }
      if ('$failures' in response) {
        const count = (response as { $failures: unknown }).$failures;
        const max = LIMIT_TABLE.maxAgentAttempts.ceiling;
        if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > max) {
          return { path: `${prefix}.${i}.$failures`, message: `must be an integer 0..${max} (attempts that fail before the answer), got ${JSON.stringify(count)}` };
        }
      }
      const waitRefusal = checkWait(response as Record<string, unknown>, bounds.maxWaitSeconds);
      if (waitRefusal) return { path: `${prefix}.${i}.${waitRefusal.path}`, message: waitRefusal.message };
      if (!('$delayMs' in response)) continue;
      const value = (response as { $delayMs: unknown }).$delayMs;
      const path = `${prefix}.${i}.$delayMs`;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        return { path, message: `must be a number of milliseconds ≥ 0, got ${JSON.stringify(value)}` };
      }
      if (value > maxMs) {
        const why =
          maxMs === MAX_TIMER_MS
            ? `the largest timer delay (${MAX_TIMER_MS} ms)`
            : maxMs === branchTimeoutSeconds * 1000
              ? `the branch timeout (limits.branchTimeoutSeconds ${branchTimeoutSeconds} s)`
              : `an agent call may last (limits.agentTimeoutSeconds ${agentTimeoutSeconds} s)`;
        return { path, message: `${value} ms is longer than ${why}; to wait for the timeout, use $hang: true` };
      }
    }
  }
  return undefined;
}

type ScriptAgent = { responses?: unknown[]; rules?: { responses: unknown[] }[] };

/** Each list of canned responses of a script agent, with its path below the agent. */
function responseLists(agent: ScriptAgent): [string, unknown[]][] {
  const lists: [string, unknown[]][] = [];
  if (agent.responses) lists.push(['responses', agent.responses]);
  for (const [i, rule] of (agent.rules ?? []).entries()) lists.push([`rules.${i}.responses`, rule.responses]);
  return lists;
}

/**
 * Checks the per-fan-out options (`max_concurrency`, `tolerated_failures`, `on_failure`,
 * `complete_when`) of a script agent's spawning responses: valid as the protocol reads them, and
 * `max_concurrency` within the run's `limits.maxConcurrentBranches` (an agent's own answer is
 * held to it at run time; a scenario's is refused up front).
 */
export function checkScriptFanOutOptions(agent: ScriptAgent, bounds: { maxConcurrentBranches: number }): DirectiveRefusal | undefined {
  for (const [prefix, responses] of responseLists(agent)) {
    for (const [i, response] of responses.entries()) {
      if (response === null || typeof response !== 'object' || Array.isArray(response)) continue;
      const fields = response as Record<string, unknown>;
      if (fields.next_action !== 'parallel_invoke' && !('next_actions' in fields)) continue;
      for (const [name, schema] of Object.entries(FAN_OUT_OPTION_SCHEMAS)) {
        const parsed = schema.safeParse(fields[name]);
        if (!parsed.success) return { path: `${prefix}.${i}.${name}`, message: parsed.error.issues[0].message };
      }
      const wanted = fields.max_concurrency;
      if (typeof wanted === 'number' && wanted > bounds.maxConcurrentBranches) {
        return {
          path: `${prefix}.${i}.max_concurrency`,
          message: `${wanted} is more than the run allows at once (limits.maxConcurrentBranches ${bounds.maxConcurrentBranches})`,
        };
      }
    }
  }
  return undefined;
}

function checkWait(response: Record<string, unknown>, maxWaitSeconds: number): DirectiveRefusal | undefined {
  const field = response.next_action === 'wait' ? 'seconds' : response.next_action === 'wait_for_callback' ? 'timeout_seconds' : undefined;
  if (!field) return undefined;
  // The form as the protocol reads it (both seconds and until, a time without its zone...): a
  // script's refused answer would otherwise be re-asked at run time and its next response taken.
  // A field that is the step's input ("$input") is known only then.
  try {
    if (!['seconds', 'until', 'timeout_seconds'].some((name) => response[name] === '$input')) parseAgentResponse(response, { currentAgent: 'script', currentInput: null });
  } catch (error) {
    if (!(error instanceof InvalidAgentResponseError)) throw error;
    const path = error.field ?? 'next_action';
    // The protocol's schema errors start with the field, which the refusal's path already names.
    return { path, message: error.message.startsWith(`${path}: `) ? error.message.slice(path.length + 2) : error.message };
  }
  if (!(field in response)) return undefined;
  const value = response[field];
  if (typeof value !== 'number' || !(value > 0)) return { path: field, message: `must be a positive number of seconds, got ${JSON.stringify(value)}` };
  if (value > maxWaitSeconds) return { path: field, message: `${value} s is longer than limits.maxWaitSeconds (${maxWaitSeconds} s)` };
  return undefined;
}

/** The message of a `$fail` directive: a string as is, anything else as readable JSON. */
export function failMessage(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.message;
  try {
    const text = JSON.stringify(value);
    if (text !== undefined) return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
  } catch {
    // fall through: cycles cannot come from YAML/JSON, but be safe
  }
  return String(value);
}

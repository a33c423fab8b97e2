/**
 * How an ASL definition runs on aws-local-stepfunctions as it runs on AWS: the engine's
 * differences, absorbed in this one place for both that run ASL on it (the local fan-out,
 * local-fan-out.ts, and the rehearsal's state machines, local/rehearsal/step-functions.ts).
 *
 * - The engine has no task tokens and no `$$.Task.Token`: the run's context (engineContext) gets
 *   a placeholder so Parameters resolve; the runner makes a token for each task and puts it in
 *   place of the placeholder (withTaskToken).
 * - Nor `$$.State.RetryCount`: the context gets a placeholder too, which task-retry-count.ts
 *   replaces with the task's failed attempts.
 * - The engine resolves `TimeoutSecondsPath` against the task's input *after* Parameters (AWS uses
 *   the state input), where the path does not exist: an uncatchable States.Runtime. The path moves
 *   into the Parameters (resolved against the state input, as AWS does); the runner takes it back
 *   out (takeTimeoutSeconds) and enforces the timeout, failing with `States.Timeout` as AWS does.
 * - A Task without TimeoutSeconds gets an engine default of 60 s (AWS: none): each gets a backstop
 *   above any timer.
 * - abort() does not stop a Map, nor does a failed iteration: queued iterations still start. The
 *   runners stop cooperatively: once an execution is stopped its tasks do nothing.
 * - A Distributed Map would run inline, without child executions: refused.
 *
 * No engine is imported here: the memory tier loads the fan-out's modules without it.
 */
import { BranchSpawnerError } from '../../core/errors';
import { MAX_TIMER_MS } from '../../core/script-directives';
import type { AslDefinition } from './fan-out-definition';
import { ENGINE_CONTEXT_STATE } from './task-retry-count';

/** What `$$.Task.Token` resolves to on the engine; withTaskToken replaces it with the task's own token. */
const TOKEN_PLACEHOLDER = 'engine-task-token-placeholder';
/** Where a task's TimeoutSecondsPath resolves to, in its Parameters. */
const TIMEOUT_FIELD = '__timeoutSeconds';
/** Engine-side TimeoutSeconds of a task that has none: the largest a timer takes. */
export const ENGINE_BACKSTOP_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** The context of an engine run (`$$`): the task token's and retry count's placeholders, and what else the runner passes. */
export function engineContext(context: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...context, Task: { Token: TOKEN_PLACEHOLDER }, State: ENGINE_CONTEXT_STATE };
}

/** The definition as the engine runs it (a copy): timeouts moved, backstops set, a Distributed Map refused. */
export function engineDefinition(definition: AslDefinition): AslDefinition {
  const copy = structuredClone(definition);
  for (const [name, state] of Object.entries((copy.States ?? {}) as Record<string, AslDefinition>)) {
    const processor = state.ItemProcessor ?? state.Iterator;
    if (state.Type === 'Map' && processor?.ProcessorConfig?.Mode === 'DISTRIBUTED') {
      throw new BranchSpawnerError(`${name} is a Distributed Map, which the local engine does not run (the stack's state machine has none)`);
    }
  }
  for (const [name, state] of taskStates(copy)) {
    if (typeof state.TimeoutSecondsPath === 'string') {
      if (!state.Parameters || typeof state.Parameters !== 'object') {
        throw new BranchSpawnerError(`${name}: a Task with TimeoutSecondsPath needs Parameters on the local engine (it resolves the path after them)`);
      }
      state.Parameters[`${TIMEOUT_FIELD}.$`] = state.TimeoutSecondsPath;
      delete state.TimeoutSecondsPath;
    }
    if (state.TimeoutSeconds === undefined) state.TimeoutSeconds = ENGINE_BACKSTOP_TIMEOUT_SECONDS;
  }
  return copy;
}

/** A task's timeout from its TimeoutSecondsPath, taken out of its resolved input; undefined when it has none. */
export function takeTimeoutSeconds(input: unknown): number | undefined {
  if (!input || typeof input !== 'object' || !(TIMEOUT_FIELD in input)) return undefined;
  const record = input as Record<string, unknown>;
  const seconds = Number(record[TIMEOUT_FIELD]);
  delete record[TIMEOUT_FIELD];
  return seconds;
}

/** `value` (a task's parameters) with the task's own token where `$$.Task.Token` was. */
export function withTaskToken<T>(value: T, token: string): T {
  if (value === undefined) return value;
  return JSON.parse(JSON.stringify(value).split(TOKEN_PLACEHOLDER).join(token)) as T;
}

/** A timer's delay for a timeout (no timer takes more than MAX_TIMER_MS). */
export function timerMs(timeoutSeconds: number): number {
  return Math.min(timeoutSeconds * 1000, MAX_TIMER_MS);
}

/** Every Task state of a definition, nested ones too (Map processors, Parallel branches), by name. */
export function taskStates(definition: AslDefinition): [string, AslDefinition][] {
  const found: [string, AslDefinition][] = [];
  for (const [name, state] of Object.entries((definition.States ?? {}) as Record<string, AslDefinition>)) {
    if (state.Type === 'Task') found.push([name, state]);
    const processor = state.ItemProcessor ?? state.Iterator;
    if (processor) found.push(...taskStates(processor));
    for (const branch of state.Branches ?? []) found.push(...taskStates(branch));
  }
  return found;
}

/** Lifecycle events (EventBridge `source: "branch-spawner"`, detail-type = `type`). */
import { jsonBytes } from './bounded-value';
import type { BranchRecord, BranchType, RunStatus, Suspension } from './model';
import type { ToolCallRecord } from './tools';

export const EVENT_SOURCE = 'branch-spawner';

export const EVENT_TYPES = [
  'RunStarted',
  'RunCompleted',
  'RunFailed',
  'RunCancelled',
  'BranchCreated',
  'BranchCompleted',
  'BranchFailed',
  'BranchCancelled',
  'SyncPointReached',
  'ToolCalled',
  'BranchRetryScheduled',
  'BranchWaiting',
  'BranchWaitingForCallback',
  'BranchResumed',
  'AgentRetryScheduled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The event that says a run ended, by the run's end status: the one list of them. */
export const RUN_END_EVENTS = { COMPLETED: 'RunCompleted', FAILED: 'RunFailed', CANCELLED: 'RunCancelled' } as const;
export type RunEndType = (typeof RUN_END_EVENTS)[keyof typeof RUN_END_EVENTS];

const RUN_END_TYPES: ReadonlySet<string> = new Set(Object.values(RUN_END_EVENTS));

/** True for RunCompleted, RunFailed and RunCancelled. */
export function isRunEnd<E extends { type: string }>(event: E): event is E & { type: RunEndType } {
  return RUN_END_TYPES.has(event.type);
}

export interface LifecycleEvent {
  /**
   * Stable id (see eventId): the same on every publication of the same change (a re-publish after
   * a crash, the events read back from the records), different for every other event.
   */
  eventId: string;
  type: EventType;
  team: string;
  runId: string;
  branchId?: string;
  time: number;
  detail: Record<string, unknown>;
}

export function runEvent(
  type: 'RunStarted' | 'RunCompleted' | 'RunFailed' | 'RunCancelled',
  scope: { team: string; runId: string },
  time: number,
  detail: { status: RunStatus } & Record<string, unknown>,
): LifecycleEvent {
  return { eventId: eventId(scope, type), type, team: scope.team, runId: scope.runId, time, detail };
}

export function branchEvent(
  type: 'BranchCreated' | 'BranchCompleted' | 'BranchFailed' | 'BranchCancelled',
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'parentId' | 'agent' | 'type' | 'depth' | 'status'> &
    Partial<Pick<BranchRecord, 'startedAt' | 'endedAt' | 'result'>>,
  time: number,
  extra: Record<string, unknown> = {},
): LifecycleEvent {
  return {
    eventId: eventId(branch, type, branch.id),
    type,
    team: branch.team,
    runId: branch.runId,
    branchId: branch.id,
    time,
    detail: {
      parentId: branch.parentId,
      agent: branch.agent,
      type: branch.type as BranchType,
      depth: branch.depth,
      status: branch.status,
      ...(branch.startedAt !== undefined ? { startedAt: branch.startedAt } : {}),
      ...(branch.endedAt !== undefined ? { endedAt: branch.endedAt } : {}),
      // BranchCompleted carries the result (capped, see cappedResult).
      ...(type === 'BranchCompleted' ? cappedResult(branch.result) : {}),
      ...extra,
    },
  };
}

export function syncPointEvent(
  scope: { team: string; runId: string },
  parentId: string,
  seq: number,
  time: number,
  detail: Record<string, unknown>,
): LifecycleEvent {
  const type = 'SyncPointReached';
  return { eventId: eventId(scope, type, parentId, seq), type, team: scope.team, runId: scope.runId, branchId: parentId, time, detail: { seq, ...detail } };
}

/**
 * One user tool call of an LLM agent: which tool, how it went and how long it took (sizes, not
 * contents). `call` numbers the step's tool calls from 0 (a resumed tool loop goes on counting).
 */
export function toolCalledEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  step: number,
  call: number,
  record: ToolCallRecord,
  time: number,
): LifecycleEvent {
  const type = 'ToolCalled';
  return { eventId: eventId(branch, type, branch.id, step, call), type, team: branch.team, runId: branch.runId, branchId: branch.id, time, detail: { agent: branch.agent, step, ...record } };
}

/**
 * A step failed (its error was thrown, not an agent's answer) and its message comes back after
 * `delaySeconds`: `attempt` is the delivery that failed (1 for the first).
 */
export function retryEvent(
  message: { team: string; runId: string; branchId: string; step: number },
  time: number,
  detail: { attempt: number; delaySeconds: number; error: string },
): LifecycleEvent {
  const error = detail.error.length > 1000 ? `${detail.error.slice(0, 997)}...` : detail.error;
  return {
    eventId: eventId(message, 'BranchRetryScheduled', message.branchId, message.step, detail.attempt),
    type: 'BranchRetryScheduled',
    team: message.team,
    runId: message.runId,
    branchId: message.branchId,
    time,
    detail: { step: message.step, attempt: detail.attempt, delaySeconds: detail.delaySeconds, error },
  };
}

/**
 * An event's stable id, from what the event is about and never from when it was told: the team,
 * run, type, branch (when it is about one) and what tells apart several events of that type on
 * one branch (the sync point's seq; the step and the attempt or tool call). A change told again —
 * a retry after a crash, a duplicate delivery, `resume`, the events read back from the records —
 * carries the same id, so consumers and hooks drop repeats by it. 32 hex digits (a 128-bit hash
 * of the parts, cyrb128); opaque to consumers.
 */
export function eventId(scope: { team: string; runId: string }, type: EventType, branchId?: string, ...more: number[]): string {
  return hash128(JSON.stringify([scope.team, scope.runId, type, branchId ?? null, ...more]));
}

/** cyrb128 (public domain): four 32-bit lanes, mixed at the end; fast, not cryptographic. */
function hash128(text: string): string {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1, h2, h3, h4].map((h) => (h >>> 0).toString(16).padStart(8, '0')).join('');
}

/**
 * A branch suspended (core/model.ts Suspension): `BranchWaiting` for a durable wait (`until`), or
 * `BranchWaitingForCallback` with the callback's `token` (who has it may answer), its `timeoutAt`
 * and the agent's `message` for whoever answers (capped like a result).
 */
export function suspendedEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  suspension: Suspension,
  time: number,
): LifecycleEvent {
  const type = suspension.kind === 'wait' ? 'BranchWaiting' : 'BranchWaitingForCallback';
  const base = { eventId: eventId(branch, type, branch.id, suspension.step), team: branch.team, runId: branch.runId, branchId: branch.id, time };
  const common = { agent: branch.agent, step: suspension.step, since: suspension.since };
  if (suspension.kind === 'wait') {
    return { ...base, type: 'BranchWaiting', detail: { ...common, until: suspension.until, seconds: Math.max(0, (suspension.until - suspension.since) / 1000) } };
  }
  const message = suspension.message === undefined ? {} : cappedValue('message', suspension.message);
  return { ...base, type: 'BranchWaitingForCallback', detail: { ...common, token: suspension.token, timeoutAt: suspension.until, ...message } };
}

/** A suspended branch goes on: its wait is over, or its callback was answered (the answer is its next input). */
export function resumedEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  suspension: Pick<Suspension, 'kind' | 'step'>,
  time: number,
): LifecycleEvent {
  return {
    eventId: eventId(branch, 'BranchResumed', branch.id, suspension.step),
    type: 'BranchResumed',
    team: branch.team,
    runId: branch.runId,
    branchId: branch.id,
    time,
    detail: { agent: branch.agent, step: suspension.step, reason: suspension.kind === 'wait' ? 'wait-over' : 'callback-answered' },
  };
}

/**
 * An attempt of a step's agent call failed and the agent's retry policy calls it again after
 * `delayMs` (the step waits in the worker): `attempt` is the one that failed (1 for the first) of
 * at most `attempts`; `kind` is what failed, as the policy's `on` names it.
 */
export function agentRetryEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  step: number,
  time: number,
  detail: { attempt: number; attempts: number; delayMs: number; kind: string; error: string },
): LifecycleEvent {
  const type = 'AgentRetryScheduled';
  const error = detail.error.length > 1000 ? `${detail.error.slice(0, 997)}...` : detail.error;
  return {
    eventId: eventId(branch, type, branch.id, step, detail.attempt),
    type,
    team: branch.team,
    runId: branch.runId,
    branchId: branch.id,
    time,
    detail: { agent: branch.agent, step, ...detail, error },
  };
}

/**
 * Results in events are capped so an event always fits EventBridge (256 KB a request): a result
 * over this many bytes of JSON is left out and marked, and the consumer reads it with the run and
 * branch ids every event carries (`GET /runs/{runId}/branches/{branchId}/result`).
 */
export const EVENT_RESULT_MAX_BYTES = 32 * 1024;

/** `{ result }`, or `{ resultTruncated: true, resultBytes }` when it is over the cap. */
export function cappedResult(result: unknown, maxBytes = EVENT_RESULT_MAX_BYTES): Record<string, unknown> {
  return cappedValue('result', result, maxBytes);
}

/** `{ [name]: value }`, or `{ [name]Truncated: true, [name]Bytes }` when it is over the cap. */
function cappedValue(name: string, value: unknown, maxBytes = EVENT_RESULT_MAX_BYTES): Record<string, unknown> {
  const bytes = jsonBytes(value ?? null);
  return bytes <= maxBytes ? { [name]: value ?? null } : { [`${name}Truncated`]: true, [`${name}Bytes`]: bytes };
}

export interface SyncPointChildResult {
  branchId: string;
  agent: string;
  status: string;
  result?: unknown;
  error?: string;
  resultTruncated?: true;
}

/**
 * The `results` of a SyncPointReached event: each child's status and result (or error), in child
 * order, within EVENT_RESULT_MAX_BYTES in all; results past it are left out and marked (and
 * `resultsTruncated: true` is set), to be read with the run id and the child's `branchId`.
 */
export function syncPointResults(
  children: readonly Pick<BranchRecord, 'id' | 'agent' | 'status' | 'result' | 'error'>[],
  maxBytes = EVENT_RESULT_MAX_BYTES,
): { results: SyncPointChildResult[]; resultsTruncated?: true } {
  let budget = maxBytes;
  let truncated = false;
  const results = children.map((c) => {
    const entry: SyncPointChildResult = { branchId: c.id, agent: c.agent, status: c.status };
    if (c.error !== undefined) entry.error = c.error.length > 1000 ? `${c.error.slice(0, 997)}...` : c.error;
    if (c.status === 'COMPLETED') {
      const bytes = jsonBytes(c.result ?? null);
      if (bytes <= budget) {
        entry.result = c.result ?? null;
        budget -= bytes;
      } else {
        entry.resultTruncated = true;
        truncated = true;
      }
    }
    return entry;
  });
  return truncated ? { results, resultsTruncated: true } : { results };
}


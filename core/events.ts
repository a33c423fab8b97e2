/** Lifecycle events (EventBridge `source: "branch-spawner"`, detail-type = `type`). */
import { jsonBytes } from './bounded-value';
import type { CompletionReason } from './fan-in-decision';
import type { BranchRecord, BranchStatus, BranchType, RunStatus, Suspension, SyncCounters } from './model';
import type { ToolCallRecord } from './tools';

export const EVENT_SOURCE = 'branch-spawner';

/** The event that says a run ended, by the run's end status: the one list of them. */
export const RUN_END_EVENTS = { COMPLETED: 'RunCompleted', FAILED: 'RunFailed', CANCELLED: 'RunCancelled' } as const;
export type RunEndType = (typeof RUN_END_EVENTS)[keyof typeof RUN_END_EVENTS];

export const EVENT_TYPES = [
  'RunStarted',
  RUN_END_EVENTS.COMPLETED,
  RUN_END_EVENTS.FAILED,
  RUN_END_EVENTS.CANCELLED,
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

const RUN_END_TYPES: readonly RunEndType[] = Object.values(RUN_END_EVENTS);

/** The event that tells a run ended with `status` (one still RUNNING when its end is told has failed). */
export function runEndEvent(status: RunStatus): RunEndType {
  return RUN_END_EVENTS[status === 'RUNNING' ? 'FAILED' : status];
}

/** True for RunCompleted, RunFailed and RunCancelled (the one test of a run's end), its detail then typed. */
export function isRunEnd(event: { type: string }): event is LifecycleEvent<RunEndType> {
  return isEventOf(event, ...RUN_END_TYPES);
}

/** What every branch event carries about its branch. */
export type BranchEventDetail = {
  parentId: string | null;
  agent: string;
  type: BranchType;
  depth: number;
  status: BranchStatus;
  startedAt?: number;
  endedAt?: number;
};

/** `{ [name]: value }` within EVENT_RESULT_MAX_BYTES, else `{ [name]Truncated: true, [name]Bytes }` (see cappedValue). */
export type Capped<N extends string> = Partial<Record<N, unknown> & Record<`${N}Truncated`, true> & Record<`${N}Bytes`, number>>;

/** The end of a run: RunCompleted, RunFailed, RunCancelled. */
export type RunEndDetail = {
  status: RunStatus;
  error?: string;
};

/**
 * Each event type's `detail`, the one place it is written down: the constructors below build
 * them, and a consumer that narrows an event by its `type` reads its detail typed.
 */
export interface EventDetails extends Record<RunEndType, RunEndDetail> {
  RunStarted: { status: 'RUNNING'; name: string };
  BranchCreated: BranchEventDetail & { seq?: number };
  BranchCompleted: BranchEventDetail & Capped<'result'>;
  BranchFailed: BranchEventDetail & { error?: string };
  BranchCancelled: BranchEventDetail & { reason?: string };
  SyncPointReached: SyncCounters & {
    seq: number;
    outcome: 'resume' | 'fail';
    reason: string;
    completion_reason: CompletionReason;
    results: SyncPointChildResult[];
    resultsTruncated?: true;
  };
  ToolCalled: Pick<ToolCallRecord, keyof ToolCallRecord> & { agent: string; step: number };
  BranchRetryScheduled: { step: number; attempt: number; delaySeconds: number; error: string };
  BranchWaiting: { agent: string; step: number; since: number; until: number; seconds: number };
  BranchWaitingForCallback: { agent: string; step: number; since: number; token?: string; timeoutAt: number } & Capped<'message'>;
  BranchResumed: { agent: string; step: number; reason: 'wait-over' | 'callback-answered' };
  AgentRetryScheduled: { agent: string; step: number; attempt: number; attempts: number; delayMs: number; kind: string; error: string };
}

/**
 * A lifecycle event, a union discriminated by `type` (`LifecycleEvent<'RunFailed'>` for one type,
 * any type without an argument): narrowing it by its type (`switch (event.type)`, isEventOf,
 * isRunEnd) types its detail as EventDetails has it.
 */
export type LifecycleEvent<T extends EventType = EventType> = {
  [K in T]: {
    /**
     * Stable id (see eventId): the same on every publication of the same change (a re-publish after
     * a crash, the events read back from the records), different for every other event.
     */
    eventId: string;
    type: K;
    team: string;
    runId: string;
    branchId?: string;
    time: number;
    detail: EventDetails[K];
  };
}[T];

/** True for an event of one of `types`, its detail then typed. */
export function isEventOf<T extends EventType>(event: { type: string }, ...types: T[]): event is LifecycleEvent<T> {
  return (types as string[]).includes(event.type);
}

/** An event of `type` (the one place its parts are put together). */
function lifecycleEvent<T extends EventType>(
  type: T,
  scope: { team: string; runId: string },
  branchId: string | undefined,
  time: number,
  id: string,
  detail: EventDetails[T],
): LifecycleEvent<T> {
  return { eventId: id, type, team: scope.team, runId: scope.runId, ...(branchId === undefined ? {} : { branchId }), time, detail } as LifecycleEvent<T>;
}

export function runEvent<T extends 'RunStarted' | RunEndType>(type: T, scope: { team: string; runId: string }, time: number, detail: EventDetails[T]): LifecycleEvent<T> {
  return lifecycleEvent(type, scope, undefined, time, eventId(scope, type), detail);
}

type BranchEventType = 'BranchCreated' | 'BranchCompleted' | 'BranchFailed' | 'BranchCancelled';

export function branchEvent<T extends BranchEventType>(
  type: T,
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'parentId' | 'agent' | 'type' | 'depth' | 'status'> &
    Partial<Pick<BranchRecord, 'startedAt' | 'endedAt' | 'result'>>,
  time: number,
  extra?: Omit<EventDetails[T], keyof BranchEventDetail | keyof Capped<'result'>>,
): LifecycleEvent<T> {
  const detail = {
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
  } as EventDetails[T];
  return lifecycleEvent(type, branch, branch.id, time, eventId(branch, type, branch.id), detail);
}

export function syncPointEvent(
  scope: { team: string; runId: string },
  parentId: string,
  seq: number,
  time: number,
  detail: Omit<EventDetails['SyncPointReached'], 'seq'>,
): LifecycleEvent<'SyncPointReached'> {
  const type = 'SyncPointReached';
  return lifecycleEvent(type, scope, parentId, time, eventId(scope, type, parentId, seq), { seq, ...detail });
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
): LifecycleEvent<'ToolCalled'> {
  const type = 'ToolCalled';
  return lifecycleEvent(type, branch, branch.id, time, eventId(branch, type, branch.id, step, call), { agent: branch.agent, step, ...record });
}

/**
 * A step failed (its error was thrown, not an agent's answer) and its message comes back after
 * `delaySeconds`: `attempt` is the delivery that failed (1 for the first).
 */
export function retryEvent(
  message: { team: string; runId: string; branchId: string; step: number },
  time: number,
  detail: { attempt: number; delaySeconds: number; error: string },
): LifecycleEvent<'BranchRetryScheduled'> {
  const type = 'BranchRetryScheduled';
  const id = eventId(message, type, message.branchId, message.step, detail.attempt);
  return lifecycleEvent(type, message, message.branchId, time, id, { step: message.step, attempt: detail.attempt, delaySeconds: detail.delaySeconds, error: cappedError(detail.error) });
}

/** An error message as events carry it: at most 1,000 characters. */
function cappedError(error: string): string {
  return error.length > 1000 ? `${error.slice(0, 997)}...` : error;
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
): LifecycleEvent<'BranchWaiting' | 'BranchWaitingForCallback'> {
  const type = suspension.kind === 'wait' ? 'BranchWaiting' : 'BranchWaitingForCallback';
  const id = eventId(branch, type, branch.id, suspension.step);
  const common = { agent: branch.agent, step: suspension.step, since: suspension.since };
  if (suspension.kind === 'wait') {
    return lifecycleEvent('BranchWaiting', branch, branch.id, time, id, { ...common, until: suspension.until, seconds: Math.max(0, (suspension.until - suspension.since) / 1000) });
  }
  const message = suspension.message === undefined ? {} : cappedValue('message', suspension.message);
  return lifecycleEvent('BranchWaitingForCallback', branch, branch.id, time, id, { ...common, token: suspension.token, timeoutAt: suspension.until, ...message });
}

/** A suspended branch goes on: its wait is over, or its callback was answered (the answer is its next input). */
export function resumedEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  suspension: Pick<Suspension, 'kind' | 'step'>,
  time: number,
): LifecycleEvent<'BranchResumed'> {
  const type = 'BranchResumed';
  return lifecycleEvent(type, branch, branch.id, time, eventId(branch, type, branch.id, suspension.step), {
    agent: branch.agent,
    step: suspension.step,
    reason: suspension.kind === 'wait' ? 'wait-over' : 'callback-answered',
  });
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
): LifecycleEvent<'AgentRetryScheduled'> {
  const type = 'AgentRetryScheduled';
  return lifecycleEvent(type, branch, branch.id, time, eventId(branch, type, branch.id, step, detail.attempt), {
    agent: branch.agent,
    step,
    ...detail,
    error: cappedError(detail.error),
  });
}

/**
 * Results in events are capped so an event always fits EventBridge (256 KB a request): a result
 * over this many bytes of JSON is left out and marked, and the consumer reads it with the run and
 * branch ids every event carries (`GET /runs/{runId}/branches/{branchId}/result`).
 */
export const EVENT_RESULT_MAX_BYTES = 32 * 1024;

/** `{ result }`, or `{ resultTruncated: true, resultBytes }` when it is over the cap. */
export function cappedResult(result: unknown, maxBytes = EVENT_RESULT_MAX_BYTES): Capped<'result'> {
  return cappedValue('result', result, maxBytes);
}

/** `{ [name]: value }`, or `{ [name]Truncated: true, [name]Bytes }` when it is over the cap. */
function cappedValue<N extends string>(name: N, value: unknown, maxBytes = EVENT_RESULT_MAX_BYTES): Capped<N> {
  const bytes = jsonBytes(value ?? null);
  return (bytes <= maxBytes ? { [name]: value ?? null } : { [`${name}Truncated`]: true, [`${name}Bytes`]: bytes }) as Capped<N>;
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


/** Lifecycle events (EventBridge `source: "branch-spawner"`, detail-type = `type`). */
import { jsonBytes } from './bounded-value';
import type { BranchRecord, BranchType, RunStatus } from './model';
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
  return { type, team: scope.team, runId: scope.runId, time, detail };
}

export function branchEvent(
  type: 'BranchCreated' | 'BranchCompleted' | 'BranchFailed' | 'BranchCancelled',
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'parentId' | 'agent' | 'type' | 'depth' | 'status'> &
    Partial<Pick<BranchRecord, 'startedAt' | 'endedAt' | 'result'>>,
  time: number,
  extra: Record<string, unknown> = {},
): LifecycleEvent {
  return {
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
  return { type: 'SyncPointReached', team: scope.team, runId: scope.runId, branchId: parentId, time, detail: { seq, ...detail } };
}

/** One user tool call of an LLM agent: which tool, how it went and how long it took (sizes, not contents). */
export function toolCalledEvent(
  branch: Pick<BranchRecord, 'team' | 'runId' | 'id' | 'agent'>,
  step: number,
  record: ToolCallRecord,
  time: number,
): LifecycleEvent {
  return { type: 'ToolCalled', team: branch.team, runId: branch.runId, branchId: branch.id, time, detail: { agent: branch.agent, step, ...record } };
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
    type: 'BranchRetryScheduled',
    team: message.team,
    runId: message.runId,
    branchId: message.branchId,
    time,
    detail: { step: message.step, attempt: detail.attempt, delaySeconds: detail.delaySeconds, error },
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
  const bytes = jsonBytes(result ?? null);
  return bytes <= maxBytes ? { result: result ?? null } : { resultTruncated: true, resultBytes: bytes };
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


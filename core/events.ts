/** Lifecycle events (EventBridge `source: "branch-spawner"`, detail-type = `type`). */
import type { BranchRecord, BranchType, RunStatus } from './model';

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
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

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
    Partial<Pick<BranchRecord, 'startedAt' | 'endedAt'>>,
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

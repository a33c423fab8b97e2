/** A spawn: an agent asked for children; check limits and keep what the parent will wait on (sync-point.ts opens it). */
import { jsonBytes } from '../bounded-value';
import { branchBudgetRefusal, checkSpawnLimits, type LimitRefusal } from '../limits';
import type { BranchRecord, ChildGroup, Scope, RunRecord, SpawnState } from '../model';
import type { AggregatorRef, ChildSpec, FanOutOptions, SpawnDecision, WaitFor } from '../protocol';
import { scopeOf, type SpawnerDeps } from './deps';

export interface SpawnOptions {
  waitFor: WaitFor;
  aggregator: AggregatorRef;
  inheritMemory: boolean;
  metadata?: Record<string, unknown>;
  options?: FanOutOptions;
}

/** The sync point state of a branch about to wait on `children`. */
export function spawnStateFor(
  parent: Pick<BranchRecord, 'childCount'>,
  seq: number,
  step: number,
  children: ChildGroup,
  options: SpawnOptions,
): SpawnState {
  return {
    seq,
    step,
    firstIndex: parent.childCount,
    waitFor: options.waitFor,
    aggregator: options.aggregator,
    ...(options.metadata ? { metadata: options.metadata } : {}),
    inheritMemory: options.inheritMemory,
    ...(options.options ? { options: options.options } : {}),
    pendingGroups: [],
    groupResults: [],
    grouped: false,
    childSpecs: children,
  };
}

/**
 * Checks every limit a spawn can break. The branch budget is reserved once per spawn key, so a
 * repeated delivery of the same step never counts the children twice.
 */
export async function checkSpawn(
  deps: SpawnerDeps,
  run: RunRecord,
  branch: BranchRecord,
  decision: SpawnDecision,
  step: number,
): Promise<LimitRefusal | undefined> {
  // A loop, not Math.max(...): spreading a list of 100k+ groups overflows the stack.
  const widest = decision.groups.reduce((max, g) => Math.max(max, g.length), 0);
  const local = checkSpawnLimits(run.limits, branch.depth, widest);
  if (local) return local;
  const total = decision.groups.reduce((n, g) => n + g.length, 0);
  const reserved = await deps.store.reserveBranches(scopeOf(branch), `${branch.id}#${step}`, total, run.limits.maxBranches);
  return reserved.ok ? undefined : branchBudgetRefusal(run.limits, reserved.branchCount, total);
}

/** Spawns whose specs pass this many bytes of JSON keep them out of the parent's item. */
export const INLINE_SPECS_MAX_BYTES = 16 * 1024;

/**
 * The groups of a spawn as the parent will keep them: inline when small; otherwise stored
 * apart (BranchStore.putChildSpecs, under a key of this very delivery, before the parent's
 * write: a concurrent duplicate that loses that write leaves specs nobody points to, never a
 * mix of two answers) and kept as ranges.
 */
export async function spawnGroups(
  deps: SpawnerDeps,
  branch: BranchRecord,
  decision: SpawnDecision,
  step: number,
  deliveryId: string,
): Promise<ChildGroup[]> {
  const bytes = decision.groups.reduce((n, g) => n + g.reduce((m, spec) => m + jsonBytes(spec), 0), 0);
  if (bytes <= INLINE_SPECS_MAX_BYTES) return decision.groups;
  const stored = `${branch.id}#${step}#${deliveryId}`;
  await deps.store.putChildSpecs(scopeOf(branch), stored, decision.groups.flat());
  let offset = 0;
  return decision.groups.map((g) => {
    const range = { stored, offset, count: g.length };
    offset += g.length;
    return range;
  });
}

/** The specs of a group, read back when they were stored apart. */
export async function specsOf(deps: SpawnerDeps, scope: Scope, group: ChildGroup): Promise<ChildSpec[]> {
  return Array.isArray(group) ? group : deps.store.getChildSpecs(scope, group.stored, group.offset, group.count);
}

export function spawnStateFromDecision(
  branch: BranchRecord,
  decision: SpawnDecision,
  step: number,
  groups: ChildGroup[] = decision.groups,
): SpawnState {
  const [first, ...rest] = groups;
  const seq = (branch.spawn?.seq ?? 0) + 1;
  return {
    ...spawnStateFor(branch, seq, step, first, decision),
    pendingGroups: rest,
    grouped: decision.grouped,
  };
}

/** The fan-out side: an agent asked for children; check limits, write them, start the fan-out. */
import { branchEvent } from '../events';
import { branchBudgetRefusal, checkSpawnLimits, type LimitRefusal } from '../limits';
import type { FanOutRequest } from '../ports';
import {
  childId,
  isTerminal,
  fanOutExecutionName,
  spawnWidth,
  type AggregatorRef,
  type BranchRecord,
  type ChildGroup,
  type ChildSpec,
  type Scope,
  type RunRecord,
  type SpawnState,
  type WaitFor,
} from '../model';
import type { SpawnDecision } from '../protocol';
import { cancelChildren } from './end-branch';
import { hit, publish, scopeOf, type SpawnerDeps } from './deps';

export interface SpawnOptions {
  waitFor: WaitFor;
  aggregator: AggregatorRef;
  inheritMemory: boolean;
  metadata?: Record<string, unknown>;
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

function jsonBytes(value: unknown): number {
  // UTF-16 length is close enough to decide inline or not (and never smaller than 1/3 of the UTF-8 size).
  return JSON.stringify(value).length;
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

/**
 * Opens the branch's current sync point: the counters, the child records, the fan-out.
 * Every part is idempotent, so a retry after a crash simply runs it again.
 */
export async function openSyncPoint(
  deps: SpawnerDeps,
  run: RunRecord,
  parent: BranchRecord,
  /** The specs, when the caller has them at hand (saves reading stored ones back). */
  known?: ChildSpec[],
): Promise<void> {
  const spawn = parent.spawn;
  if (!spawn) return;
  const scope = scopeOf(parent);
  const executionName = fanOutExecutionName(scope, parent.id, spawn.seq);
  const maxFailedFraction = spawn.aggregationOf !== undefined ? 0 : run.failurePolicy.maxFailedFraction;
  await deps.store.createSyncPoint({
    ...scope,
    parentId: parent.id,
    seq: spawn.seq,
    counters: { total: spawnWidth(spawn), succeeded: 0, failed: 0, cancelled: 0 },
    waitFor: spawn.waitFor,
    maxFailedFraction,
    executionName,
  });
  const now = deps.clock.now();
  const specs = known ?? (await specsOf(deps, scope, spawn.childSpecs));
  const children: BranchRecord[] = specs.map((spec, i) => ({
    ...scope,
    id: childId(parent.id, spawn.firstIndex + i),
    parentId: parent.id,
    parentSeq: spawn.seq,
    depth: parent.depth + 1,
    type: spawn.aggregationOf !== undefined ? 'AGGREGATION' : spec.type,
    entryAgent: spec.agent,
    agent: spec.agent,
    status: 'PENDING',
    version: 0,
    stepCount: 0,
    invalidCount: 0,
    refusalCount: 0,
    input: spec.input,
    memory: spawn.inheritMemory ? parent.memory.map((entry) => ({ ...entry, inherited: true })) : [],
    ...(spec.peers ? { peers: spec.peers } : {}),
    ...(spec.maxTurns ? { maxTurns: spec.maxTurns } : {}),
    inheritMemory: spawn.inheritMemory,
    childCount: 0,
    fanIn: { waitFor: spawn.waitFor, maxFailedFraction },
    createdAt: now,
  }));
  await deps.store.createBranches(children);
  hit(deps, 'after-write-children', scope, `${parent.id}#${spawn.seq}`);
  // BranchCreated is published before the parent records that it was (`announced`): a worker
  // that dies in between leaves the mark unset, and whoever opens this sync point again (the
  // step's redelivery, a retried settlement, resume) publishes again. At least once; twice only
  // when two openers overlap.
  if (!spawn.announced) {
    await publish(deps, ...children.map((c) => branchEvent('BranchCreated', c, now, { seq: spawn.seq })));
    await deps.store.updateBranch(scope, parent.id, parent.version, { spawn: { ...spawn, announced: true } });
  }
  await deps.fanOut.start(fanOutRequest(run, parent.id, spawn, executionName));
  // The parent may have ended (a cancel) while this ran; its end cancelled the children it could
  // read then. Checked after the children exist and their fan-out started, so that either that
  // end saw them or this read sees the end: the children it missed are cancelled here.
  const current = await deps.store.getBranch(scope, parent.id);
  if (current && isTerminal(current.status) && current.spawn?.seq === spawn.seq) await cancelChildren(deps, current);
}

/** The fan-out of a sync point: its children as a range of indices, never a list. */
export function fanOutRequest(run: RunRecord, parentId: string, spawn: SpawnState, executionName: string): FanOutRequest {
  return {
    ...scopeOf(run),
    parentId,
    seq: spawn.seq,
    executionName,
    maxConcurrency: run.limits.maxConcurrentBranches,
    firstIndex: spawn.firstIndex,
    count: spawnWidth(spawn),
    timeoutSeconds: run.limits.branchTimeoutSeconds,
  };
}

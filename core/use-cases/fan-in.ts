/**
 * The fan-in side: a branch's end is counted on its parent's sync point exactly once; the
 * sync point is settled (aggregated) exactly once; the parent resumes or fails.
 */
import { aggregate, type ChildResult } from '../aggregators';
import { branchEvent, runEvent, syncPointEvent } from '../events';
import { AggregationError, errorMessage, NotFoundError, PayloadTooLargeError } from '../errors';
import { decideFanIn, type FanInDecision } from '../fan-in';
import {
  ACTIVE_STATUSES,
  childId,
  isTerminal,
  type BranchRecord,
  type ChildOutcome,
  type RunRecord,
  type Scope,
  type SpawnState,
} from '../model';
import { defined, hit, loadRun, publish, scopeOf, type SpawnerDeps } from './deps';
import { readableResponse } from './readable-json';
import { openSyncPoint, spawnStateFor } from './spawn';

export function outcomeOf(branch: BranchRecord): ChildOutcome {
  if (branch.status === 'COMPLETED') return 'succeeded';
  if (branch.status === 'CANCELLED') return 'cancelled';
  return 'failed';
}

/** Ids of the children of the branch's current sync point. */
export function currentChildIds(branch: BranchRecord): string[] {
  const spawn = branch.spawn;
  if (!spawn) return [];
  return Array.from({ length: spawn.children }, (_, i) => childId(branch.id, spawn.firstIndex + i));
}

/**
 * Tells the world a branch reached a terminal status: ends the run for the root, otherwise
 * counts the end on the parent's sync point (idempotent), exits early when the counts decide
 * it, and releases the child's fan-out iteration. Safe to repeat for the same branch.
 */
export async function propagateEnd(deps: SpawnerDeps, branch: BranchRecord): Promise<void> {
  const scope = scopeOf(branch);
  if (branch.parentId === null || branch.parentSeq === null) {
    await finishRunFromRoot(deps, branch);
    return;
  }
  const { applied, counters } = await deps.store.recordChildEnd(
    scope,
    branch.parentId,
    branch.parentSeq,
    branch.id,
    outcomeOf(branch),
  );
  const fanIn = branch.fanIn ?? { waitFor: 'all' as const, maxFailedFraction: 0.5 };
  const decision = decideFanIn(counters, fanIn.waitFor, fanIn.maxFailedFraction);
  if (decision.action !== 'wait') {
    // An early exit is settled here: the fan-out is stopped, so its Aggregate never runs. A
    // repeated end (a retry after a crash) settles again if the sync point was claimed: the
    // crash may have cut the settlement short, and by now the counters (cancelled children
    // counted) no longer show that the exit was early.
    if (decision.cancelRest) {
      await settleSyncPoint(deps, scope, branch.parentId, branch.parentSeq, { decision, early: true });
    } else if (!applied && (await isClaimed(deps, scope, branch.parentId, branch.parentSeq))) {
      // Not early (the fan-out was stopped by the first settlement already, if it was early):
      // stopping here could stop an Aggregate that is itself settling, and skip its retries.
      await settleSyncPoint(deps, scope, branch.parentId, branch.parentSeq, { decision, early: false });
    }
  }
  if (branch.taskToken) {
    hit(deps, 'before-task-success', scope, branch.id);
    await deps.fanOut.childFinished(branch.taskToken, { branchId: branch.id, status: branch.status });
  }
}

async function isClaimed(deps: SpawnerDeps, scope: Scope, parentId: string, seq: number): Promise<boolean> {
  return (await deps.store.getSyncPoint(scope, parentId, seq))?.aggregatedAt !== undefined;
}

async function finishRunFromRoot(deps: SpawnerDeps, root: BranchRecord): Promise<void> {
  const scope = scopeOf(root);
  const now = deps.clock.now();
  const status = root.status === 'COMPLETED' ? 'COMPLETED' : root.status === 'CANCELLED' ? 'CANCELLED' : 'FAILED';
  const finished = await deps.store.finishRun(
    scope,
    status,
    defined({ endedAt: now, result: status === 'COMPLETED' ? root.result ?? null : undefined, error: root.error }),
  );
  if (!finished) return;
  const type = status === 'COMPLETED' ? 'RunCompleted' : status === 'CANCELLED' ? 'RunCancelled' : 'RunFailed';
  await publish(deps, runEvent(type, scope, now, defined({ status, error: root.error })));
  // Nothing may outlive its run: fan-outs still open (e.g. after a root failure) are stopped.
  for (const open of await deps.store.listOpenSyncPoints(scope)) {
    await deps.fanOut.stop(open.executionName, `run ${status}`);
  }
}

export interface SettleOptions {
  /** The decision already taken by the caller (early exit); computed from the counters otherwise. */
  decision?: FanInDecision;
  /** True when settling before the fan-out finished: its execution is stopped. */
  early: boolean;
}

/**
 * Settles a sync point exactly once: claims it, cancels the children still running, and
 * resumes or fails the parent. A repeat (a retry after a crash) redoes the idempotent parts.
 */
export async function settleSyncPoint(
  deps: SpawnerDeps,
  scope: Scope,
  parentId: string,
  seq: number,
  options: SettleOptions,
): Promise<void> {
  let sp = await deps.store.getSyncPoint(scope, parentId, seq);
  const parent = await deps.store.getBranch(scope, parentId);
  if (!sp || !parent) return;
  const childIds = sp ? syncChildIds(parent, seq) : [];
  hit(deps, 'inside-aggregate', scope, `${parentId}#${seq}`);
  let decision = options.decision;
  if (!sp.aggregatedAt) {
    decision ??= decideFanIn(sp.counters, sp.waitFor, sp.maxFailedFraction);
    if (decision.action === 'wait') {
      // The fan-out ended but some ends were never counted: count them from the records.
      await countUnreported(deps, scope, parentId, seq, childIds);
      sp = (await deps.store.getSyncPoint(scope, parentId, seq))!;
      decision = decideFanIn(sp.counters, sp.waitFor, sp.maxFailedFraction);
      if (decision.action === 'wait') return;
    }
    const now = deps.clock.now();
    if (await deps.store.claimAggregation(scope, parentId, seq, decision.action, now)) {
      await publish(
        deps,
        syncPointEvent(scope, parentId, seq, now, { outcome: decision.action, reason: decision.reason, ...sp.counters }),
      );
    }
    sp = (await deps.store.getSyncPoint(scope, parentId, seq))!;
  }
  const outcome = sp.outcome ?? 'fail';
  await cancelBranches(deps, scope, childIds, 'the sync point was settled without it');
  if (options.early) await deps.fanOut.stop(sp.executionName, `sync point ${parentId}#${seq} settled early`);

  if (outcome === 'fail') {
    const reason = decision && decision.action !== 'wait' ? decision.reason : 'too many children failed';
    const first = firstFailure(await deps.store.getBranches(scope, childIds));
    await failWaitingParent(deps, parent, seq, `children failed: ${reason}${first}`);
    return;
  }
  const run = await loadRun(deps, scope);
  if (!run) return;
  if (parent.status !== 'WAITING' || parent.spawn?.seq !== seq) {
    // The parent already moved on from this sync point (a retry after a crash in the resume):
    // there is nothing to aggregate, only the resume's last part to finish.
    await resumeParent(deps, run, parent, seq, undefined);
    return;
  }
  const children = await deps.store.getBranches(scope, childIds);
  let value: unknown;
  try {
    value = aggregateFor(deps, parent, seq, children);
  } catch (error) {
    await failWaitingParent(deps, parent, seq, errorMessage(error));
    return;
  }
  await resumeParent(deps, run, parent, seq, value);
}

/** Marks where a parent's error quotes the failure that started it. */
const FIRST_FAILURE = ' — first failure ';

/**
 * Names the earliest failed child and what failed at the bottom of it, so a run that fails
 * several levels up still says why (e.g. which limit was hit, by which branch).
 */
function firstFailure(children: BranchRecord[]): string {
  const failed = children
    .filter((c) => c.status === 'FAILED' || c.status === 'TIMED_OUT')
    .sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0) || (a.id < b.id ? -1 : 1));
  const child = failed[0];
  if (!child) return '';
  const error = child.error ?? child.status;
  const at = error.lastIndexOf(FIRST_FAILURE);
  const origin = at >= 0 ? error.slice(at + FIRST_FAILURE.length) : `${child.id}: ${error}`;
  return `${FIRST_FAILURE}${origin.length > 500 ? `${origin.slice(0, 497)}...` : origin}`;
}

function syncChildIds(parent: BranchRecord, seq: number): string[] {
  return parent.spawn && parent.spawn.seq === seq ? currentChildIds(parent) : [];
}

function aggregateFor(deps: SpawnerDeps, parent: BranchRecord, seq: number, children: BranchRecord[]): unknown {
  const spawn = parent.spawn;
  if (!spawn || spawn.seq !== seq) throw new AggregationError(`branch ${parent.id} is not waiting on sync point ${seq}`);
  const results: ChildResult[] = children.map((c) =>
    defined({ branchId: c.id, agent: c.agent, status: c.status, result: c.result, error: c.error }),
  );
  if (spawn.aggregationOf !== undefined) {
    // An AGGREGATION branch's final response is the aggregate.
    return children[0]?.result ?? null;
  }
  const value = aggregate(spawn.aggregator, results, { waitFor: spawn.waitFor, metadata: spawn.metadata }, deps.aggregators);
  // A registered aggregator is user code: what it returns must be storable JSON.
  const readable = readableResponse(value);
  if (!readable.ok) throw new AggregationError(`the aggregator's result ${readable.reason}`);
  return readable.value;
}

async function countUnreported(deps: SpawnerDeps, scope: Scope, parentId: string, seq: number, ids: string[]) {
  for (const child of await deps.store.getBranches(scope, ids)) {
    let ended: BranchRecord | undefined = child;
    if (!isTerminal(child.status)) {
      ended = await deps.store.transitionBranch(scope, child.id, ACTIVE_STATUSES, 'FAILED', {
        error: 'the fan-out ended without a report from this branch',
        endedAt: deps.clock.now(),
      });
      if (ended) await publish(deps, branchEvent('BranchFailed', ended, deps.clock.now(), { error: ended.error }));
    }
    if (ended) await deps.store.recordChildEnd(scope, parentId, seq, child.id, outcomeOf(ended));
  }
}

/** Resumes a parent after a settled sync point: next group, aggregation branch, or its agent. */
async function resumeParent(deps: SpawnerDeps, run: RunRecord, parent: BranchRecord, seq: number, value: unknown) {
  try {
    await resumeParentWith(deps, run, parent, seq, value);
  } catch (error) {
    // An aggregate that cannot be stored on the parent fails it; thrown, it would fail the
    // aggregation on every retry and leave the parent waiting forever.
    if (!(error instanceof PayloadTooLargeError)) throw error;
    await failWaitingParent(deps, parent, seq, `the aggregate of sync point ${seq} is too large to store: ${error.message}`);
  }
}

async function resumeParentWith(deps: SpawnerDeps, run: RunRecord, parent: BranchRecord, seq: number, value: unknown) {
  const scope = scopeOf(parent);
  const spawn = parent.spawn!;
  const mark = `sync:${seq}`;
  if (parent.status === 'WAITING' && spawn.seq === seq) {
    const next = nextSpawnAfter(parent, spawn, value);
    if (next) {
      const updated = await deps.store.updateBranch(scope, parent.id, parent.version, {
        spawn: next.spawn,
        childCount: parent.childCount + next.spawn.children,
        advancedBy: mark,
      });
      if (updated) await openSyncPoint(deps, run, updated);
      return;
    }
    const input = spawn.grouped && spawn.groupResults.length > 0 ? [...spawn.groupResults, value] : value;
    const updated = await deps.store.updateBranch(scope, parent.id, parent.version, {
      status: 'RUNNING',
      input,
      advancedBy: mark,
    });
    if (!updated) return;
    hit(deps, 'before-enqueue', scope, `${parent.id}#${seq}>resume`);
    await deps.queue.send([{ ...scope, branchId: parent.id, step: updated.stepCount }]);
  } else if (parent.status === 'RUNNING' && parent.advancedBy === mark) {
    // A retry after a crash between the resume and its message: send the step again.
    await deps.queue.send([{ ...scope, branchId: parent.id, step: parent.stepCount }]);
  } else if (parent.status === 'WAITING' && parent.advancedBy === mark && parent.spawn && parent.spawn.seq !== seq) {
    // A retry after a crash while opening the next sync point: open it again (idempotent).
    await openSyncPoint(deps, run, parent);
  }
}

interface NextSpawn {
  spawn: SpawnState;
}

function nextSpawnAfter(parent: BranchRecord, spawn: SpawnState, value: unknown): NextSpawn | undefined {
  if (spawn.aggregator.kind === 'agent' && spawn.aggregationOf === undefined) {
    const child = { agent: spawn.aggregator.agent, input: value, type: 'SIMPLE' as const };
    return {
      spawn: {
        ...spawnStateFor(parent, spawn.seq + 1, spawn.step, [child], {
          waitFor: 'all',
          aggregator: spawn.aggregator,
          inheritMemory: false,
        }),
        pendingGroups: spawn.pendingGroups,
        groupResults: spawn.groupResults,
        grouped: spawn.grouped,
        aggregationOf: spawn.seq,
      },
    };
  }
  if (spawn.pendingGroups.length > 0) {
    const [group, ...rest] = spawn.pendingGroups;
    return {
      spawn: {
        ...spawnStateFor(parent, spawn.seq + 1, spawn.step, group, {
          waitFor: spawn.waitFor,
          aggregator: spawn.aggregator,
          inheritMemory: spawn.inheritMemory,
          metadata: spawn.metadata,
        }),
        pendingGroups: rest,
        groupResults: [...spawn.groupResults, value],
        grouped: true,
      },
    };
  }
  return undefined;
}


async function failWaitingParent(deps: SpawnerDeps, parent: BranchRecord, seq: number, reason: string) {
  const scope = scopeOf(parent);
  let ended: BranchRecord | undefined = parent;
  if (!isTerminal(parent.status)) {
    if (parent.spawn?.seq !== seq) return;
    ended = await deps.store.transitionBranch(scope, parent.id, ['WAITING'], 'FAILED', {
      error: reason,
      endedAt: deps.clock.now(),
    });
    if (!ended) return;
    await publish(deps, branchEvent('BranchFailed', ended, deps.clock.now(), { error: reason }));
  }
  if (ended.status === 'FAILED') await propagateEnd(deps, ended);
}

/**
 * Cancels the given branches that are still active and, below each that was waiting, its
 * current children; stops the fan-outs of the sync points that are cancelled with them.
 */
export async function cancelBranches(deps: SpawnerDeps, scope: Scope, ids: string[], reason: string): Promise<void> {
  if (ids.length === 0) return;
  const branches = await deps.store.getBranches(scope, ids);
  await Promise.all(
    branches
      .filter((b) => !isTerminal(b.status))
      .map(async (b) => {
        const cancelled = await deps.store.transitionBranch(scope, b.id, ACTIVE_STATUSES, 'CANCELLED', {
          error: reason,
          endedAt: deps.clock.now(),
        });
        if (!cancelled) return;
        await publish(deps, branchEvent('BranchCancelled', cancelled, deps.clock.now(), { reason }));
        await countCancelled(deps, cancelled);
        if (b.status === 'WAITING' && b.spawn) {
          await cancelBranches(deps, scope, currentChildIds(b), `its parent ${b.id} was cancelled`);
          const sp = await deps.store.getSyncPoint(scope, b.id, b.spawn.seq);
          if (sp) await deps.fanOut.stop(sp.executionName, `branch ${b.id} cancelled`);
        }
      }),
  );
}

/**
 * Counts a cancelled child on its sync point. Its fan-out iteration is stopped with it, so no
 * report would ever count it, and the counters would stay short of the children they describe.
 * (The sync point is settled by then: the count informs, it decides nothing.)
 */
async function countCancelled(deps: SpawnerDeps, branch: BranchRecord): Promise<void> {
  if (branch.parentId === null || branch.parentSeq === null) return;
  try {
    await deps.store.recordChildEnd(scopeOf(branch), branch.parentId, branch.parentSeq, branch.id, 'cancelled');
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
}

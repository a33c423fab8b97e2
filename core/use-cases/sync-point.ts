/**
 * The resume side of a sync point (the end side is end-branch.ts): the children's results become
 * one value (the aggregator), and the parent goes on — its next group, its `agent:` aggregator's
 * branch, or its own agent again with the value as input.
 */
import { aggregate, type ChildResult } from '../aggregators';
import { AggregationError, PayloadTooLargeError } from '../errors';
import { childId, spawnWidth, type BranchRecord, type RunRecord, type SpawnState } from '../model';
import { defined, hit, scopeOf, type SpawnerDeps } from './deps';
import { WorkMark } from '../work-mark';
import { readableResponse } from './readable-json';
import { openSyncPoint, spawnStateFor } from './spawn';

/** Ids of the children of the branch's current sync point. */
export function currentChildIds(branch: BranchRecord): string[] {
  const spawn = branch.spawn;
  if (!spawn) return [];
  return Array.from({ length: spawnWidth(spawn) }, (_, i) => childId(branch.id, spawn.firstIndex + i));
}

/** Marks where a parent's error quotes the failure that started it. */
const FIRST_FAILURE = ' — first failure ';

/**
 * Names the earliest failed child and what failed at the bottom of it, so a run that fails
 * several levels up still says why (e.g. which limit was hit, by which branch).
 */
export function firstFailure(children: BranchRecord[]): string {
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

export function aggregateFor(deps: SpawnerDeps, parent: BranchRecord, seq: number, children: BranchRecord[]): unknown {
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

/**
 * Resumes a parent after a settled sync point: next group, aggregation branch, or its agent.
 * Returns why the parent must fail instead, if it must (the caller ends it).
 */
export async function resumeParent(
  deps: SpawnerDeps,
  run: RunRecord,
  parent: BranchRecord,
  seq: number,
  value: unknown,
): Promise<string | undefined> {
  try {
    await resumeParentWith(deps, run, parent, seq, value);
    return undefined;
  } catch (error) {
    // An aggregate that cannot be stored on the parent fails it; thrown, it would fail the
    // aggregation on every retry and leave the parent waiting forever.
    if (!(error instanceof PayloadTooLargeError)) throw error;
    return `the aggregate of sync point ${seq} is too large to store: ${error.message}`;
  }
}

async function resumeParentWith(deps: SpawnerDeps, run: RunRecord, parent: BranchRecord, seq: number, value: unknown) {
  const scope = scopeOf(parent);
  const spawn = parent.spawn!;
  const mark = WorkMark.sync(seq);
  if (parent.status === 'WAITING' && spawn.seq === seq) {
    const next = nextSpawnAfter(parent, spawn, value);
    if (next) {
      const updated = await deps.store.updateBranch(scope, parent.id, parent.version, {
        spawn: next.spawn,
        childCount: parent.childCount + spawnWidth(next.spawn),
        advancedBy: mark,
      });
      if (updated) await openSyncPoint(deps, run, updated);
      return;
    }
    // `next_actions`: a list, one aggregate per group, whether there was one group or several.
    const input = spawn.grouped ? [...spawn.groupResults, value] : value;
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

/**
 * A sync point's life, in one place: a parent that spawned children waits on it.
 *
 * 1. Open (`openSyncPoint`): its record and counters, the child records, BranchCreated, the fan-out.
 * 2. Count (`countChildEnd`): each child's end is counted once; when the counts decide it early
 *    (core/fan-in-decision.ts), the sync point is settled at once, else the fan-out's Aggregate does.
 * 3. Settle (`settleSyncPoint`): claimed once; the children left out are cancelled; then the
 *    SyncPointReached event; the parent fails, or
 * 4. resumes (`resumeParent`): the aggregate (the aggregator), then its next group, its
 *    `agent:` aggregator's branch, or its own agent again with the aggregate as input.
 *
 * Ending a branch tells its sync point, and settling a sync point ends branches: the ends of
 * end-branch.ts are handed in (`BranchEnds`, typed in branch-ends.ts), so this module does not
 * import end-branch.ts (which imports it) and no import circle forms (test/core/import-graph.test.ts).
 */
import { aggregate, askCompletion, continueAggregate, type ChildResult } from '../aggregators';
import { errorMessage, AggregationError, PayloadTooLargeError } from '../errors';
import { branchEvent, syncPointEvent, syncPointResults } from '../events';
import { completionReason, decideFanIn, fanInRuleOf, type CompletionVerdict, type FanInDecision } from '../fan-in-decision';
import { fanOutConcurrency } from '../limits';
import {
  childId,
  fanOutExecutionName,
  isTerminal,
  spawnWidth,
  type BranchOutcome,
  type BranchRecord,
  type ChildOutcome,
  type FanInRule,
  type RunRecord,
  type Scope,
  type SpawnState,
  type SyncCounters,
  type SyncPointRecord,
} from '../model';
import { COMPLETION_FN_PREFIX, type ChildSpec } from '../protocol';
import type { FanOutRequest } from '../ports';
import { isInProcessWork, WorkMark } from '../work-mark';
import { defined, hit, loadRun, publish, scopeOf, type SpawnerDeps } from './deps';
import type { BranchEnds, TellOptions } from './branch-ends';
import { readableResponse } from './readable-json';
import { specsOf, spawnStateFor } from './spawn';
import { batchedChildEnded } from './fan-out-batch';

/**
 * Opens the branch's current sync point: the counters, the child records, the fan-out.
 * Every part is idempotent, so a retry after a crash simply runs it again.
 */
export async function openSyncPoint(
  deps: SpawnerDeps,
  ends: BranchEnds,
  run: RunRecord,
  parent: BranchRecord,
  /** The specs, when the caller has them at hand (saves reading stored ones back). */
  known?: ChildSpec[],
): Promise<void> {
  const spawn = parent.spawn;
  if (!spawn) return;
  const scope = scopeOf(parent);
  const executionName = fanOutExecutionName(scope, parent.id, spawn.seq);
  // Kept on the sync point and on each child, so that every end and every retry decides alike.
  const rule = fanInRuleOf(spawn, run.failurePolicy);
  const opened = await deps.store.createSyncPoint({
    ...scope,
    parentId: parent.id,
    seq: spawn.seq,
    counters: { total: spawnWidth(spawn), succeeded: 0, failed: 0, cancelled: 0 },
    ...rule,
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
    fanIn: rule,
    createdAt: now,
  }));
  // The sync point there already: an earlier try died while opening it (a crash, a step past its
  // time). Only the children it did not write are written, so a wide spawn cut short goes on from
  // where it stopped instead of starting over (and cut short again, the same way, every time).
  await deps.store.createBranches(opened ? children : await notWrittenYet(deps, scope, children));
  hit(deps, 'after-write-children', scope, `${parent.id}#${spawn.seq}`);
  // BranchCreated is published before the parent records that it was (`announced`): a worker
  // that dies in between leaves the mark unset, and whoever opens this sync point again (the
  // step's redelivery, a retried settlement, resume) publishes again. At least once; twice only
  // when two openers overlap.
  if (!spawn.announced) {
    await publish(deps, ...children.map((c) => branchEvent('BranchCreated', c, now, { seq: spawn.seq })));
    await deps.store.updateBranch(scope, parent.id, parent.version, { spawn: { ...spawn, announced: true } });
  }
  await deps.fanOut.start(fanOutRequest(deps, run, parent.id, spawn, executionName));
  // The parent may have ended (a cancel) while this ran; its end cancelled the children it could
  // read then. Checked after the children exist and their fan-out started, so that either that
  // end saw them or this read sees the end: the children it missed are cancelled here (those it
  // cancelled are its to tell; a retry of the parent's end, or of this work, tells them again).
  // Their BranchCreated this opening has told (or found told): not again, though the end that
  // beat its `announced` write left the mark unset.
  const current = await deps.store.getBranch(scope, parent.id);
  if (current?.spawn && isTerminal(current.status) && current.spawn.seq === spawn.seq) {
    await ends.cancelChildren(deps, { ...current, spawn: { ...current.spawn, announced: true } }, false);
  }
}

/** The children of a spawn not written yet: their statuses read (no values), 100 a request. */
async function notWrittenYet(deps: SpawnerDeps, scope: Scope, children: BranchRecord[]): Promise<BranchRecord[]> {
  const { branches } = await deps.store.getStatuses(scope, children.map((c) => c.id));
  return children.filter((c) => !branches.has(c.id));
}

/** The fan-out of a sync point: its children as a range of indices, never a list. */
export function fanOutRequest(deps: Pick<SpawnerDeps, 'fanOutDispatch'>, run: RunRecord, parentId: string, spawn: SpawnState, executionName: string): FanOutRequest {
  return {
    ...scopeOf(run),
    parentId,
    seq: spawn.seq,
    executionName,
    maxConcurrency: fanOutConcurrency(run.limits, spawn.options?.maxConcurrency),
    firstIndex: spawn.firstIndex,
    count: spawnWidth(spawn),
    timeoutSeconds: run.limits.branchTimeoutSeconds,
    ...(deps.fanOutDispatch ? { dispatch: deps.fanOutDispatch } : {}),
  };
}

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
export function firstFailure(children: readonly BranchOutcome[]): string {
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

function childResults(children: readonly BranchOutcome[]): ChildResult[] {
  return children.map((c) => defined({ branchId: c.id, agent: c.agent, status: c.status, result: c.result, error: c.error }));
}

/** A completion function's verdict on the children as they are (a rule without one needs none). */
export function verdictOn(deps: SpawnerDeps, rule: FanInRule, children: readonly BranchOutcome[]): CompletionVerdict | undefined {
  if (rule.completeFn === undefined) return undefined;
  return askCompletion(deps.aggregators, rule.completeFn, childResults(children), { waitFor: rule.waitFor, counters: countOutcomes(children) });
}

/** The children of the parent's sync point `seq` as they are, to ask its completion function (none once the parent moved on). */
async function currentChildren(deps: SpawnerDeps, scope: Scope, parentId: string, seq: number): Promise<BranchOutcome[] | undefined> {
  const parent = await deps.store.getBranch(scope, parentId);
  if (!parent || parent.spawn?.seq !== seq) return undefined;
  return deps.store.getOutcomes(scope, currentChildIds(parent));
}

export function aggregateFor(deps: SpawnerDeps, parent: BranchRecord, seq: number, children: readonly BranchOutcome[], rule: FanInRule): unknown {
  const spawn = parent.spawn;
  if (!spawn || spawn.seq !== seq) throw new AggregationError(`branch ${parent.id} is not waiting on sync point ${seq}`);
  if (spawn.aggregationOf !== undefined) {
    // An AGGREGATION branch's final response is the aggregate.
    return children[0]?.result ?? null;
  }
  const results = childResults(children);
  const completeWhen = rule.completeFn === undefined ? undefined : `${COMPLETION_FN_PREFIX}${rule.completeFn}`;
  let value = aggregate(spawn.aggregator, results, defined({ waitFor: spawn.waitFor, completeWhen, metadata: spawn.metadata }), deps.aggregators);
  if (rule.onFailure === 'continue') {
    // The parent decides what to do next: it gets why the fan-out ended and how each child did.
    value = continueAggregate(value, completionReason(countOutcomes(children), rule, verdictOn(deps, rule, children)), results);
  }
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
  ends: BranchEnds,
  run: RunRecord,
  parent: BranchRecord,
  seq: number,
  value: unknown,
): Promise<string | undefined> {
  try {
    await resumeParentWith(deps, ends, run, parent, seq, value);
    return undefined;
  } catch (error) {
    // An aggregate that cannot be stored on the parent fails it; thrown, it would fail the
    // aggregation on every retry and leave the parent waiting forever.
    if (!(error instanceof PayloadTooLargeError)) throw error;
    return `the aggregate of sync point ${seq} is too large to store: ${error.message}`;
  }
}

async function resumeParentWith(deps: SpawnerDeps, ends: BranchEnds, run: RunRecord, parent: BranchRecord, seq: number, value: unknown) {
  const scope = scopeOf(parent);
  const spawn = parent.spawn!;
  const mark = WorkMark.sync(seq);
  if (parent.status === 'WAITING' && spawn.seq === seq) {
    const next = nextSpawnAfter(parent, spawn, value);
    if (next) {
      // The new children's BranchCreated is this settlement's to tell (its retry's, should it die first).
      const updated = await deps.store.updateBranch(scope, parent.id, parent.version, {
        spawn: { ...next.spawn, announcer: mark },
        childCount: parent.childCount + spawnWidth(next.spawn),
        advancedBy: mark,
      });
      if (updated) await openSyncPoint(deps, ends, run, updated);
      else await finishLostResume(deps, ends, run, parent, seq);
      return;
    }
    // `next_actions`: a list, one aggregate per group, whether there was one group or several.
    const input = spawn.grouped ? [...spawn.groupResults, value] : value;
    const updated = await deps.store.updateBranch(scope, parent.id, parent.version, {
      status: 'RUNNING',
      input,
      advancedBy: mark,
    });
    if (!updated) return finishLostResume(deps, ends, run, parent, seq);
    hit(deps, 'before-enqueue', scope, `${parent.id}#${seq}>resume`);
    await deps.queue.send([{ ...scope, branchId: parent.id, step: updated.stepCount }]);
  } else if (parent.status === 'RUNNING' && parent.advancedBy === mark) {
    // A retry after a crash between the resume and its message: send the step again.
    await deps.queue.send([{ ...scope, branchId: parent.id, step: parent.stepCount }]);
  } else if (parent.status === 'WAITING' && parent.advancedBy === mark && parent.spawn && parent.spawn.seq !== seq) {
    // A retry after a crash while opening the next sync point: open it again (idempotent).
    await openSyncPoint(deps, ends, run, parent);
  }
}

/**
 * A resume whose write was lost: if another settlement of this sync point resumed the parent,
 * its last part is done here too (idempotent). That settlement may be a task of the sync point's
 * own fan-out, stopped by this one's early settlement: dying after its write, it has no retry.
 */
async function finishLostResume(deps: SpawnerDeps, ends: BranchEnds, run: RunRecord, parent: BranchRecord, seq: number): Promise<void> {
  const current = await deps.store.getBranch(scopeOf(parent), parent.id);
  if (current && current.advancedBy === WorkMark.sync(seq)) await resumeParentWith(deps, ends, run, current, seq, undefined);
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
        // Kept for the groups after it, which run as the response said.
        groupSettings: defined({ waitFor: spawn.waitFor, inheritMemory: spawn.inheritMemory, metadata: spawn.metadata, options: spawn.options }),
      },
    };
  }
  if (spawn.pendingGroups.length > 0) {
    const [group, ...rest] = spawn.pendingGroups;
    // Each group of `next_actions` is a fan-out of the same response: the same settings, also
    // after an `agent:<Name>` aggregator's sync point (which has its own).
    const settings = spawn.groupSettings ?? spawn;
    return {
      spawn: {
        ...spawnStateFor(parent, spawn.seq + 1, spawn.step, group, {
          waitFor: settings.waitFor,
          aggregator: spawn.aggregator,
          inheritMemory: settings.inheritMemory,
          metadata: settings.metadata,
          options: settings.options,
        }),
        pendingGroups: rest,
        groupResults: [...spawn.groupResults, value],
        grouped: true,
      },
    };
  }
  return undefined;
}

/**
 * A child's end told to its parent (end-branch.ts, step 2c): counts it on the parent's sync point (exactly once), settles the sync
 * point when the counts decide it early, and releases the child's fan-out iteration.
 */
export async function countChildEnd(deps: SpawnerDeps, ends: BranchEnds, branch: BranchRecord, by: WorkMark, options: TellOptions): Promise<void> {
  const scope = scopeOf(branch);
  const parentId = branch.parentId!;
  const seq = branch.parentSeq!;
  const { applied, counters } = await deps.store.recordChildEnd(scope, parentId, seq, branch.id, outcomeOf(branch));
  if (options.parentDeciding) return;
  const fanIn: FanInRule = branch.fanIn ?? { waitFor: 'all', maxFailedFraction: 0.5 };
  let verdict: CompletionVerdict | undefined;
  if (fanIn.completeFn !== undefined) {
    // The function reads the children, read after this end was counted: the last end counted sees every end before it.
    const children = await currentChildren(deps, scope, parentId, seq);
    verdict = children ? verdictOn(deps, fanIn, children) : { met: false };
  }
  const decision = decideFanIn(counters, fanIn, verdict);
  if (decision.action !== 'wait') {
    // An early exit is settled here (its fan-out stopped, so its Aggregate never runs) by the
    // work whose count decided it, or whose count came after. A repeated end (a retry after a
    // crash) settles again if the sync point was decided or claimed: the crash may have cut the
    // settlement short (before the stop, too: the settlement sees from the children that it was
    // early). Otherwise the fan-out's Aggregate settles. Work on its first try that finds the end
    // counted by other work (a batched child's first step sent as the settlement cancelled it; a
    // failed iteration's task finding the child ended on its own; a child's step finding it ended
    // by its failed iteration's task) is no retry and does not settle: the work that counted it
    // settles, and is retried until it has (a step message by its redelivery, a fan-out task by
    // its Retry). Settling too, it would write ends a crash could leave untold, and stop the
    // fan-out whose task's retry was to tell them (seeds 2802, 70308); nor is the work that has
    // just written the end and finds it counted by a duplicate a retry.
    const retry = !applied && mayRepeatTelling(branch, by, options);
    if ((decision.cancelRest && (applied || retry)) || (retry && (await deps.store.getSyncPoint(scope, parentId, seq))?.aggregatedAt !== undefined)) {
      // A first count is new work; a retry's may be the retry of a settlement that died.
      await settleSyncPoint(deps, ends, scope, parentId, seq, { decision, mayRepeat: retry, ...(options.iterationOver ? { ownFanOut: true } : {}) });
    }
  }
  if (options.iterationOver) return;
  const batch = branch.batch ?? options.batch;
  if (batch) {
    await batchedChildEnded(deps, branch, batch, applied);
    return;
  }
  const token = branch.taskToken ?? options.taskToken;
  if (token) {
    hit(deps, 'before-task-success', scope, branch.id);
    await deps.fanOut.childFinished(token, { branchId: branch.id, status: branch.status });
  }
}

/**
 * Whether telling a branch's end may be the retry of work that began telling it and died: only
 * then are the changes it finds already made (a count, children ended under its mark) its own, to
 * be told again. Work that has just written the end (its conditional write won) is no retry, nor
 * is work on its first try (a step message's first delivery, a fan-out task's first attempt)
 * finding the end written by other work; what they find made is concurrent work's, which tells it
 * (or its own retry does).
 */
export function mayRepeatTelling(branch: Pick<BranchRecord, 'advancedBy'>, by: WorkMark, options: TellOptions): boolean {
  if (options.endedNow) return false;
  return branch.advancedBy === by || !options.firstTry;
}

/**
 * Before a fan-out is stopped by other work: the ends its children were given by other in-process
 * work (a failed iteration's task, a settlement) are counted, since the stop drops the retries of
 * the fan-out's tasks, and with them a count they may not have made yet. Counting is idempotent
 * (each end counts once) and tells nothing.
 */
export async function countEndsOfInProcessWork(
  deps: SpawnerDeps,
  scope: Scope,
  parentId: string,
  seq: number,
  children: readonly BranchOutcome[],
  by: WorkMark,
): Promise<void> {
  const others = children.filter((c) => isTerminal(c.status) && c.advancedBy !== by && isInProcessWork(c.advancedBy));
  await Promise.all(others.map((c) => deps.store.recordChildEnd(scope, parentId, seq, c.id, outcomeOf(c))));
}

/** A sync point's counts as its children ended. */
function countOutcomes(children: readonly BranchOutcome[]): SyncCounters {
  const counters: SyncCounters = { total: children.length, succeeded: 0, failed: 0, cancelled: 0 };
  for (const child of children) if (isTerminal(child.status)) counters[outcomeOf(child)]++;
  return counters;
}

export function outcomeOf(branch: Pick<BranchRecord, 'status'>): ChildOutcome {
  if (branch.status === 'COMPLETED') return 'succeeded';
  if (branch.status === 'CANCELLED') return 'cancelled';
  return 'failed';
}

export interface SettleOptions {
  /** The decision already taken by the caller (early exit); computed from the counters otherwise. */
  decision?: FanInDecision;
  /**
   * True for the fan-out's own Aggregate task: its Map has ended, there is nothing to stop.
   * Anyone else (a child's end, a retry of one, resume) stops the fan-out when the settlement is
   * early (see `settledEarly`).
   */
  fanOutEnded?: boolean;
  /** The caller is a task of this sync point's own fan-out execution (a child's failed iteration): it stops the execution last. */
  ownFanOut?: boolean;
  /**
   * False when this settlement is new work (a child's end counted for the first time), not the
   * retry of one that died: ends already written under the settlement's mark are then another
   * settlement's, alive or retried by its own work, which tells them; telling them here too would
   * publish their events twice. Default true (the Aggregate task, resume, a repeated count).
   */
  mayRepeat?: boolean;
  /** `resume` settles: the claim of any work a dead process held is its to tell again. */
  resumed?: boolean;
}

/**
 * Settles a sync point exactly once (end-branch.ts, step 3): claims it, cancels the children still running, and
 * resumes or fails the parent. A repeat (a retry after a crash) redoes the idempotent parts.
 * Each child record is read once.
 */
export async function settleSyncPoint(
  deps: SpawnerDeps,
  ends: BranchEnds,
  scope: Scope,
  parentId: string,
  seq: number,
  options: SettleOptions = {},
): Promise<void> {
  const [sp, parent] = await Promise.all([deps.store.getSyncPoint(scope, parentId, seq), deps.store.getBranch(scope, parentId)]);
  if (!sp || !parent) return;
  hit(deps, 'inside-aggregate', scope, `${parentId}#${seq}`);
  // The fan-out's own Aggregate writes under a mark of its own: what it wrote is its retries' to
  // tell again, and what another settlement wrote is not (see WorkMark.aggregate).
  const by = options.fanOutEnded ? WorkMark.aggregate(parentId, seq) : WorkMark.settle(parentId, seq);
  const onIt = parent.spawn?.seq === seq;
  const retell = options.mayRepeat !== false;
  if (sp.aggregatedAt === undefined && (!onIt || parent.status !== 'WAITING')) {
    // The parent ended before this sync point decided (cancelled, timed out): its end cancelled
    // the children. Nothing to settle.
    return;
  }
  if (!onIt && isTerminal(parent.status) && parent.status !== 'COMPLETED') {
    // The parent ended (a cancel) while this settlement opened its next sync point, whose last
    // part — cancelling the children created under an ended parent — may have died with it. A
    // retry finds the parent moved on and ended: it does that part again (idempotent), telling
    // again the ends found written only if it may be that settlement's retry (and the children's
    // BranchCreated, which the cancel left to the settlement that spawned them).
    await ends.cancelChildren(deps, parent, retell, retell ? WorkMark.sync(seq) : undefined);
  }
  let earlier: BranchRecord[] = [];
  if (!onIt && retell && sp.aggregatedAt !== undefined) {
    // A retry of a settlement that died after cancelling children, found the parent moved on
    // (another settlement resumed it): the ends it wrote are told here, or never.
    earlier = await deps.store.getBranches(scope, await earlierChildIds(deps, scope, parent, seq));
    for (const child of earlier) await ends.retellIfMine(deps, child, [by], { parentDeciding: true });
  }
  const spawn = parent.spawn!;
  const ids = onIt ? Array.from({ length: spawnWidth(spawn) }, (_, i) => childId(parentId, spawn.firstIndex + i)) : [];
  // Each child's outcome only: its input and memory (a long conversation, a large input) are not
  // aggregated, and a wide fan-in would hold them all at once. Read whole only where a child's
  // end is still to be written or told here (wholeOf).
  let children: BranchOutcome[] = onIt ? await deps.store.getOutcomes(scope, ids) : [];
  let outcome = sp.outcome;
  let decision = options.decision;
  let claimed: FanInDecision | undefined;
  if (sp.aggregatedAt === undefined) {
    if (children.length < ids.length) {
      // The spawn died before it created every child: finish opening it instead (idempotent).
      const run = await loadRun(deps, scope);
      if (run) await openSyncPoint(deps, ends, run, parent);
      return;
    }
    let counters = sp.counters;
    decision ??= decideFanIn(counters, sp, verdictOn(deps, sp, children));
    if (decision.action === 'wait') {
      // The fan-out ended but some ends were never counted: count them from the records (a child
      // still active here lost its iteration: it fails, as a Map iteration that failed would).
      const running = await wholeOf(deps, scope, children.filter((c) => !isTerminal(c.status)));
      children = await Promise.all(children.map(async (child) => {
        const whole = running.get(child.id);
        if (whole) {
          return ends.endForParent(deps, whole, { status: 'FAILED', by, error: 'the fan-out ended without a report from this branch' }, retell);
        }
        counters = (await deps.store.recordChildEnd(scope, parentId, seq, child.id, outcomeOf(child))).counters;
        return child;
      }));
      counters = (await deps.store.getSyncPoint(scope, parentId, seq))?.counters ?? counters;
      decision = decideFanIn(counters, sp, verdictOn(deps, sp, children));
      if (decision.action === 'wait') return;
    }
    if (await deps.store.claimAggregation(scope, parentId, seq, decision.action, deps.clock.now(), by)) {
      outcome = decision.action;
      claimed = decision;
    } else {
      outcome = (await deps.store.getSyncPoint(scope, parentId, seq))?.outcome;
    }
  }
  // The children still running are left out: cancel them (each counted, nothing decided by them).
  // (Each is read back if a concurrent settlement ended it first, or the aggregate would count it
  // as still running.)
  // (Only those still running, or ended under this settlement's mark, have anything to do there.)
  const left = await wholeOf(deps, scope, children.filter((c) => !isTerminal(c.status) || c.advancedBy === by));
  children = await Promise.all(
    children.map((child) => {
      const whole = left.get(child.id);
      return whole ? ends.endForParent(deps, whole, { status: 'CANCELLED', by, error: 'the sync point was settled without it' }, retell) : child;
    }),
  );
  // Told by the work whose claim settled it, and again by that work's retry (it may have died
  // before telling): the claim is written with its mark, as an end is. `resume` tells again what
  // any work a dead process held claimed.
  const again = retell && (sp.aggregatedBy === by || (options.resumed === true && isInProcessWork(sp.aggregatedBy)));
  const told = claimed ?? (again ? retoldDecision(deps, sp, decision, onIt ? children : earlier) : undefined);
  if (told) await tellSyncPoint(deps, sp, told, onIt ? children : earlier);
  // Stopped before the parent moves on, so a retry that finds the parent moved on knows it was.
  // A task of this very fan-out (a child's failed iteration) stops it last: once its execution is
  // stopped, its own retries are too, and with them the rest of this settlement. Its retry that
  // finds the parent moved on stops it again (a stop is idempotent).
  const early = !options.fanOutEnded && (settledEarly(children, by, parentId) || (options.ownFanOut === true && !onIt));
  const stop = () => deps.fanOut.stop(sp.executionName, `sync point ${parentId}#${seq} settled early`);
  if (early && !options.ownFanOut) {
    await countEndsOfInProcessWork(deps, scope, parentId, seq, children, by);
    await stop();
  }
  await decideParent(deps, ends, { scope, parent, seq, sp, onIt, outcome, decision, children, by, retell });
  if (early && options.ownFanOut) await stop();
}

/**
 * SyncPointReached, published once the children are final, so it reports what the aggregate
 * will: the children that ended while it was decided, and those it cancelled, as they ended; with
 * the completion reason a `continue` parent is given (the same rule, on the same children).
 */
async function tellSyncPoint(deps: SpawnerDeps, sp: SyncPointRecord, decision: FanInDecision, children: readonly BranchOutcome[]): Promise<void> {
  if (decision.action === 'wait') return;
  const counters = countOutcomes(children);
  const completion_reason = completionReason(counters, sp, verdictOn(deps, sp, children));
  const detail = { outcome: decision.action, reason: decision.reason, completion_reason, ...counters, ...syncPointResults(children) };
  await publish(deps, syncPointEvent(scopeOf(sp), sp.parentId, sp.seq, deps.clock.now(), detail));
}

/**
 * `resume`: a settled sync point whose claim was made by work a process held in memory (a
 * settlement, the fan-out's Aggregate) has its SyncPointReached told again — that work may have
 * died before telling it — from its children as they are.
 */
export async function retellSyncPoint(deps: SpawnerDeps, parent: BranchRecord, seq: number): Promise<void> {
  const scope = scopeOf(parent);
  const sp = await deps.store.getSyncPoint(scope, parent.id, seq);
  if (sp?.aggregatedAt === undefined || !isInProcessWork(sp.aggregatedBy)) return;
  const ids = parent.spawn?.seq === seq ? currentChildIds(parent) : await earlierChildIds(deps, scope, parent, seq);
  const children = await deps.store.getOutcomes(scope, ids);
  const decision = retoldDecision(deps, sp, undefined, children);
  if (decision) await tellSyncPoint(deps, sp, decision, children);
}

/**
 * The decision a settlement's retry tells again: the stored outcome, with the reason the counts
 * give now (the caller's, else decided again; the children it cancelled count as cancelled, not failed).
 */
function retoldDecision(deps: SpawnerDeps, sp: SyncPointRecord, decision: FanInDecision | undefined, children: readonly BranchOutcome[]): FanInDecision | undefined {
  const action = sp.outcome;
  if (action === undefined) return undefined;
  const again = decision ?? decideFanIn(sp.counters, sp, verdictOn(deps, sp, children));
  return again.action === action ? again : { action, cancelRest: false, reason: action === 'fail' ? 'too many children failed' : 'the sync point was settled' };
}

/** The end of a settlement: the parent fails, or resumes (aggregate, next group, its agent). */
async function decideParent(
  deps: SpawnerDeps,
  ends: BranchEnds,
  at: {
    scope: Scope;
    parent: BranchRecord;
    seq: number;
    sp: SyncPointRecord;
    onIt: boolean;
    outcome: 'resume' | 'fail' | undefined;
    decision: FanInDecision | undefined;
    children: BranchOutcome[];
    by: WorkMark;
    retell: boolean;
  },
): Promise<void> {
  const { scope, parent, seq, sp, onIt, outcome, decision, children, by, retell } = at;
  const spawn = parent.spawn!;
  if ((outcome ?? 'fail') === 'fail') {
    const reason = decision && decision.action !== 'wait' ? decision.reason : 'too many children failed';
    // An `agent:<Name>` aggregator's branch is not one of the children the failure policy is about.
    const aggregator = onIt && spawn.aggregationOf !== undefined && spawn.aggregator.kind === 'agent' ? spawn.aggregator.agent : undefined;
    const error = aggregator ? `the aggregator agent:${aggregator} failed` : `children failed: ${reason}`;
    await failParent(deps, ends, parent, seq, by, `${error}${firstFailure(children)}`, retell);
    return;
  }
  const run = await loadRun(deps, scope);
  if (!run) return;
  let failure: string | undefined;
  if (parent.status !== 'WAITING' || !onIt) {
    // The parent already moved on from this sync point (a retry after a crash in the resume):
    // there is nothing to aggregate, only the resume's last part to finish.
    failure = await resumeParent(deps, ends, run, parent, seq, undefined);
  } else {
    let value: unknown;
    try {
      value = aggregateFor(deps, parent, seq, children, sp);
    } catch (error) {
      failure = errorMessage(error);
    }
    if (!failure) failure = await resumeParent(deps, ends, run, parent, seq, value);
  }
  if (failure) await failParent(deps, ends, parent, seq, by, failure, retell);
}

/** The whole records of some children read as outcomes (those whose end is written or told here), by id. */
async function wholeOf(deps: SpawnerDeps, scope: Scope, children: readonly BranchOutcome[]): Promise<Map<string, BranchRecord>> {
  if (children.length === 0) return new Map();
  return new Map((await deps.store.getBranches(scope, children.map((c) => c.id))).map((c) => [c.id, c]));
}

/**
 * The children of a parent's sync point `seq`, earlier than its current one: each spawn takes the
 * next child indexes, so they are the sync point's `total` indexes below those of the sync points
 * after it.
 */
async function earlierChildIds(deps: SpawnerDeps, scope: Scope, parent: BranchRecord, seq: number): Promise<string[]> {
  const spawn = parent.spawn;
  if (!spawn || spawn.seq <= seq) return [];
  let end = spawn.firstIndex;
  for (let s = spawn.seq - 1; s > seq; s--) end -= (await deps.store.getSyncPoint(scope, parent.id, s))?.counters.total ?? 0;
  const total = (await deps.store.getSyncPoint(scope, parent.id, seq))?.counters.total ?? 0;
  return Array.from({ length: total }, (_, i) => childId(parent.id, end - total + i));
}

/**
 * Whether a sync point was settled before its fan-out ended, read from its children once the
 * settlement cancelled those left out: one cancelled under the settlement's mark (now, or by a
 * try cut short by a crash) never reports to its fan-out iteration, so the execution must be
 * stopped; so is one the parent's end cancelled (its cascade leaves the stop of a sync point
 * already claimed to the settlement: cancelChildren). Not the counts' decision: children that ended on their own meanwhile report, their
 * fan-out ends and runs its Aggregate — a stop then would cut short that Aggregate's retries,
 * and with them the end it wrote (the chaos contract's hang: a root FAILED, its run RUNNING).
 */
function settledEarly(children: readonly BranchOutcome[], by: WorkMark, parentId: string): boolean {
  return children.some((c) => c.status === 'CANCELLED' && (c.advancedBy === by || c.advancedBy === WorkMark.parent(parentId)));
}

/**
 * A parent whose sync point failed (or could not be aggregated) fails; a retry tells it again.
 * New work (`retell` false: a child's end counted for the first time) that finds the parent
 * failed under the settlement's mark leaves the telling to the settlement that wrote it.
 */
async function failParent(deps: SpawnerDeps, ends: BranchEnds, parent: BranchRecord, seq: number, by: WorkMark, error: string, retell: boolean) {
  // Its children were settled by the caller: nothing to cancel below it. New work that loses the
  // write leaves the end to its winner (another settlement, alive). A retry reads it back: the
  // winner under this mark may be the earlier try it retries, still running on after the part
  // that failed it and dying before it told the end (its retry is this work, already past it).
  await ends.endOrRetell(deps, parent, { status: 'FAILED', by, error, from: ['WAITING'] }, { mayHaveChildren: false }, {
    mayEnd: (p) => p.spawn?.seq === seq,
    mine: retell ? [by] : [],
    readBack: retell ? 'after-loss' : 'never',
  });
}

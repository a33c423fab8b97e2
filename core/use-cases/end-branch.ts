/**
 * Ending a branch: the one place it happens, told as one story.
 *
 * 1. `endBranch` makes a branch terminal with one conditional write (at the version the caller
 *    read, or from any active status). Whoever loses that race does nothing more: the winner tells.
 * 2. `tellEnd` tells what the end means, and is safe to repeat (a retry after a crash runs it again):
 *    a. the end event goes out;
 *    b. if the branch ended while it waited on children, those children are cancelled (each one
 *       back to step 1, one level down) and their fan-out is stopped;
 *    c. the parent is told: for the root the run ends; otherwise the end is counted on the
 *       parent's sync point, and when the counts decide it early, the sync point is settled.
 * 3. `settleSyncPoint` settles a decided sync point once: it is claimed, its children still
 *    running are cancelled (step 1, with the parent deciding), and the parent either resumes
 *    (sync-point.ts: aggregate, next group, its agent again) or fails — step 1, one level up.
 *
 * Events are at-least-once across crashes, by the rule "the work that makes a change publishes
 * its event before the work is acknowledged, and every retry of that work publishes it again".
 * Every end is written with the mark of the work that made it (`advancedBy`, a WorkMark of
 * core/work-mark.ts: a step's delivery, a fan-out task, a settlement, a parent, a cancel, the DLQ).
 * That work is durable — a step message stays in the queue until its handler succeeded, the
 * fan-out retries its tasks, a cancel is answered only when done, `resume` drives a dead process's
 * work again — so a crash can delay an event but never skip it. A repeat by other work (a
 * duplicate delivery) finishes the idempotent parts without publishing again.
 */
import { branchEvent, runEvent, syncPointEvent, syncPointResults, type LifecycleEvent } from '../events';
import { BudgetExceededError, errorMessage } from '../errors';
import { decideFanIn, type FanInDecision } from '../fan-in-decision';
import {
  ACTIVE_STATUSES,
  childId,
  fanOutExecutionName,
  isTerminal,
  type BranchRecord,
  type BranchStatus,
  type ChildOutcome,
  type Scope,
  type SyncCounters,
  spawnWidth,
} from '../model';
import type { BranchPatch } from '../ports';
import { WorkMark } from '../work-mark';
import { defined, hit, loadRun, publish, scopeOf, type SpawnerDeps } from './deps';
import { aggregateFor, firstFailure, resumeParent } from './sync-point';
import { openSyncPoint } from './spawn';

export type EndStatus = Exclude<BranchStatus, 'PENDING' | 'RUNNING' | 'WAITING'>;

export interface BranchEnd {
  status: EndStatus;
  /** The work that ends it (see the header); written on the branch as `advancedBy`. */
  by: WorkMark;
  error?: string;
  result?: unknown;
  /** More fields written with the end (the step's memory, step count, usage). */
  patch?: BranchPatch;
  /** The write's condition: the branch is still at the version read (the step path), or still active. */
  atVersion?: boolean;
  /** Only from these statuses (default: any active one). */
  from?: readonly BranchStatus[];
}

export interface TellOptions {
  /** The parent is ending or settling this branch's sync point itself: only count the end. */
  parentDeciding?: boolean;
  /** Do the idempotent parts only, not the end event (another worker, alive, tells it). */
  quiet?: boolean;
  /** False when the branch is known not to have been waiting on children (nothing to cancel). */
  mayHaveChildren?: boolean;
  /** The task token of the branch's fan-out iteration, when the caller has it and the record not. */
  taskToken?: string;
}

/** Step 1: ends the branch if it is still where the caller saw it; returns the ended record. */
export async function endBranch(
  deps: SpawnerDeps,
  branch: BranchRecord,
  end: BranchEnd,
  options: TellOptions = {},
): Promise<BranchRecord | undefined> {
  const scope = scopeOf(branch);
  const patch: BranchPatch = defined({
    ...end.patch,
    status: end.status,
    result: end.status === 'COMPLETED' ? end.result ?? null : undefined,
    error: end.error,
    endedAt: deps.clock.now(),
    advancedBy: end.by,
  });
  const ended = end.atVersion
    ? await deps.store.updateBranch(scope, branch.id, branch.version, patch)
    : await deps.store.transitionBranch(scope, branch.id, end.from ?? ACTIVE_STATUSES, end.status, patch);
  if (!ended) return undefined;
  hit(deps, 'after-mark-complete', scope, ended.id);
  await tellEnd(deps, ended, end.by, { mayHaveChildren: branch.status === 'WAITING', ...options });
  return ended;
}

/** Step 2: tells a terminal branch's end (event, children, parent). Safe to repeat. */
export async function tellEnd(deps: SpawnerDeps, branch: BranchRecord, by: WorkMark, options: TellOptions = {}): Promise<void> {
  if (branch.advancedBy === by && !options.quiet) await publish(deps, endEvent(branch, deps.clock.now()));
  if (branch.status !== 'COMPLETED' && branch.spawn && options.mayHaveChildren !== false) {
    await cancelChildren(deps, branch);
  }
  if (branch.parentId === null || branch.parentSeq === null) {
    await finishRun(deps, branch, by);
    return;
  }
  await tellParent(deps, branch, options);
}

/**
 * Why an active branch must end CANCELLED instead of going on (a step about to run, a fan-out
 * iteration that failed): its run ended, or its parent did. Those ends are written before their
 * cascades read this branch, so either this read sees them or their cascade sees the branch.
 */
export async function endedAbove(deps: SpawnerDeps, branch: BranchRecord): Promise<string | undefined> {
  const { parentId } = branch;
  const scope = scopeOf(branch);
  const statuses = await deps.store.getStatuses(scope, parentId === null ? [] : [parentId]);
  if (statuses.run && statuses.run !== 'RUNNING') {
    // A budget's end: the same message as the cascade from the root would give (rare: one read).
    const run = statuses.run === 'FAILED' ? await deps.store.getRun(scope) : undefined;
    return BudgetExceededError.isMessage(run?.error) ? run.error : `the run is ${statuses.run}`;
  }
  const status = parentId === null ? undefined : statuses.branches.get(parentId);
  if (parentId === null || !status || !isTerminal(status)) return undefined;
  const parent = status === 'CANCELLED' ? await deps.store.getBranch(scope, parentId) : undefined;
  return endedWithParent(parent ?? { id: parentId, status });
}

/**
 * Why a child ends with its parent. A budget's end carries its own message all the way down, so
 * every branch it cancelled says which budget (docs/agents.md); other ends name the parent.
 */
function endedWithParent(parent: Pick<BranchRecord, 'id' | 'status' | 'error'>): string {
  if (parent.status === 'CANCELLED' && BudgetExceededError.isMessage(parent.error)) return parent.error;
  return `its parent ${parent.id} ${parent.status === 'CANCELLED' ? 'was cancelled' : parent.status}`;
}

/** The lifecycle event of a terminal branch's end. */
export function endEvent(branch: BranchRecord, now: number): LifecycleEvent {
  if (branch.status === 'COMPLETED') return branchEvent('BranchCompleted', branch, now);
  if (branch.status === 'CANCELLED') return branchEvent('BranchCancelled', branch, now, { reason: branch.error });
  return branchEvent('BranchFailed', branch, now, { error: branch.error });
}

/**
 * Step 2b: the branch ended while waiting on its current children: cancel them and stop their
 * fan-out (its name is derived from the sync point). Children the branch's spawn creates after
 * this read are cancelled by the spawn itself (it checks its parent after creating them).
 */
export async function cancelChildren(deps: SpawnerDeps, parent: BranchRecord): Promise<void> {
  const spawn = parent.spawn;
  if (!spawn) return;
  const scope = scopeOf(parent);
  const by = WorkMark.parent(parent.id);
  const ids = Array.from({ length: spawnWidth(spawn) }, (_, i) => childId(parent.id, spawn.firstIndex + i));
  const children = await deps.store.getBranches(scope, ids);
  // The spawn may have died between writing these children and announcing them, and it will not
  // run again now that their parent ended: announce them here (this work is retried until done).
  if (!spawn.announced && children.length) {
    await publish(deps, ...children.map((c) => branchEvent('BranchCreated', c, c.createdAt, { seq: spawn.seq })));
  }
  const reason = endedWithParent(parent);
  await Promise.all(children.map((child) => endForParent(deps, child, { status: 'CANCELLED', by, error: reason })));
  await deps.fanOut.stop(fanOutExecutionName(scope, parent.id, spawn.seq), `branch ${parent.id} ${parent.status}`);
}

/**
 * Ends a child for its parent, which is deciding (ending, or settling the sync point): the end is
 * only counted. If the child had ended already under this very mark — an earlier try of this
 * work, or a concurrent one (a duplicate delivery) that won the write — that end is told again:
 * its writer may have died before telling it, and once the parent moves on, no retry of the
 * parent's work reads this child again. Returns the child as it ended.
 */
async function endForParent(
  deps: SpawnerDeps,
  child: BranchRecord,
  end: { status: 'CANCELLED' | 'FAILED'; by: WorkMark; error: string },
  retell = true,
): Promise<BranchRecord> {
  let current = child;
  if (!isTerminal(current.status)) {
    const ended = await endBranch(deps, current, end, { parentDeciding: true });
    if (ended) return ended;
    current = (await deps.store.getBranch(scopeOf(child), child.id)) ?? current;
  }
  if (isTerminal(current.status) && current.advancedBy === end.by) await tellEnd(deps, current, end.by, { parentDeciding: true, quiet: !retell });
  return current;
}

/** Step 2c for the root: the run ends with it, and says so (a retry of the work that ended it says so again). */
async function finishRun(deps: SpawnerDeps, root: BranchRecord, by: WorkMark): Promise<void> {
  const scope = scopeOf(root);
  const now = deps.clock.now();
  const status = root.status === 'COMPLETED' ? 'COMPLETED' : root.status === 'CANCELLED' ? 'CANCELLED' : 'FAILED';
  const finished = await deps.store.finishRun(
    scope,
    status,
    defined({ endedAt: now, result: status === 'COMPLETED' ? root.result ?? null : undefined, error: root.error, endedBy: by }),
  );
  const run = finished ? undefined : await deps.store.getRun(scope);
  if (!finished && (run?.endedBy !== by || run.status === 'RUNNING')) return;
  const ended = run?.status ?? status;
  const type = ended === 'COMPLETED' ? 'RunCompleted' : ended === 'CANCELLED' ? 'RunCancelled' : 'RunFailed';
  await publish(deps, runEvent(type, scope, now, defined({ status: ended, error: run?.error ?? root.error })));
}

/**
 * Step 2c for a child: counts its end on the parent's sync point (exactly once), settles the sync
 * point when the counts decide it early, and releases the child's fan-out iteration.
 */
async function tellParent(deps: SpawnerDeps, branch: BranchRecord, options: TellOptions): Promise<void> {
  const scope = scopeOf(branch);
  const parentId = branch.parentId!;
  const seq = branch.parentSeq!;
  const { applied, counters } = await deps.store.recordChildEnd(scope, parentId, seq, branch.id, outcomeOf(branch));
  if (options.parentDeciding) return;
  const fanIn = branch.fanIn ?? { waitFor: 'all' as const, maxFailedFraction: 0.5 };
  const decision = decideFanIn(counters, fanIn.waitFor, fanIn.maxFailedFraction);
  if (decision.action !== 'wait') {
    // An early exit is settled here (its fan-out stopped, so its Aggregate never runs). A
    // repeated end (a retry after a crash) settles again if the sync point was claimed: the
    // crash may have cut the settlement short (before the stop, too: the settlement sees from
    // the children that it was early). Otherwise the fan-out's Aggregate settles.
    if (decision.cancelRest || (!applied && (await deps.store.getSyncPoint(scope, parentId, seq))?.aggregatedAt !== undefined)) {
      // A first count is new work; a repeated one may be the retry of a settlement that died.
      await settleSyncPoint(deps, scope, parentId, seq, { decision, mayRepeat: !applied });
    }
  }
  const token = branch.taskToken ?? options.taskToken;
  if (token) {
    hit(deps, 'before-task-success', scope, branch.id);
    await deps.fanOut.childFinished(token, { branchId: branch.id, status: branch.status });
  }
}

/** A sync point's counts as its children ended. */
function countOutcomes(children: readonly BranchRecord[]): SyncCounters {
  const counters: SyncCounters = { total: children.length, succeeded: 0, failed: 0, cancelled: 0 };
  for (const child of children) if (isTerminal(child.status)) counters[outcomeOf(child)]++;
  return counters;
}

export function outcomeOf(branch: BranchRecord): ChildOutcome {
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
  /**
   * False when this settlement is new work (a child's end counted for the first time), not the
   * retry of one that died: ends already written under the settlement's mark are then another
   * settlement's, alive or retried by its own work, which tells them; telling them here too would
   * publish their events twice. Default true (the Aggregate task, resume, a repeated count).
   */
  mayRepeat?: boolean;
}

/**
 * Step 3: settles a sync point exactly once: claims it, cancels the children still running, and
 * resumes or fails the parent. A repeat (a retry after a crash) redoes the idempotent parts.
 * Each child record is read once.
 */
export async function settleSyncPoint(
  deps: SpawnerDeps,
  scope: Scope,
  parentId: string,
  seq: number,
  options: SettleOptions = {},
): Promise<void> {
  const [sp, parent] = await Promise.all([deps.store.getSyncPoint(scope, parentId, seq), deps.store.getBranch(scope, parentId)]);
  if (!sp || !parent) return;
  hit(deps, 'inside-aggregate', scope, `${parentId}#${seq}`);
  const by = WorkMark.settle(parentId, seq);
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
    // retry finds the parent moved on and ended: it does that part again (idempotent).
    await cancelChildren(deps, parent);
  }
  if (!onIt && retell && sp.aggregatedAt !== undefined) {
    // A retry of a settlement that died after cancelling children, found the parent moved on
    // (another settlement resumed it): the ends it wrote are told here, or never.
    for (const child of await deps.store.getBranches(scope, await earlierChildIds(deps, scope, parent, seq))) {
      if (isTerminal(child.status) && child.advancedBy === by) await tellEnd(deps, child, by, { parentDeciding: true });
    }
  }
  const spawn = parent.spawn!;
  const ids = onIt ? Array.from({ length: spawnWidth(spawn) }, (_, i) => childId(parentId, spawn.firstIndex + i)) : [];
  let children = onIt ? await deps.store.getBranches(scope, ids) : [];
  let outcome = sp.outcome;
  let decision = options.decision;
  let claimed: FanInDecision | undefined;
  if (sp.aggregatedAt === undefined) {
    if (children.length < ids.length) {
      // The spawn died before it created every child: finish opening it instead (idempotent).
      const run = await loadRun(deps, scope);
      if (run) await openSyncPoint(deps, run, parent);
      return;
    }
    let counters = sp.counters;
    decision ??= decideFanIn(counters, sp.waitFor, sp.maxFailedFraction);
    if (decision.action === 'wait') {
      // The fan-out ended but some ends were never counted: count them from the records (a child
      // still active here lost its iteration: it fails, as a Map iteration that failed would).
      children = await Promise.all(children.map(async (child) => {
        if (!isTerminal(child.status)) {
          return endForParent(deps, child, { status: 'FAILED', by, error: 'the fan-out ended without a report from this branch' }, retell);
        }
        counters = (await deps.store.recordChildEnd(scope, parentId, seq, child.id, outcomeOf(child))).counters;
        return child;
      }));
      counters = (await deps.store.getSyncPoint(scope, parentId, seq))?.counters ?? counters;
      decision = decideFanIn(counters, sp.waitFor, sp.maxFailedFraction);
      if (decision.action === 'wait') return;
    }
    if (await deps.store.claimAggregation(scope, parentId, seq, decision.action, deps.clock.now())) {
      outcome = decision.action;
      claimed = decision;
    } else {
      outcome = (await deps.store.getSyncPoint(scope, parentId, seq))?.outcome;
    }
  }
  const early = !options.fanOutEnded && settledEarly(options.decision, children, by);
  // The children still running are left out: cancel them (each counted, nothing decided by them).
  // (Each is read back if a concurrent settlement ended it first, or the aggregate would count it
  // as still running.)
  children = await Promise.all(
    children.map((child) => endForParent(deps, child, { status: 'CANCELLED', by, error: 'the sync point was settled without it' }, retell)),
  );
  if (claimed && claimed.action !== 'wait') {
    // Published once the children are final, so it reports what the aggregate will: the children
    // that ended while it was decided, and those it cancelled, as they ended.
    const counters = countOutcomes(children);
    await publish(deps, syncPointEvent(scope, parentId, seq, deps.clock.now(), { outcome, reason: claimed.reason, ...counters, ...syncPointResults(children) }));
  }
  // Stopped before the parent moves on, so a retry that finds the parent moved on knows it was.
  if (early) await deps.fanOut.stop(sp.executionName, `sync point ${parentId}#${seq} settled early`);

  if ((outcome ?? 'fail') === 'fail') {
    const reason = decision && decision.action !== 'wait' ? decision.reason : 'too many children failed';
    // An `agent:<Name>` aggregator's branch is not one of the children the failure policy is about.
    const aggregator = onIt && spawn.aggregationOf !== undefined && spawn.aggregator.kind === 'agent' ? spawn.aggregator.agent : undefined;
    const error = aggregator ? `the aggregator agent:${aggregator} failed` : `children failed: ${reason}`;
    await failParent(deps, parent, seq, by, `${error}${firstFailure(children)}`);
    return;
  }
  const run = await loadRun(deps, scope);
  if (!run) return;
  let failure: string | undefined;
  if (parent.status !== 'WAITING' || !onIt) {
    // The parent already moved on from this sync point (a retry after a crash in the resume):
    // there is nothing to aggregate, only the resume's last part to finish.
    failure = await resumeParent(deps, run, parent, seq, undefined);
  } else {
    let value: unknown;
    try {
      value = aggregateFor(deps, parent, seq, children);
    } catch (error) {
      failure = errorMessage(error);
    }
    if (!failure) failure = await resumeParent(deps, run, parent, seq, value);
  }
  if (failure) await failParent(deps, parent, seq, by, failure);
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
 * Whether a sync point is settled before its fan-out ended (its execution must then be stopped):
 * the counts decided it with children still to end, or a child has not ended, or one was
 * cancelled by this very settlement — a retry after a crash cut it short: by then the counters
 * (the cancelled children counted) no longer show that the exit was early, the children do.
 */
function settledEarly(decision: FanInDecision | undefined, children: BranchRecord[], by: WorkMark): boolean {
  if (decision && decision.action !== 'wait' && decision.cancelRest) return true;
  return children.some((c) => !isTerminal(c.status) || (c.status === 'CANCELLED' && c.advancedBy === by));
}

/** A parent whose sync point failed (or could not be aggregated) fails; a retry tells it again. */
async function failParent(deps: SpawnerDeps, parent: BranchRecord, seq: number, by: WorkMark, error: string) {
  if (isTerminal(parent.status)) {
    if (parent.advancedBy === by) await tellEnd(deps, parent, by, { mayHaveChildren: false });
    return;
  }
  if (parent.spawn?.seq !== seq) return;
  // Its children were settled by the caller: nothing to cancel below it.
  await endBranch(deps, parent, { status: 'FAILED', by, error, from: ['WAITING'] }, { mayHaveChildren: false });
}

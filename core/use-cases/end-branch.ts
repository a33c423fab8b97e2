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
 *       parent's sync point (sync-point.ts), and when the counts decide it early, the sync point is settled.
 * 3. Settling a decided sync point (sync-point.ts) claims it once, cancels its children still
 *    running (step 1, with the parent deciding), and the parent either resumes (aggregate, next
 *    group, its agent again) or fails — step 1, one level up.
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
import { branchEvent, runEndEvent, runEvent, type LifecycleEvent } from '../events';
import { BudgetExceededError } from '../errors';
import {
  ACTIVE_STATUSES,
  childId,
  ROOT_BRANCH_ID,
  fanOutExecutionName,
  isTerminal,
  type BranchRecord,
  type RunRecord,
  type Scope,
  spawnWidth,
} from '../model';
import type { BranchPatch } from '../ports';
import { WorkMark } from '../work-mark';
import { defined, hit, publish, scopeOf, type SpawnerDeps } from './deps';
import type { BranchEnd, BranchEnds, RetellRule, TellOptions } from './branch-ends';
import { countChildEnd, countEndsOfInProcessWork, mayRepeatTelling } from './sync-point';

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
  await tellEnd(deps, ended, end.by, { mayHaveChildren: branch.status === 'WAITING', ...options, endedNow: true });
  return ended;
}

/**
 * Steps 1 and 2 for work that must see the branch ended — the one home of "end it, else tell its
 * end again": ends it while the rule says it is this work's to end, or — when it had ended already
 * (on its own, or by an earlier try of this work that died before telling) — tells that end again
 * if the rule takes it for this work's (idempotent; the event again only under the mark that wrote
 * it). `endedNow` when this call ended it; `branch` as last read.
 */
export async function endOrRetell(
  deps: SpawnerDeps,
  branch: BranchRecord,
  end: BranchEnd,
  options: TellOptions = {},
  rule: RetellRule = {},
): Promise<{ endedNow: boolean; branch: BranchRecord }> {
  const { mayEnd = () => true, tries = 1, readBack = 'always' } = rule;
  const scope = scopeOf(branch);
  let current = branch;
  let lost = false;
  for (let attempt = 1; !isTerminal(current.status); attempt++) {
    if (!mayEnd(current)) return { endedNow: false, branch: current };
    const ended = await endBranch(deps, current, end, options);
    if (ended) return { endedNow: true, branch: ended };
    if (attempt >= tries) {
      lost = true;
      break;
    }
    const again = await deps.store.getBranch(scope, branch.id);
    if (!again) return { endedNow: false, branch: current };
    current = again;
  }
  if (readBack === 'always' || (readBack === 'after-loss' && lost)) current = (await deps.store.getBranch(scope, branch.id)) ?? current;
  if (!isTerminal(current.status)) return { endedNow: false, branch: current };
  const told = rule.quiet ? { ...options, quiet: true } : options;
  if (rule.mine) await retellIfMine(deps, current, rule.mine, told);
  else await tellEnd(deps, current, end.by, told);
  return { endedNow: false, branch: current };
}

/**
 * The told-again half alone: a branch found ended under one of `mine` (this work's marks) has its
 * end told again under that mark — its writer may have died before telling it. Others' ends are theirs.
 */
export async function retellIfMine(deps: SpawnerDeps, branch: BranchRecord, mine: readonly WorkMark[], options: TellOptions = {}): Promise<void> {
  const by = branch.advancedBy;
  if (isTerminal(branch.status) && by !== undefined && mine.includes(by)) await tellEnd(deps, branch, by, options);
}

/**
 * Ends a run from outside its tree (a cancel, a budget): the run first, with one conditional
 * write (so it never races another end of the run), then its root, CANCELLED with the same mark,
 * which ends everything below and stops every fan-out. Safe to repeat: a repeat finishes an end
 * that died half-way. `not-ours` when the run had ended otherwise (nothing is done); `no-root`
 * when its start has not written the root yet (the start sees the run ended and ends the root).
 */
export async function endRun(
  deps: SpawnerDeps,
  scope: Scope,
  end: { status: 'CANCELLED' | 'FAILED'; by: WorkMark; error: string },
): Promise<{ outcome: 'ended' | 'no-root' } | { outcome: 'not-ours'; run: RunRecord | undefined }> {
  const finished = await deps.store.finishRun(scope, end.status, { endedAt: deps.clock.now(), error: end.error, endedBy: end.by });
  if (!finished) {
    const run = await deps.store.getRun(scope);
    // (A run ended before marks were written has none: taken as this work's.)
    if (run?.status !== end.status || (run.endedBy !== undefined && run.endedBy !== end.by)) return { outcome: 'not-ours', run };
  }
  const root = await deps.store.getBranch(scope, ROOT_BRANCH_ID);
  if (!root) return { outcome: 'no-root' };
  await endOrRetell(deps, root, { status: 'CANCELLED', by: end.by, error: end.error });
  return { outcome: 'ended' };
}

/** Step 2: tells a terminal branch's end (event, children, parent). Safe to repeat. */
export async function tellEnd(deps: SpawnerDeps, branch: BranchRecord, by: WorkMark, options: TellOptions = {}): Promise<void> {
  if (branch.advancedBy === by && !options.quiet) await publish(deps, endEvent(branch, deps.clock.now()));
  if (branch.status !== 'COMPLETED' && branch.spawn && options.mayHaveChildren !== false) {
    // Children found ended under the parent's mark by other work (a spawn that saw its parent
    // ended) are that work's to tell, unless this may be a retry of the cascade that ended them.
    // Told quietly, the end is another worker's, alive, to tell: the ends of its cascade too.
    await cancelChildren(deps, branch, !options.quiet && mayRepeatTelling(branch, by, options));
  }
  if (branch.parentId === null || branch.parentSeq === null) {
    await finishRun(deps, branch, by);
    return;
  }
  await countChildEnd(deps, branchEnds, branch, by, options);
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
 * `retell` false: the caller is not the parent's end (a spawn that found its parent ended):
 * children that end already cancelled are that end's to tell. `announcer`: the caller is the
 * work that spawned them (`SpawnState.announcer`), whose BranchCreated they still lack.
 */
export async function cancelChildren(deps: SpawnerDeps, parent: BranchRecord, retell = true, announcer?: WorkMark): Promise<void> {
  const spawn = parent.spawn;
  if (!spawn) return;
  const scope = scopeOf(parent);
  const by = WorkMark.parent(parent.id);
  const ids = Array.from({ length: spawnWidth(spawn) }, (_, i) => childId(parent.id, spawn.firstIndex + i));
  const children = await deps.store.getBranches(scope, ids);
  // Children written and not told yet are told by the work that spawned them (`announcer`), alive
  // or retried: the parent's end cannot know whether it still runs, and telling them here too
  // would tell them twice. A spawn that names none (written before spawns did) is told here.
  if (!spawn.announced && spawn.announcer === announcer && children.length) {
    await publish(deps, ...children.map((c) => branchEvent('BranchCreated', c, c.createdAt, { seq: spawn.seq })));
  }
  const reason = endedWithParent(parent);
  const ended = await Promise.all(children.map((child) => endForParent(deps, child, { status: 'CANCELLED', by, error: reason }, retell)));
  // Ends other in-process work wrote are counted here too (the stop below may drop a count).
  await countEndsOfInProcessWork(deps, scope, parent.id, spawn.seq, ended, by);
  // A sync point already settled (claimed) is its settlement's to stop: that settlement may be a
  // task of this very fan-out (a failed iteration's, its Aggregate) still telling the ends it
  // wrote, and a stop would drop its retries with them. It sees the children ended here (read
  // after its claim) and stops the fan-out itself. Read after those ends: a settlement that
  // claims later finds every child ended here and writes none of its own.
  const sp = await deps.store.getSyncPoint(scope, parent.id, spawn.seq);
  if (sp?.aggregatedAt === undefined) await deps.fanOut.stop(fanOutExecutionName(scope, parent.id, spawn.seq), `branch ${parent.id} ${parent.status}`);
}

/**
 * Ends a child for its parent, which is deciding (ending, or settling the sync point): the end is
 * only counted. If the child had ended already under this very mark — an earlier try of this
 * work, or a concurrent one (a duplicate delivery) that won the write — that end is told again:
 * its writer may have died before telling it, and once the parent moves on, no retry of the
 * parent's work reads this child again. Returns the child as it ended.
 */
export async function endForParent(
  deps: SpawnerDeps,
  child: BranchRecord,
  end: { status: 'CANCELLED' | 'FAILED'; by: WorkMark; error: string },
  retell = true,
): Promise<BranchRecord> {
  const rule = { mine: [end.by], quiet: !retell, readBack: 'after-loss' } as const;
  return (await endOrRetell(deps, child, end, { parentDeciding: true }, rule)).branch;
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
  await publish(deps, runEvent(runEndEvent(ended), scope, now, defined({ status: ended, error: run?.error ?? root.error })));
}

/** The ends the sync point's steps use (sync-point.ts). */
export const branchEnds: BranchEnds = { endOrRetell, retellIfMine, endForParent, cancelChildren };

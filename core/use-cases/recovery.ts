/**
 * Recovery: a step message that failed every delivery (the DLQ), and a run whose process died
 * (`resume`). Both only finish work the normal path would have done; every part is idempotent.
 */
import { decideFanIn } from '../fan-in-decision';
import { branchEvent, runEvent } from '../events';
import { NotFoundError } from '../errors';
import { isTerminal, ROOT_BRANCH_ID, spawnWidth, type BranchRecord, type RunStatus, type Scope } from '../model';
import type { StepMessage } from '../ports';
import { cancelRun } from './cancel-run';
import { loadRun, publish, scopeOf, type SpawnerDeps } from './deps';
import { branchEnds, endOrRetell, tellEnd } from './end-branch';
import { currentChildIds, fanOutRequest, openSyncPoint, retellSyncPoint, settleSyncPoint, verdictOn } from './sync-point';
import { isInProcessWork, isResumeMark, markKind, WorkMark } from '../work-mark';
import { counted } from '../wording';

export interface PoisonDelivery {
  /** The message id (SQS keeps it when it moves a message to the DLQ). */
  messageId: string;
  /** How many times it was received before it gave up, when known. */
  receiveCount?: number;
}

/**
 * - `failed`: the message was its branch's current work; the branch is FAILED and its parent told.
 * - `told`: the branch had ended already; its end was told again (idempotent).
 * - `dropped`: a stale message (the branch moved on without it) or an unknown run or branch.
 */
export type PoisonOutcome = 'failed' | 'told' | 'dropped';

/**
 * A step message that failed every delivery went to the dead-letter queue. If it was the work its
 * branch was waiting for, nothing else will ever move that branch: fail it with "poison message"
 * and propagate the end, so its parent (and the run) go on instead of hanging.
 */
export async function failPoisonedStep(
  deps: SpawnerDeps,
  message: StepMessage,
  delivery: PoisonDelivery,
): Promise<PoisonOutcome> {
  const scope = scopeOf(message);
  const branch = await deps.store.getBranch(scope, message.branchId);
  if (!branch || !(await deps.store.getRun(scope))) return 'dropped';
  const token = { taskToken: message.taskToken, batch: message.batch };
  if (isTerminal(branch.status)) {
    // Told as the step would have (the same mark: its end event again if this message ended it).
    await tellEnd(deps, branch, WorkMark.step(delivery.messageId), token);
    return 'told';
  }
  if (!isCurrentWork(branch, message, delivery.messageId)) return 'dropped';
  const n = delivery.receiveCount;
  const tries = n ? ` after ${counted(n, 'delivery', 'deliveries')}` : '';
  const error = `poison message: step ${message.step} of branch ${branch.id} kept failing${tries} and went to the dead-letter queue`;
  const by = WorkMark.dlq(delivery.messageId);
  // If it ended meanwhile, whatever ended it told its parent, or will; it is told again to be sure.
  return (await endOrRetell(deps, branch, { status: 'FAILED', by, error }, token)).endedNow ? 'failed' : 'told';
}

/** True when processing `message` is what the branch is waiting for (mirrors executeStep). */
function isCurrentWork(branch: BranchRecord, message: StepMessage, messageId: string): boolean {
  if (branch.status === 'PENDING') return message.step === 0;
  if (branch.status === 'WAITING') return branch.spawn?.step === message.step;
  if (branch.stepCount === message.step) return true;
  // It advanced the branch, then died before sending the next step: only it would send it.
  return branch.stepCount === message.step + 1 && branch.advancedBy === WorkMark.step(messageId);
}

export interface ResumeReport {
  status: RunStatus;
  /** Sync points whose records were opened again (the spawn had not finished opening them). */
  reopened: number;
  /** Fan-outs started again for the children not yet ended. */
  restarted: number;
  /** Sync points settled again (all children ended, or the aggregation was claimed). */
  settled: number;
  /** Step messages sent again for branches resumed by an aggregation that died. */
  resent: number;
}

/**
 * Drives a run again after the process that ran it died. Step messages survive in the queue
 * (they come back by visibility timeout, and tell what they did again), but work a process held
 * in memory does not: ends made by that work are told again under its mark (so their events go
 * out again); every WAITING branch gets its current sync point back — opened if the spawn had not
 * finished, settled if all its children ended or its aggregation was claimed, otherwise its
 * fan-out is started again (same execution name) over the children that have not ended; a cancel
 * that died half-way is finished. Idempotent: on an engine whose executions survive (AWS),
 * starting a running execution again is a no-op.
 */
export async function resumeRun(deps: SpawnerDeps, scope: Scope): Promise<ResumeReport> {
  const run = await loadRun(deps, scope);
  const current = await deps.store.getRun(scope);
  if (!run || !current) throw new NotFoundError(`run ${scope.runId} not found`);
  const report: ResumeReport = { status: current.status, reopened: 0, restarted: 0, settled: 0, resent: 0 };
  const branches = await deps.store.listBranches(scope);
  for (const branch of branches) {
    // Work a process held in memory died with it: its ends are told again under its mark. (The
    // root's end under the run's own mark is told with the run's end, below.)
    const told = branch.parentId === null && current.status !== 'RUNNING' && branch.advancedBy === current.endedBy;
    if (isTerminal(branch.status) && branch.advancedBy && isInProcessWork(branch.advancedBy) && !told) {
      await tellEnd(deps, branch, branch.advancedBy);
    }
  }
  for (const branch of branches) {
    // So are the sync points such work claimed (their SyncPointReached). The current one of a
    // waiting parent is settled again first (idempotent), so that it is told once its children are
    // final; work this resume started again (a fan-out's Aggregate) may settle it meanwhile, as new work.
    for (let seq = 1; seq <= (branch.spawn?.seq ?? 0); seq++) {
      if (current.status === 'RUNNING' && branch.status === 'WAITING' && seq === branch.spawn?.seq) {
        const sp = await deps.store.getSyncPoint(scope, branch.id, seq);
        if (sp?.aggregatedAt !== undefined) await settleSyncPoint(deps, branchEnds, scope, branch.id, seq, { resumed: true });
      } else await retellSyncPoint(deps, branch, seq);
    }
  }
  if (current.status !== 'RUNNING' && current.endedBy) {
    // The run's end is told again under the mark of the work that wrote it (its event again).
    const root = await deps.store.getBranch(scope, ROOT_BRANCH_ID);
    if (root && isTerminal(root.status)) await tellEnd(deps, root, current.endedBy);
  }
  if (current.status === 'CANCELLED' && markKind(current.endedBy) === 'cancel') {
    await cancelRun(deps, scope, current.error);
    await tellUntoldChildren(deps, scope);
    return report;
  }
  await tellUntoldChildren(deps, scope);
  if (current.status !== 'RUNNING') return report;
  for (const listed of branches) {
    const branch = (await deps.store.getBranch(scope, listed.id)) ?? listed;
    if (isTerminal(branch.status)) {
      // A root that ended while the run did not: the run's end was never written.
      if (branch.parentId === null) await tellEnd(deps, branch, WorkMark.resume);
      continue;
    }
    if (branch.status === 'PENDING' && branch.parentId === null) {
      // The starting process may have died before announcing the run or sending its first step.
      const now = deps.clock.now();
      await publish(deps, runEvent('RunStarted', scope, now, { status: 'RUNNING', name: run.name }), branchEvent('BranchCreated', branch, now));
      await deps.queue.send([{ ...scope, branchId: branch.id, step: 0 }]);
      report.resent++;
      continue;
    }
    if (branch.status === 'RUNNING' && isResumeMark(branch.advancedBy) && !branch.suspended) {
      // Resumed by an aggregation or a callback's answer, whose message may have died with it. (A repeat is harmless.)
      await deps.queue.send([{ ...scope, branchId: branch.id, step: branch.stepCount }]);
      report.resent++;
      continue;
    }
    if (branch.status !== 'WAITING' || !branch.spawn) continue;
    const seq = branch.spawn.seq;
    let sp = await deps.store.getSyncPoint(scope, branch.id, seq);
    const children = await deps.store.getBranches(scope, currentChildIds(branch));
    if (!sp || children.length < spawnWidth(branch.spawn) || !branch.spawn.announced) {
      // The spawn died before it finished opening (records, children, events): open it again.
      await openSyncPoint(deps, branchEnds, run, branch);
      report.reopened++;
      continue;
    }
    // Ends that were written but never counted are counted now (and may decide the sync point).
    for (const child of children.filter((c) => isTerminal(c.status))) {
      await tellEnd(deps, { ...child, taskToken: undefined }, WorkMark.resume);
    }
    sp = (await deps.store.getSyncPoint(scope, branch.id, seq))!;
    const current = await deps.store.getBranches(scope, currentChildIds(branch));
    const live = current.filter((c) => !isTerminal(c.status));
    const decided = decideFanIn(sp.counters, sp, verdictOn(deps, sp, current)).action !== 'wait';
    if (sp.aggregatedAt !== undefined || live.length === 0 || decided) {
      await settleSyncPoint(deps, branchEnds, scope, branch.id, seq);
      report.settled++;
      continue;
    }
    // The whole range again: a child that already ended answers its new iteration at once
    // (its repeated step message finds it terminal and reports it).
    await deps.fanOut.start(fanOutRequest(deps, run, branch.id, branch.spawn, sp.executionName));
    report.restarted++;
  }
  return report;
}

/**
 * Spawns whose parent ended before they recorded telling their children's BranchCreated: the
 * parent's end left that to the spawn's work (`announcer`), which may have died with the process.
 * Told here for it, from the records as they are now (a repeat is what a crash allows).
 */
async function tellUntoldChildren(deps: SpawnerDeps, scope: Scope): Promise<void> {
  for (const branch of await deps.store.listBranches(scope)) {
    const spawn = branch.spawn;
    if (isTerminal(branch.status) && spawn?.announcer && !spawn.announced) await branchEnds.cancelChildren(deps, branch, false, spawn.announcer);
  }
}

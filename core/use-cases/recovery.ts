/**
 * Recovery: a step message that failed every delivery (the DLQ), and a run whose process died
 * (`resume`). Both only finish work the normal path would have done; every part is idempotent.
 */
import { decideFanIn } from '../fan-in';
import { branchEvent } from '../events';
import { NotFoundError } from '../errors';
import { ACTIVE_STATUSES, isTerminal, type BranchRecord, type RunStatus, type Scope } from '../model';
import type { StepMessage } from '../ports';
import { loadRun, publish, scopeOf, type SpawnerDeps } from './deps';
import { cancelBranches, currentChildIds, propagateEnd, settleSyncPoint } from './fan-in';
import { openSyncPoint } from './spawn';

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
  if (isTerminal(branch.status)) {
    await propagateEnd(deps, withToken(branch, message));
    return 'told';
  }
  if (!isCurrentWork(branch, message, delivery.messageId)) return 'dropped';
  const tries = delivery.receiveCount ? ` after ${delivery.receiveCount} deliveries` : '';
  const error = `poison message: step ${message.step} of branch ${branch.id} kept failing${tries} and went to the dead-letter queue`;
  const ended = await deps.store.transitionBranch(scope, branch.id, ACTIVE_STATUSES, 'FAILED', {
    error,
    endedAt: deps.clock.now(),
  });
  if (!ended) {
    // It ended meanwhile: whatever ended it told its parent, or will; tell again to be sure.
    const now = await deps.store.getBranch(scope, branch.id);
    if (now && isTerminal(now.status)) await propagateEnd(deps, withToken(now, message));
    return 'told';
  }
  await publish(deps, branchEvent('BranchFailed', ended, deps.clock.now(), { error }));
  if (branch.status === 'WAITING' && branch.spawn) {
    await cancelBranches(deps, scope, currentChildIds(branch), `its parent ${branch.id} FAILED`);
    const sp = await deps.store.getSyncPoint(scope, branch.id, branch.spawn.seq);
    if (sp) await deps.fanOut.stop(sp.executionName, `branch ${branch.id} FAILED (poison message)`);
  }
  await propagateEnd(deps, withToken(ended, message));
  return 'failed';
}

/** True when processing `message` is what the branch is waiting for (mirrors executeStep). */
function isCurrentWork(branch: BranchRecord, message: StepMessage, messageId: string): boolean {
  if (branch.status === 'PENDING') return message.step === 0;
  if (branch.status === 'WAITING') return branch.spawn?.step === message.step;
  if (branch.stepCount === message.step) return true;
  // It advanced the branch, then died before sending the next step: only it would send it.
  return branch.stepCount === message.step + 1 && branch.advancedBy === messageId;
}

function withToken(branch: BranchRecord, message: StepMessage): BranchRecord {
  return message.taskToken && !branch.taskToken ? { ...branch, taskToken: message.taskToken } : branch;
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
 * (they come back by visibility timeout), but work a fan-out engine held in memory does not:
 * every WAITING branch gets its current sync point back — opened if the spawn had not finished,
 * settled if all its children ended or its aggregation was claimed, otherwise its fan-out is
 * started again (same execution name) over the children that have not ended. Idempotent: on an
 * engine whose executions survive (AWS), starting a running execution again is a no-op.
 */
export async function resumeRun(deps: SpawnerDeps, scope: Scope): Promise<ResumeReport> {
  const run = await loadRun(deps, scope);
  const current = await deps.store.getRun(scope);
  if (!run || !current) throw new NotFoundError(`run ${scope.runId} not found`);
  const report: ResumeReport = { status: current.status, reopened: 0, restarted: 0, settled: 0, resent: 0 };
  if (current.status !== 'RUNNING') return report;
  for (const branch of await deps.store.listBranches(scope)) {
    if (isTerminal(branch.status)) {
      // A root that ended while the run did not: the run's end was never written.
      if (branch.parentId === null) await propagateEnd(deps, branch);
      continue;
    }
    const unsent =
      // Resumed by an aggregation, whose message may have died with it; or a root whose first
      // step the starting process may not have sent. (A repeated step message is harmless.)
      (branch.status === 'RUNNING' && branch.advancedBy?.startsWith('sync:')) ||
      (branch.status === 'PENDING' && branch.parentId === null);
    if (unsent) {
      await deps.queue.send([{ ...scope, branchId: branch.id, step: branch.stepCount }]);
      report.resent++;
      continue;
    }
    if (branch.status !== 'WAITING' || !branch.spawn) continue;
    const seq = branch.spawn.seq;
    let sp = await deps.store.getSyncPoint(scope, branch.id, seq);
    if (!sp) {
      await openSyncPoint(deps, run, branch);
      report.reopened++;
      continue;
    }
    const children = await deps.store.getBranches(scope, currentChildIds(branch));
    // Ends that were written but never counted are counted now (and may decide the sync point).
    for (const child of children.filter((c) => isTerminal(c.status))) {
      await propagateEnd(deps, { ...child, taskToken: undefined });
    }
    sp = (await deps.store.getSyncPoint(scope, branch.id, seq))!;
    const live = children.filter((c) => !isTerminal(c.status));
    const decided = decideFanIn(sp.counters, sp.waitFor, sp.maxFailedFraction).action !== 'wait';
    if (sp.aggregatedAt !== undefined || live.length === 0 || decided) {
      await settleSyncPoint(deps, scope, branch.id, seq, { early: false });
      report.settled++;
      continue;
    }
    await deps.fanOut.start({
      ...scope,
      parentId: branch.id,
      seq,
      executionName: sp.executionName,
      maxConcurrency: run.limits.maxConcurrentBranches,
      children: live.map((c) => ({ branchId: c.id, timeoutSeconds: run.limits.branchTimeoutSeconds })),
    });
    report.restarted++;
  }
  return report;
}

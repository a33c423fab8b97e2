/**
 * Batched fan-outs (core/fan-out-plan.ts, BATCHED): the fan-out's iteration for a batch
 * (DispatchBatch) keeps its task token in the store and sends the batch's first `window`
 * children; from then on the children drive the batch themselves. The window is a pool, as a
 * Map's MaxConcurrency is: each child's end claims the batch's next child not yet sent (one
 * atomic write on the batch's pool, SyncPointStore.claimBatchChild) and sends it, so at most
 * `window` of a batch run at once and a slow child holds only its own place; the end that finds
 * every child of the batch counted on the fan-in shards releases the batch's token.
 *
 * Both steps are safe to repeat: a retried end gets its first claim back and sends that child
 * again only while it has not started (a duplicate step message is dropped by the step like any
 * redelivery), and a token released twice is refused by the orchestrator the second time (a
 * closed token is not an error: FanOutOrchestrator.childFinished). Several ends that find the
 * batch done at once release the same token: one wins. Per-child timeouts are enforced where the
 * child runs (execute-step.ts); the batch's own timeout is the safety net (RecordBatchFailure).
 */
import { childId, type BranchRecord, type FanOutBatch, type Scope } from '../model';
import type { BatchDispatchInput, StepMessage } from '../ports';
import { hit, scopeOf, type SpawnerDeps } from './deps';

/** The first step of batched children `from .. to` (exclusive) of a sync point. */
function firstSteps(scope: Scope, parentId: string, batch: FanOutBatch, from: number, to: number): StepMessage[] {
  const messages: StepMessage[] = [];
  for (let i = from; i < to; i++) messages.push({ ...scope, branchId: childId(parentId, i), step: 0, batch });
  return messages;
}

/** DispatchBatch: keep the batch's token, then send its first children (idempotent). */
export async function dispatchBatch(deps: SpawnerDeps, input: BatchDispatchInput): Promise<void> {
  const scope = { team: input.team, runId: input.runId };
  const batch: FanOutBatch = { first: input.first, count: input.count, window: input.window };
  // The token first: a child that ends at once must find it.
  await deps.store.putBatchToken(scope, input.parentId, input.seq, input.first, input.taskToken);
  await deps.queue.send(firstSteps(scope, input.parentId, batch, input.first, input.first + Math.min(input.window, input.count)));
}

/** The index of a child in its parent's fan-out (`<parent>.<index>`). */
function indexOf(branch: BranchRecord): number {
  return Number(branch.id.slice(branch.id.lastIndexOf('.') + 1));
}

/**
 * A batched child's end was counted (`applied`: by this call, for the first time): send the
 * batch's next child, and release the batch's token when all of it is counted.
 */
export async function batchedChildEnded(deps: SpawnerDeps, branch: BranchRecord, batch: FanOutBatch, applied: boolean): Promise<void> {
  const scope = scopeOf(branch);
  const parentId = branch.parentId!;
  const seq = branch.parentSeq!;
  const start = batch.first + Math.min(batch.window, batch.count);
  const end = batch.first + batch.count;
  // A batch that DispatchBatch sent whole has nothing to claim (no write).
  if (start < end) {
    // An end counted before (a retry after a crash, a duplicate) may have claimed already: it gets
    // that claim back, and sends it only if it has not started (the first try may have died
    // before sending it). A first count's refused claim is a duplicate's, which sends it.
    const claim = await deps.store.claimBatchChild(scope, parentId, seq, batch.first, { ender: indexOf(branch), start, end, mayRepeat: !applied });
    const claimed = claim && (!claim.repeat || (await deps.store.getBranch(scope, childId(parentId, claim.index)))?.status === 'PENDING') ? claim.index : undefined;
    if (claimed !== undefined) {
      hit(deps, 'before-enqueue', scope, `${branch.id}>${claimed}`);
      await deps.queue.send(firstSteps(scope, parentId, batch, claimed, claimed + 1));
    }
  }
  const ended = await deps.store.countEndedInRange(scope, parentId, seq, batch.first, batch.count);
  if (ended < batch.count) return;
  const token = await deps.store.getBatchToken(scope, parentId, seq, batch.first);
  if (!token) return;
  hit(deps, 'before-task-success', scope, branch.id);
  await deps.fanOut.childFinished(token, { branchId: branch.id, status: branch.status });
}

/**
 * What a local runtime's work is waiting on, in a few lines: the steps being handled, each
 * queue's messages (ready, in flight, delayed, and when the next comes back), each fan-out
 * execution still running (the children and batches whose token it waits for, a task waiting
 * for its retry, whether it was stopped) and, for each run this runtime started, its branches not
 * ended and its sync points not settled. A batch waited on says how many of its children are
 * counted and whether the store's token is the one waited for: a batch whose children are all
 * counted and still waited on lost its release. For a run that does not finish (a test's hang
 * guard, a user's report), never on the run's path.
 */
import { errorMessage } from '../core/errors';
import { isTerminal, ROOT_BRANCH_ID, type Scope } from '../core/model';
import type { BranchStore } from '../core/ports';
import type { RunningExecution } from '../adapters/stepfunctions/local-executions';
import { fanOutInput } from '../adapters/stepfunctions/fan-out-definition';

export interface PendingWorkParts {
  store: BranchStore;
  /** The runs this runtime started. */
  runs: Scope[];
  /** Steps received and not yet acknowledged or released. */
  handling: number;
  queues: { name: string; pending(): Promise<number>; describe?(): string }[];
  executions: RunningExecution[];
  /** Errors the runtime reported (a fan-out execution that failed, a step worker that threw). */
  errors: readonly unknown[];
}

/** Lines listed per kind at most (a wide tree's open branches). */
const MAX_LISTED = 30;

export async function describePendingWork(parts: PendingWorkParts): Promise<string> {
  const lines = [`steps being handled: ${parts.handling}`];
  for (const queue of parts.queues) lines.push(`queue ${queue.describe?.() ?? `${queue.name}: ${await queue.pending()} pending`}`);
  lines.push(`fan-out executions running: ${parts.executions.length}`);
  for (const e of parts.executions) lines.push(...(await describeExecution(parts.store, e)));
  for (const scope of parts.runs) lines.push(...(await describeRun(parts.store, scope)));
  lines.push(`errors reported: ${parts.errors.length}`, ...parts.errors.slice(-5).map((e) => `  ${errorMessage(e).slice(0, 300)}`));
  return lines.join('\n');
}

async function describeExecution(store: BranchStore, e: RunningExecution): Promise<string[]> {
  const { team, runId, parentId, seq, executionName } = e.request;
  const state = [e.stopped ? `stopped (${e.reason ?? 'no reason'})` : 'not stopped', ...(e.mapFailed ? ['its Map failed'] : []), ...(e.retrying ? [`retrying ${e.retrying}`] : [])];
  const lines = [`  ${executionName} (${parentId}#${seq} of run ${runId}): ${state.join(', ')}; waiting on ${e.waitingOn.length ? e.waitingOn.map((w) => w.key).join(', ') : 'nothing'}`];
  const ranges = fanOutInput(e.request).batchRanges ?? [];
  for (const { key, token } of e.waitingOn.slice(0, MAX_LISTED)) {
    const range = key.startsWith('batch-') ? ranges.find((r) => `batch-${r.first}` === key) : undefined;
    if (!range) continue;
    const scope = { team, runId };
    const [counted, stored] = await Promise.all([store.countEndedInRange(scope, parentId, seq, range.first, range.count), store.getBatchToken(scope, parentId, seq, range.first)]);
    const kept = stored === undefined ? 'no token in the store' : stored === token ? 'the store has the token waited for' : 'the store has another token';
    lines.push(`    ${key}: ${counted} of ${range.count} children counted; ${kept}`);
  }
  return lines;
}

async function describeRun(store: BranchStore, scope: Scope): Promise<string[]> {
  const run = await store.getRun(scope);
  if (!run) return [`run ${scope.runId}: not found`];
  const open = (await store.listBranches(scope)).filter((b) => !isTerminal(b.status));
  // A sync point is waited on while its parent is (a parent that ended leaves its own unsettled).
  const points = (await store.listOpenSyncPoints(scope)).filter((sp) => open.some((b) => b.id === sp.parentId && b.spawn?.seq === sp.seq));
  const lines = [`run ${scope.runId}: ${run.status}; ${open.length} branches not ended, ${points.length} sync points waited on`];
  const root = await store.getBranch(scope, ROOT_BRANCH_ID);
  // A root that ended under a run still RUNNING: its end was written and never told (the run ends with it).
  if (run.status === 'RUNNING' && root && isTerminal(root.status)) lines.push(`  the root is ${root.status} (written by ${root.advancedBy ?? 'no mark'}), the run's end not written`);
  for (const b of open.slice(0, MAX_LISTED)) {
    const waiting = b.status === 'WAITING' && b.spawn ? ` on sync point ${b.spawn.seq}` : '';
    const suspended = b.suspended ? `, suspended (${b.suspended.kind})` : '';
    lines.push(`  ${b.id} ${b.status}${waiting} (agent ${b.agent}, step ${b.stepCount}${suspended})`);
  }
  for (const sp of points.slice(0, MAX_LISTED)) {
    const { total, succeeded, failed, cancelled } = sp.counters;
    lines.push(`  sync point ${sp.parentId}#${sp.seq}: ${succeeded + failed + cancelled} of ${total} counted (${succeeded} succeeded, ${failed} failed, ${cancelled} cancelled), wait_for ${String(sp.waitFor)}`);
  }
  return lines;
}

/** Shared by the reliability suites: example scenarios, run outcomes and the invariants every run must keep. */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { isRunEnd, runEndEvent, type LifecycleEvent } from '../../core/events';
import { isTerminal, type BranchRecord, type RunRecord, type Scope, type SyncPointRecord } from '../../core/model';
import type { BranchStore } from '../../core/ports';
import type { LocalRuntime } from '../../local/runtime';
import { loadScenarioFile, type LoadedScenario } from '../../local/scenario-file';
import { runInputOf } from '../../core/use-cases/start-run';

export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));

/** Every example scenario that runs without outside services (the llm one needs a model server). */
export async function exampleScenarios(): Promise<LoadedScenario[]> {
  const files = readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml') && !f.startsWith('llm'))
    .sort();
  return Promise.all(files.map((f) => loadScenarioFile(`${EXAMPLES_DIR}${f}`)));
}

export interface RunOutcome {
  run: RunRecord;
  branches: BranchRecord[];
  events: LifecycleEvent[];
  syncPoints: (SyncPointRecord & { counted: string[] })[];
}

/** Records every event of the runtime, to be filtered per run. */
export function recordEvents(runtime: LocalRuntime): LifecycleEvent[] {
  const events: LifecycleEvent[] = [];
  runtime.bus.subscribe((e) => void events.push(e));
  return events;
}

/** Every sync point of the run, read through the store (one per spawned seq of every parent). */
export async function syncPointsOf(store: BranchStore, scope: Scope, branches: BranchRecord[]): Promise<RunOutcome['syncPoints']> {
  const found: RunOutcome['syncPoints'] = [];
  for (const b of branches) {
    for (let seq = 1; seq <= (b.spawn?.seq ?? 0); seq++) {
      const sp = await store.getSyncPoint(scope, b.id, seq);
      if (sp) found.push({ ...sp, counted: await store.listCountedChildren(scope, b.id, seq) });
    }
  }
  return found;
}

/**
 * How long a run may go without progress (no delivery handled, no event told) before it counts as
 * hung. Progress, not the run's age: runs share a runtime and a loaded machine, and a run that
 * has ended still waits for its runtime to settle, so its age says nothing about a hang. Starved
 * of CPU, a runtime goes long between two steps ended: the first steps of 14 runs at once took
 * 25 s on 2 cores at load 35 (five CPU burners beside them).
 */
const STALL_MS = 90_000;

/**
 * The budget of a test whose runs are watched for progress (watchRun): it only bounds the whole
 * test. A loaded machine makes the work slow, not stuck (14 runs of the examples at once took
 * 185 s on 2 cores at load 35, progressing all along), and a hang fails at STALL_MS, saying where.
 */
export const WATCHED_TEST_TIMEOUT_MS = 10 * 60_000;

/** Runs a scenario to its end and reads back everything the checks need. */
export async function runToEnd(runtime: LocalRuntime, scenario: LoadedScenario['scenario'], events: LifecycleEvent[]): Promise<RunOutcome> {
  return watchRun(runtime, await runtime.startRun(runInputOf(scenario)), events);
}

/**
 * Waits for a started run to end and its runtime to settle, then reads back everything the checks
 * need; fails, saying where the run stopped, once the runtime makes no progress for STALL_MS.
 */
export async function watchRun(runtime: LocalRuntime, runId: string, events: LifecycleEvent[]): Promise<RunOutcome> {
  const progress = () => runtime.deliveries.handled + events.length;
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    let seen = progress();
    const check = () => {
      if (progress() === seen) return void describeHang(runtime, runId).then(reject, reject);
      seen = progress();
      timer = setTimeout(check, STALL_MS);
    };
    timer = setTimeout(check, STALL_MS);
  });
  try {
    return await Promise.race([runtime.waitForRun(runId).then((run) => outcomeOf(runtime, run, events)), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Turns a run that stopped moving into a failure that shows where it stopped, well before the
 * test's own timeout would end it without a word: what the runtime's work waits on
 * (LocalRuntime.pendingWork: steps handled, queues, fan-out executions and the batches they wait
 * for, each run's branches not ended and sync points waited on, errors), and its deliveries.
 */
async function describeHang(runtime: LocalRuntime, runId: string): Promise<Error> {
  const run = await runtime.deps.store.getRun({ team: runtime.team, runId });
  return new Error(
    [
      `run ${runId} (${run?.status ?? 'not found'}) and its runtime made no progress for ${STALL_MS / 1000} s`,
      await runtime.pendingWork(),
      `deliveries ${JSON.stringify(runtime.deliveries)}, dead letters ${JSON.stringify(runtime.deadLetters)}`,
    ].join('\n'),
  );
}

export async function outcomeOf(runtime: LocalRuntime, run: RunRecord, events: LifecycleEvent[]): Promise<RunOutcome> {
  const scope = { team: run.team, runId: run.runId };
  // The run's end is told before the work it cancelled has wound down (its fan-outs stop
  // cooperatively): wait for the fan-out engine to be idle, then read the final state.
  await runtime.settle();
  const branches = await runtime.deps.store.listBranches(scope);
  return {
    run,
    branches,
    events: events.filter((e) => e.runId === run.runId),
    syncPoints: await syncPointsOf(runtime.deps.store, scope, branches),
  };
}

const END_EVENT: Record<string, string> = {
  COMPLETED: 'BranchCompleted',
  FAILED: 'BranchFailed',
  TIMED_OUT: 'BranchFailed',
  CANCELLED: 'BranchCancelled',
};

/**
 * What every finished run must hold whatever was injected: a terminal run, no branch left
 * active, no orphan, each branch's BranchCreated and end event published (at least once), the run's end event,
 * and every sync point's counters equal to its children by status — nothing lost, nothing twice.
 */
export function checkRunInvariants(o: RunOutcome, label = o.run.name): void {
  expect(isTerminal(o.run.status), `${label}: run ${o.run.status}`).toBe(true);
  const active = o.branches.filter((b) => !isTerminal(b.status)).map((b) => `${b.id}:${b.status}`);
  expect(active, `${label}: branches left active`).toEqual([]);

  const byId = new Map(o.branches.map((b) => [b.id, b]));
  for (const b of o.branches) {
    if (b.parentId === null) continue;
    const parent = byId.get(b.parentId);
    expect(parent, `${label}: orphan ${b.id}`).toBeDefined();
    const index = Number(b.id.slice(b.parentId.length + 1));
    expect(index < parent!.childCount && b.parentSeq! <= (parent!.spawn?.seq ?? 0), `${label}: ${b.id} outside its parent's spawns`).toBe(true);
  }

  // Lifecycle events are at least once (a redelivered message publishes its event again).
  const created = new Set(o.events.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId!));
  expect([...created].sort(), `${label}: BranchCreated for every branch`).toEqual(o.branches.map((b) => b.id).sort());

  for (const b of o.branches) {
    const ends = o.events.filter((e) => e.branchId === b.id && e.type === END_EVENT[b.status]);
    expect(ends.length, `${label}: end event of ${b.id} (${b.status})`).toBeGreaterThanOrEqual(1);
  }
  const runEnds = o.events.filter(isRunEnd);
  expect(runEnds.length, `${label}: a run end event`).toBeGreaterThanOrEqual(1);
  expect(new Set(runEnds.map((e) => e.type)), `${label}: one kind of run end`).toEqual(new Set([runEndEvent(o.run.status)]));

  for (const sp of o.syncPoints) {
    const children = o.branches.filter((b) => b.parentId === sp.parentId && b.parentSeq === sp.seq);
    const count = (...statuses: string[]) => children.filter((c) => statuses.includes(c.status)).length;
    expect(sp.counters, `${label}: counters of ${sp.parentId}#${sp.seq}`).toEqual({
      total: children.length,
      succeeded: count('COMPLETED'),
      failed: count('FAILED', 'TIMED_OUT'),
      cancelled: count('CANCELLED'),
    });
    expect([...sp.counted].sort(), `${label}: counted children of ${sp.parentId}#${sp.seq}`).toEqual(children.map((c) => c.id).sort());
  }
  // Every spawn has its sync point.
  const spawned = o.branches.reduce((n, b) => n + (b.spawn?.seq ?? 0), 0);
  expect(o.syncPoints, `${label}: a sync point per spawn`).toHaveLength(spawned);
}

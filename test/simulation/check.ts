/** Runs one seed of the simulation (with faults and fault-free) and checks the invariants. */
import { isTerminal, type BranchRecord } from '../../core/model';
import { generateFaults, generateScenario, NO_FAULTS, World, type FaultPlan } from './world';

const END_EVENT: Record<string, string> = {
  COMPLETED: 'BranchCompleted',
  FAILED: 'BranchFailed',
  TIMED_OUT: 'BranchFailed',
  CANCELLED: 'BranchCancelled',
};

export interface SeedReport {
  seed: number;
  violations: string[];
  injected: Record<string, number>;
  branches: number;
  status: string;
}

export async function simulateSeed(seed: number, faults: FaultPlan = generateFaults(seed)): Promise<SeedReport> {
  const scenario = generateScenario(seed);
  const world = new World(scenario, faults, seed);
  await world.run();
  const violations = [...world.violations];
  const run = await world.store.getRun(world.scope);
  const branches = await world.branches();
  const v = (message: string) => violations.push(message);

  if (!run) v('the run was never created');
  else {
    if (!isTerminal(run.status)) v(`the run is ${run.status} at quiescence`);
    if (isTerminal(run.status)) {
      const active = branches.filter((b) => !isTerminal(b.status)).map((b) => `${b.id}:${b.status}`);
      if (active.length) v(`terminal run (${run.status}) with active branches ${active.join(', ')}`);
    }
    if (world.runningExecutions.length) v(`fan-out executions still running: ${world.runningExecutions.join(', ')}`);
    checkSyncPoints(world, v);
    for (const m of await checkReferences(world)) v(m);
    for (const m of await checkCounters(world, branches)) v(m);
    checkEvents(world, branches, run.status, v);
    // User code that misbehaves changes the outcome on purpose: only the invariants are checked then.
    const misbehaved = Object.keys(world.injected).some((k) => k.startsWith('user code') && k !== 'user code: mutation');
    const comparable = !faults.cancel && !scenario.timeouts && scenario.waitFor === 'all' && scenario.maxFailedFraction === 1 && !misbehaved;
    if (comparable && violations.length === 0 && faultsInjected(world.injected)) {
      const clean = new World(scenario, NO_FAULTS, seed);
      await clean.run();
      const cleanRun = await clean.store.getRun(clean.scope);
      const cleanBranches = await clean.branches();
      if (cleanRun?.status !== run.status) v(`status ${run.status}, fault-free ${cleanRun?.status}`);
      else if (JSON.stringify(cleanRun.result ?? null) !== JSON.stringify(run.result ?? null)) v('result differs from the fault-free run');
      const shape = (bs: BranchRecord[]) => bs.map((b) => `${b.id}:${b.status}`).join(' ');
      if (shape(cleanBranches) !== shape(branches)) v(`branches differ from the fault-free run:\n  ${shape(branches)}\n  ${shape(cleanBranches)}`);
    }
  }
  return { seed, violations, injected: world.injected, branches: branches.length, status: run?.status ?? 'NONE' };
}

/** Every reference an item holds names a stored blob: no crash left a reference to nothing. */
async function checkReferences(world: World): Promise<string[]> {
  const out: string[] = [];
  for (const item of world.store.items()) {
    for (const [name, value] of Object.entries(item)) {
      if (typeof value !== 'string' || !value.startsWith('@blob:')) continue;
      await world.blobs.get(world.scope, value.slice('@blob:'.length)).catch(() => out.push(`${String(item.SK)} ${name} refers to a blob that was never stored`));
    }
  }
  return out;
}

function faultsInjected(injected: Record<string, number>): boolean {
  return Object.keys(injected).length > 0;
}

function checkSyncPoints(world: World, v: (m: string) => void): void {
  for (const [key, n] of world.syncAdvances) if (n > 1) v(`sync point ${key} advanced its parent ${n} times`);
}

/** Every sync point's counters equal its children's final statuses. */
async function checkCounters(world: World, branches: BranchRecord[]): Promise<string[]> {
  const out: string[] = [];
  for (const parent of branches) {
    for (let seq = 1; seq <= (parent.spawn?.seq ?? 0); seq++) {
      const sp = await world.store.getSyncPoint(world.scope, parent.id, seq);
      const children = branches.filter((c) => c.parentId === parent.id && c.parentSeq === seq);
      if (!sp) {
        if (children.length) out.push(`children of ${parent.id}#${seq} without a sync point`);
        continue;
      }
      const count = (...s: string[]) => children.filter((c) => s.includes(c.status)).length;
      const want = { succeeded: count('COMPLETED'), failed: count('FAILED', 'TIMED_OUT'), cancelled: count('CANCELLED') };
      const got = { succeeded: sp.counters.succeeded, failed: sp.counters.failed, cancelled: sp.counters.cancelled };
      if (JSON.stringify(want) !== JSON.stringify(got)) out.push(`counters of ${parent.id}#${seq} ${JSON.stringify(got)} != children ${JSON.stringify(want)}`);
      if (children.length && sp.counters.total !== children.length) out.push(`total of ${parent.id}#${seq} is ${sp.counters.total}, ${children.length} children`);
      if (!children.length && parent.status !== 'CANCELLED' && parent.status !== 'FAILED' && parent.status !== 'TIMED_OUT') {
        out.push(`sync point ${parent.id}#${seq} of a ${parent.status} parent has no children`);
      }
    }
  }
  return out;
}

function checkEvents(world: World, branches: BranchRecord[], runStatus: string, v: (m: string) => void): void {
  const created = new Set(world.events.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId));
  for (const b of branches) {
    if (!created.has(b.id)) v(`no BranchCreated for ${b.id}`);
    const end = END_EVENT[b.status];
    if (end && !world.events.some((e) => e.branchId === b.id && e.type === end)) v(`no ${end} for ${b.id} (${b.status})`);
  }
  const runEnd = runStatus === 'COMPLETED' ? 'RunCompleted' : runStatus === 'CANCELLED' ? 'RunCancelled' : 'RunFailed';
  if (isTerminal(runStatus as never) && !world.events.some((e) => e.type === runEnd)) v(`no ${runEnd}`);
  const wrongEnds = world.events.filter((e) => e.type.startsWith('Run') && e.type !== 'RunStarted' && e.type !== runEnd);
  if (wrongEnds.length) v(`run end events ${wrongEnds.map((e) => e.type).join(',')} for a ${runStatus} run`);
  if (!world.events.some((e) => e.type === 'RunStarted')) v('no RunStarted');
}

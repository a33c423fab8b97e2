/** Runs one seed of the simulation (with faults and fault-free) and checks the invariants. */
import { completionReason, toleranceExceeded, type CompletionVerdict } from '../../core/fan-in-decision';
import type { FanOutDispatch } from '../../core/fan-out-plan';
import { isTerminal, type BranchRecord, type RunStatus, type SyncCounters, type SyncPointRecord } from '../../core/model';
import { isRunEnd, runEndEvent } from '../../core/events';
import { askedConcurrency, firstOrAllOthers, generateFaults, generateScenario, NO_FAULTS, World, type FaultPlan } from './world';

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
  /** What the per-fan-out options did in this seed (continue aggregates by reason, completion functions, count tolerances). */
  covered: Record<string, number>;
}

export async function simulateSeed(seed: number, faults: FaultPlan = generateFaults(seed), dispatch: FanOutDispatch = 'per-child'): Promise<SeedReport> {
  const scenario = generateScenario(seed);
  const world = new World(scenario, faults, seed, dispatch);
  await world.run();
  const violations = [...world.violations];
  const run = await world.store.getRun(world.scope);
  const branches = await world.branches();
  const v = (message: string) => violations.push(message);
  const covered: Record<string, number> = {};

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
    for (const m of await checkFanOutRules(world, branches, run.limits.maxConcurrentBranches, covered)) v(m);
    checkEvents(world, branches, run.status, v);
    for (const m of await checkSyncPointEvents(world, branches)) v(m);
    checkPauses(world, branches, v, covered);
    // User code that misbehaves changes the outcome on purpose: only the invariants are checked then.
    const misbehaved = Object.keys(world.injected).some((k) => k.startsWith('user code') && k !== 'user code: mutation');
    // Per-fan-out tolerance cancels the children still running, which ones depends on the schedule.
    const comparable =
      !faults.cancel && !scenario.timeouts && scenario.waitFor === 'all' && scenario.maxFailedFraction === 1 && !misbehaved && !scenario.fanOutOptions && !scenario.waits;
    if (comparable && violations.length === 0 && faultsInjected(world.injected)) {
      const clean = new World(scenario, NO_FAULTS, seed, dispatch);
      await clean.run();
      const cleanRun = await clean.store.getRun(clean.scope);
      const cleanBranches = await clean.branches();
      if (cleanRun?.status !== run.status) v(`status ${run.status}, fault-free ${cleanRun?.status}`);
      else if (JSON.stringify(cleanRun.result ?? null) !== JSON.stringify(run.result ?? null)) v('result differs from the fault-free run');
      const shape = (bs: BranchRecord[]) => bs.map((b) => `${b.id}:${b.status}`).join(' ');
      if (shape(cleanBranches) !== shape(branches)) v(`branches differ from the fault-free run:\n  ${shape(branches)}\n  ${shape(cleanBranches)}`);
    }
  }
  return { seed, violations, injected: world.injected, branches: branches.length, status: run?.status ?? 'NONE', covered };
}

/**
 * Waits and callbacks: a callback takes at most one answer, and the branch goes on with exactly
 * that answer; a branch that took one never fails on its timeout, one that timed out took none;
 * a wait never ends before its time.
 */
function checkPauses(world: World, branches: BranchRecord[], v: (message: string) => void, covered: Record<string, number>): void {
  const cover = (what: string, n = 1) => void (covered[what] = (covered[what] ?? 0) + n);
  for (const [key, plan] of world.answers) {
    const writes = world.answerWrites.get(key) ?? 0;
    cover('callback');
    cover('callback answers taken', writes);
    for (const refusal of plan.refused) cover(`callback answer refused: ${refusal}`);
    if (writes > 1) v(`callback ${key} took ${writes} answers`);
    if (plan.taken > writes) v(`callback ${key}: ${plan.taken} answers were told taken, ${writes} were written`);
  }
  const byId = new Map(branches.map((b) => [b.id, b]));
  for (const e of world.events) {
    const b = e.branchId === undefined ? undefined : byId.get(e.branchId);
    if (!b) continue;
    const key = `${b.id}@${String('step' in e.detail ? e.detail.step : undefined)}`;
    if (e.type === 'BranchWaitingForCallback') {
      const taken = world.answerWrites.get(key) ?? 0;
      const timedOut = b.status === 'FAILED' && (b.error ?? '').startsWith('CallbackTimeout');
      if (timedOut && taken > 0) v(`${b.id} FAILED on its callback's timeout after an answer was taken`);
      if (timedOut) cover('callback timed out');
      if (b.status === 'COMPLETED' && taken !== 1) v(`${b.id} COMPLETED after its callback with ${taken} answers taken`);
      const got = (b.result as { got?: unknown } | undefined)?.got;
      if (b.status === 'COMPLETED' && JSON.stringify(got) !== JSON.stringify({ answer: key })) v(`${b.id} went on with ${JSON.stringify(got)}, not its answer`);
    }
    if (e.type === 'BranchResumed' && e.detail.reason === 'wait-over') {
      const waited = world.events.filter((w) => w.type === 'BranchWaiting').find((w) => w.branchId === b.id && w.detail.step === e.detail.step);
      cover('wait over');
      if (!waited) v(`${b.id} woke from a wait never announced`);
      else if (e.time < waited.detail.until) v(`${b.id} woke at ${e.time}, before its wait's end ${String(waited.detail.until)}`);
    }
  }
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

function checkEvents(world: World, branches: BranchRecord[], runStatus: RunStatus, v: (m: string) => void): void {
  const created = new Set(world.events.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId));
  for (const b of branches) {
    if (!created.has(b.id)) v(`no BranchCreated for ${b.id}`);
    const end = END_EVENT[b.status];
    if (end && !world.events.some((e) => e.branchId === b.id && e.type === end)) v(`no ${end} for ${b.id} (${b.status})`);
  }
  const runEnd = runEndEvent(runStatus);
  if (isTerminal(runStatus) && !world.events.some((e) => e.type === runEnd)) v(`no ${runEnd}`);
  const wrongEnds = world.events.filter((e) => isRunEnd(e) && e.type !== runEnd);
  if (wrongEnds.length) v(`run end events ${wrongEnds.map((e) => e.type).join(',')} for a ${runStatus} run`);
  if (!world.events.some((e) => e.type === 'RunStarted')) v('no RunStarted');
  // Told again only by the retry of the work that made the change (a crash, a restart, a
  // transient error, a redelivery of the same message): without those, every end is told once,
  // whatever else raced (duplicate messages, several settlements, late steps, timeouts, a cancel
  // racing the start, a spawn or a settlement), on both dispatch paths. So is every BranchCreated
  // (a cancel or a settlement ending a parent while its spawn tells them), unless duplicate
  // messages made two settlements both open a parent's next group (docs/reliability.md).
  if (!retelling(world)) {
    const duplicated = Object.keys(world.injected).some((k) => k.startsWith('duplicate delivery'));
    const told = new Map<string, number>();
    for (const e of world.events) {
      if (!(isRunEnd(e) || (e.type === 'BranchCreated' && !duplicated) || Object.values(END_EVENT).includes(e.type))) continue;
      const key = `${e.type} ${e.branchId ?? ''}`;
      told.set(key, (told.get(key) ?? 0) + 1);
    }
    for (const [key, n] of told) if (n > 1) v(`${key} told ${n} times without a retry`);
  }
}

/**
 * Every sync point that settled (its aggregation claimed) has its SyncPointReached told at least
 * once, under one eventId; without a fault that retells, exactly once. Nothing told for one unsettled.
 */
async function checkSyncPointEvents(world: World, branches: BranchRecord[]): Promise<string[]> {
  const out: string[] = [];
  const retold = retelling(world);
  for (const parent of branches) {
    for (let seq = 1; seq <= (parent.spawn?.seq ?? 0); seq++) {
      const sp = await world.store.getSyncPoint(world.scope, parent.id, seq);
      const told = world.events.filter((e) => e.type === 'SyncPointReached' && e.branchId === parent.id && e.detail.seq === seq);
      const key = `${parent.id}#${seq}`;
      if (sp?.aggregatedAt === undefined) {
        if (told.length) out.push(`SyncPointReached told for ${key}, which never settled`);
      } else if (!told.length) out.push(`no SyncPointReached for ${key} (settled: ${sp.outcome})`);
      else if (told.length > 1 && !retold) out.push(`SyncPointReached ${key} told ${told.length} times without a retry`);
      if (new Set(told.map((e) => e.eventId)).size > 1) out.push(`SyncPointReached ${key} told under ${told.length} eventIds`);
    }
  }
  return out;
}

/** Whether a fault whose retry tells a change again was injected. */
const retelling = (world: World): boolean => Object.keys(world.injected).some((k) => RETELLING.some((r) => k.startsWith(r)));

/** Faults whose retry tells a change again (at least once): the rest must not. */
const RETELLING = ['crash', 'process restart', 'redelivery while running', 'duplicate delivery (redelivered)', 'transient'];

const countsOf = (children: readonly BranchRecord[]): SyncCounters => {
  const count = (...s: string[]) => children.filter((c) => s.includes(c.status)).length;
  return { total: children.length, succeeded: count('COMPLETED'), failed: count('FAILED', 'TIMED_OUT'), cancelled: count('CANCELLED') };
};

const verdictOn = (sp: SyncPointRecord, children: readonly BranchRecord[]): CompletionVerdict | undefined =>
  sp.completeFn === undefined ? undefined : { met: firstOrAllOthers(children.map((c) => ({ branchId: c.id, agent: c.agent, status: c.status }))) };

/**
 * The per-fan-out options held, whatever the faults: each fan-out ran at the concurrency its
 * spawn asked for, within the run's limit; a sync point's outcome agrees with its own tolerance
 * (on_failure continue never fails a parent); and every aggregate a parent (or its aggregator
 * agent) got with `continue` lists all the sync point's children with their final statuses and
 * the completion reason those final children give.
 */
async function checkFanOutRules(world: World, branches: BranchRecord[], maxConcurrentBranches: number, covered: Record<string, number>): Promise<string[]> {
  const out: string[] = [];
  const cover = (what: string) => (covered[what] = (covered[what] ?? 0) + 1);
  const byId = new Map(branches.map((b) => [b.id, b]));
  for (const request of world.fanOutStarts) {
    const parent = byId.get(request.parentId);
    const aggregation = branches.some((c) => c.parentId === request.parentId && c.parentSeq === request.seq && c.type === 'AGGREGATION');
    const asked = aggregation ? undefined : askedConcurrency(world.scenario, request.parentId);
    const want = asked === undefined ? maxConcurrentBranches : Math.min(asked, maxConcurrentBranches);
    if (parent && request.maxConcurrency !== want) {
      out.push(`fan-out ${request.parentId}#${request.seq} ran ${request.maxConcurrency} at once; its spawn asked ${asked ?? 'nothing'}, the run allows ${maxConcurrentBranches}`);
    }
  }
  const syncPoints = new Map<string, { sp: SyncPointRecord; children: BranchRecord[] }>();
  for (const parent of branches) {
    for (let seq = 1; seq <= (parent.spawn?.seq ?? 0); seq++) {
      const sp = await world.store.getSyncPoint(world.scope, parent.id, seq);
      if (!sp) continue;
      const children = branches.filter((c) => c.parentId === parent.id && c.parentSeq === seq);
      syncPoints.set(`${parent.id}#${seq}`, { sp, children });
      if (sp.completeFn !== undefined) cover('completion function');
      if (sp.toleratedFailures !== undefined) cover('tolerated count');
      if (sp.onFailure === 'continue') cover(`on_failure continue, ${sp.outcome ?? 'unsettled'}`);
      if (sp.outcome === undefined || children.some((c) => !isTerminal(c.status))) continue;
      const final = countsOf(children);
      if (sp.onFailure === 'continue' && sp.outcome === 'fail') out.push(`sync point ${parent.id}#${seq} with on_failure continue failed its parent`);
      if (sp.completeFn === undefined && sp.waitFor === 'all' && sp.onFailure !== 'continue') {
        // Under wait_for all a resume waits for every child: the final failures are those it saw.
        const exceeded = toleranceExceeded(final, sp);
        if (sp.outcome === 'resume' && exceeded) out.push(`sync point ${parent.id}#${seq} resumed its parent past its tolerance (${JSON.stringify(final)})`);
        if (sp.outcome === 'fail' && !exceeded) out.push(`sync point ${parent.id}#${seq} failed its parent within its tolerance (${JSON.stringify(final)})`);
      }
    }
  }
  // Every value an agent was given (inputs and memories): the continue aggregates among them.
  const given: unknown[] = [];
  for (const b of branches) {
    given.push(b.input);
    for (const entry of b.memory) if (entry.role === 'user') given.push(entry.content);
  }
  const seen = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!value || typeof value !== 'object') return;
    const aggregate = value as { completion_reason?: unknown; children?: Record<string, { status: string }> };
    if (aggregate.completion_reason === undefined || !aggregate.children) return Object.values(value).forEach(visit);
    const ids = Object.keys(aggregate.children);
    const first = byId.get(ids[0] ?? '');
    const key = first ? `${first.parentId}#${first.parentSeq}` : '?';
    const point = syncPoints.get(key);
    if (!point) return void out.push(`a continue aggregate names children of no sync point (${ids.join(',')})`);
    const { sp, children } = point;
    const listed = ids.map((id) => `${id}:${aggregate.children![id].status}`).join(' ');
    const actual = children.map((c) => `${c.id}:${c.status}`).join(' ');
    if (listed !== actual) out.push(`the continue aggregate of ${key} lists ${listed}; the children are ${actual}`);
    const reason = completionReason(countsOf(children), sp, verdictOn(sp, children));
    if (aggregate.completion_reason !== reason) out.push(`the continue aggregate of ${key} says ${String(aggregate.completion_reason)}; its final children give ${reason}`);
    if (sp.onFailure !== 'continue') out.push(`sync point ${key} without on_failure continue gave a continue aggregate`);
    if (!seen.has(key)) cover(`continue aggregate ${reason}`);
    seen.add(key);
  };
  given.forEach(visit);
  for (const [key, { sp, children }] of syncPoints) {
    // A parent resumed by a continue sync point got its aggregate (unless the run ended first).
    const parent = byId.get(key.slice(0, key.lastIndexOf('#')));
    if (sp.onFailure === 'continue' && sp.outcome === 'resume' && !seen.has(key) && parent?.status === 'COMPLETED' && children.length) {
      out.push(`sync point ${key} (on_failure continue) resumed its parent, which never got the aggregate`);
    }
  }
  return out;
}

// Long-running: started first (vitest.config.ts).
/**
 * Lifecycle events exactly once when nothing fails, and each with a stable `eventId`, on the
 * embedded engines (dynalite, fauxqs, aws-local-stepfunctions): every branch is created and ends
 * in exactly one event each, the run starts and ends once, every sync point is reached once, and
 * no two events share an id. The fan-outs settled early by `complete_when` (any, k) hold the same
 * on the default (in-memory) tier too. When a crash makes the work tell a change again, the repeat
 * carries the first one's id, and the hooks of the process run once for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { RunRecord } from '../../core/model';
import { runInputOf } from '../../core/use-cases/start-run';
import { attachHooks } from '../../local/hooks';
import { LocalRuntime } from '../../local/runtime';
import { loadScenarioFile } from '../../local/scenario-file';
import { parseScenario, type Scenario } from '../../core/scenario';
import { behaviours, type Outcome } from '../support/behaviours';
import { RUNTIME_START_TIMEOUT_MS } from '../support/tiers';
import { EXAMPLES_DIR, recordEvents, runToEnd, WATCHED_TEST_TIMEOUT_MS, watchRun, type RunOutcome } from '../reliability/support';

const END_TYPES = new Set(['BranchCompleted', 'BranchFailed', 'BranchCancelled']);

const inline = (doc: unknown): Scenario => parseScenario(doc, 'test');
const final = (content: unknown) => ({ next_action: 'final_response', content });

/**
 * The examples that run without a model server, each with the status it ends in (undefined: it
 * depends on the machine's load — failures.yaml times a child out after 2 s, and its sources
 * may time out too on a busy machine; its events are checked all the same).
 */
const EXAMPLES: [string, RunRecord['status'] | undefined][] = [
  ['simple-parallel.yaml', 'COMPLETED'],
  ['hierarchical.yaml', 'COMPLETED'],
  ['failures.yaml', undefined],
  ['recursion.yaml', 'COMPLETED'],
  ['dynamic-workflow.yaml', 'COMPLETED'],
  ['quorum-custom-aggregator.yaml', 'COMPLETED'],
  ['tolerant-research.yaml', 'COMPLETED'],
  ['completion-function.yaml', 'COMPLETED'],
  ['transient-failures.yaml', 'COMPLETED'],
  ['flaky-agent.yaml', 'COMPLETED'],
  ['module-agents.yaml', 'COMPLETED'],
  ['wide-fan-out.yaml', 'COMPLETED'],
];
/** The behaviours of fan-outs settled early by `complete_when: any` and `complete_when: <k>`, with their checks (winners, losers, counts). */
const COMPLETE_WHEN: [string, Scenario, RunRecord['status'], (o: Outcome) => void][] = behaviours
  .filter((b) => /^complete_when (any|\d)/.test(b.name))
  .map((b) => [b.name, parseScenario(b.run, 'test'), 'COMPLETED', b.check]);

const loaded = await Promise.all(EXAMPLES.map(([file]) => loadScenarioFile(`${EXAMPLES_DIR}${file}`)));
const aggregators = Object.assign({}, ...loaded.map((l) => l.aggregators));

/** The scenarios: the examples (plain, hierarchical and wide fan-outs, failures, quorums, recursion), early-settled any and k-of-n fan-outs, a failing run. */
async function scenarios(): Promise<[string, Scenario, RunRecord['status'] | undefined, ((o: Outcome) => void)?][]> {
  return [
    ...COMPLETE_WHEN,
    ...EXAMPLES.map(([file, status], i): [string, Scenario, RunRecord['status'] | undefined] => [file, loaded[i].scenario, status]),
    [
      'wait_for 3 of 10, 3 at a time (settled early)',
      inline({
        name: 'k-of-n',
        request: 'x',
        entry: 'Boss',
        limits: { maxConcurrentBranches: 3 },
        agents: {
          Boss: { kind: 'script', allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: Array(10).fill('Worker'), wait_for: 3 }, final('$input')] },
          Worker: { kind: 'script', responses: [final('done')] },
        },
      }),
      'COMPLETED',
    ],
    [
      'wait_for any (the slow ones cancelled)',
      inline({
        name: 'any',
        request: 'x',
        entry: 'Boss',
        agents: {
          Boss: { kind: 'script', allowed: ['Fast', 'Slow'], responses: [{ next_action: 'parallel_invoke', agents: ['Fast', 'Slow', 'Slow'], wait_for: 'any' }, final('$input')] },
          Fast: { kind: 'script', responses: [final('first')] },
          Slow: { kind: 'script', responses: [{ $delayMs: 2_000, ...final('late') }] },
        },
      }),
      'COMPLETED',
    ],
    [
      'a failing child fails the run',
      inline({
        name: 'failing',
        request: 'x',
        entry: 'Boss',
        failurePolicy: { maxFailedFraction: 0 },
        agents: {
          Boss: { kind: 'script', allowed: ['Ok', 'Bad'], responses: [{ next_action: 'parallel_invoke', agents: ['Ok', 'Bad', 'Ok'] }, final('$input')] },
          Ok: { kind: 'script', responses: [{ $delayMs: 200, ...final('ok') }] },
          Bad: { kind: 'script', responses: [{ $fail: 'boom' }] },
        },
      }),
      'FAILED',
    ],
  ];
}

/** Events of each kind per subject: `BranchCreated root.1` → how many. */
function countsOf(events: LifecycleEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) {
    const kind = END_TYPES.has(e.type) ? 'end' : isRunEnd(e) ? 'RunEnd' : e.type;
    const key = `${kind} ${e.branchId ?? ''}${e.type === 'SyncPointReached' ? `#${String(e.detail.seq)}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function expectEachOnce(outcome: RunOutcome): void {
  const counts = countsOf(outcome.events);
  const label = (key: string) => `${key} (${outcome.run.name})`;
  expect(counts.get('RunStarted '), label('RunStarted')).toBe(1);
  expect(counts.get('RunEnd '), label('run end')).toBe(1);
  for (const b of outcome.branches) {
    expect(counts.get(`BranchCreated ${b.id}`), label(`BranchCreated ${b.id}`)).toBe(1);
    expect(counts.get(`end ${b.id}`), label(`end of ${b.id} (${b.status})`)).toBe(1);
  }
  for (const sp of outcome.syncPoints.filter((s) => s.outcome !== undefined)) {
    expect(counts.get(`SyncPointReached ${sp.parentId}#${sp.seq}`), label(`SyncPointReached ${sp.parentId}#${sp.seq}`)).toBe(1);
  }
  // Each sync point's event reports its children as they ended (the aggregate's view), counts included.
  const statusOf = new Map(outcome.branches.map((b) => [b.id, b.status]));
  for (const e of outcome.events.filter((e) => e.type === 'SyncPointReached')) {
    const detail = e.detail;
    const listed = detail.results.map((r) => `${r.branchId} ${r.status}`);
    expect(listed, label(`SyncPointReached ${e.branchId} statuses`)).toEqual(detail.results.map((r) => `${r.branchId} ${statusOf.get(r.branchId)}`));
    const count = (...statuses: string[]) => detail.results.filter((r) => statuses.includes(statusOf.get(r.branchId)!)).length;
    expect({ succeeded: detail.succeeded, failed: detail.failed, cancelled: detail.cancelled }, label(`SyncPointReached ${e.branchId} counts`)).toEqual({
      succeeded: count('COMPLETED'),
      failed: count('FAILED', 'TIMED_OUT'),
      cancelled: count('CANCELLED'),
    });
  }
  const ids = outcome.events.map((e) => e.eventId);
  expect(ids.every((id) => /^[0-9a-f]{32}$/.test(id)), 'every event has an id').toBe(true);
  expect(new Set(ids).size, `unique eventIds (${outcome.run.name})`).toBe(ids.length);
}

const SCENARIOS = await scenarios();

describe('lifecycle events on the embedded engines, without a fault', () => {
  let runtime: LocalRuntime;
  let events: LifecycleEvent[];
  beforeAll(async () => {
    runtime = await LocalRuntime.start({ tier: 'engines', aggregators });
    events = recordEvents(runtime);
  }, RUNTIME_START_TIMEOUT_MS);
  afterAll(() => runtime?.close());

  // The runs go at once, as on a busy runtime (they mostly wait on agents' delays). Each run's end
  // waits for the runtime to settle, so every test lasts as long as all the runs' work: on a loaded
  // machine that is minutes (wide-fan-out's 150 children), so the runs are watched for progress
  // (watchRun) instead of timed.
  it.concurrent.each(SCENARIOS)(
    '%s: every branch created and ended once, the run started and ended once, each sync point once, reporting its children as they ended; ids unique',
    async (name, scenario, status, check) => {
      const outcome = await runToEnd(runtime, scenario, events);
      if (status) expect(outcome.run.status, name).toBe(status);
      check?.(outcome);
      expectEachOnce(outcome);
      expect(runtime.errors).toEqual([]);
    },
    WATCHED_TEST_TIMEOUT_MS,
  );

  it('a run cancelled while its children run: every branch still ends in exactly one event', async () => {
    const scenario = inline({
      name: 'cancelled',
      request: 'x',
      entry: 'Boss',
      agents: {
        Boss: { kind: 'script', allowed: ['Slow'], responses: [{ next_action: 'parallel_invoke', agents: ['Slow', 'Slow', 'Slow', 'Slow'] }, final('$input')] },
        Slow: { kind: 'script', responses: [{ $hang: true, ...final('never') }] },
      },
    });
    const runId = await runtime.startRun(runInputOf(scenario));
    // Cancel once the four children run (their BranchCreated told), whatever the load.
    await new Promise<void>((resolve) => {
      let created = events.filter((e) => e.runId === runId && e.type === 'BranchCreated').length;
      if (created >= 5) return resolve();
      const stop = runtime.bus.subscribe((e) => {
        if (e.runId === runId && e.type === 'BranchCreated' && ++created >= 5) {
          stop();
          resolve();
        }
      });
    });
    await runtime.cancel(runId);
    const outcome = await watchRun(runtime, runId, events);
    expect(outcome.run.status).toBe('CANCELLED');
    expectEachOnce(outcome);
    expect(runtime.errors).toEqual([]);
  }, WATCHED_TEST_TIMEOUT_MS);
});

describe('fan-outs settled early by complete_when on the default tier, without a fault', () => {
  let runtime: LocalRuntime;
  let events: LifecycleEvent[];
  beforeAll(async () => {
    runtime = await LocalRuntime.start({ tier: 'memory' });
    events = recordEvents(runtime);
  }, RUNTIME_START_TIMEOUT_MS);
  afterAll(() => runtime?.close());

  it.each(COMPLETE_WHEN)('%s: every branch ended once; the sync point reported once, as the aggregate counts', async (_name, scenario, status, check) => {
    const outcome = await runToEnd(runtime, scenario, events);
    expect(outcome.run.status).toBe(status);
    check(outcome);
    expectEachOnce(outcome);
    expect(runtime.errors).toEqual([]);
  }, WATCHED_TEST_TIMEOUT_MS);
});

describe('a change told again after a crash', () => {
  let runtime: LocalRuntime;
  let events: LifecycleEvent[];
  beforeAll(async () => {
    // Each child's step dies once after telling its end, before its fan-out hears of it: the retry tells the end again.
    runtime = await LocalRuntime.start({ tier: 'engines', chaos: { crash: ['before-task-success'], seed: 1 } });
    events = recordEvents(runtime);
  }, RUNTIME_START_TIMEOUT_MS);
  afterAll(() => runtime?.close());

  it('carries the same eventId, and the hooks of the process run once for it', async () => {
    const calls: string[] = [];
    const record = (name: string) => (b: { id: string }) => void calls.push(`${name} ${b.id}`);
    const hooks = attachHooks(runtime, { onBranchCompleted: record('completed'), onBranchCreated: record('created') });
    const scenario = (await loadScenarioFile(`${EXAMPLES_DIR}hierarchical.yaml`)).scenario;
    const outcome = await runToEnd(runtime, scenario, events);
    await hooks.drain();
    hooks.detach();
    expect(outcome.run.status).toBe('COMPLETED');
    expect(runtime.faults.injected['before-task-success']).toBeGreaterThan(0);

    const ends = outcome.events.filter((e) => e.type === 'BranchCompleted');
    // Told again: some ends are on the bus twice, each time with the same id.
    expect(ends.length).toBeGreaterThan(outcome.branches.length);
    const idsByBranch = new Map<string, Set<string>>();
    for (const e of ends) idsByBranch.set(e.branchId!, (idsByBranch.get(e.branchId!) ?? new Set()).add(e.eventId));
    for (const b of outcome.branches) expect([...(idsByBranch.get(b.id) ?? [])], `ids of ${b.id}'s end`).toHaveLength(1);
    // One id is one change: no other event shares it.
    const keyOf = new Map<string, string>();
    for (const e of outcome.events) {
      const key = `${e.type} ${e.branchId ?? ''} ${JSON.stringify(('seq' in e.detail ? e.detail.seq : undefined) ?? null)}`;
      expect(keyOf.get(e.eventId) ?? key, `event ${e.eventId}`).toBe(key);
      keyOf.set(e.eventId, key);
    }
    // The hooks: each branch's creation and completion once.
    const ids = outcome.branches.map((b) => b.id).sort();
    expect(calls.filter((c) => c.startsWith('completed ')).map((c) => c.slice(10)).sort()).toEqual(ids);
    expect(calls.filter((c) => c.startsWith('created ')).map((c) => c.slice(8)).sort()).toEqual(ids);
  }, WATCHED_TEST_TIMEOUT_MS);
});

/**
 * The BranchStore contract, run against every implementation (memory, dynalite, DynamoDB Local).
 * Each test works in a run of its own, so one store (one table) serves the whole suite.
 */
import { randomUUID } from 'node:crypto';
import { blobRef } from '../../adapters/blobs/blob-keys';
import { beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, PayloadTooLargeError } from '../../core/errors';
import { MAX_VALUE_BYTES } from '../../core/input-bounds';
import {
  ACTIVE_STATUSES,
  BRANCH_STATUSES,
  DEFAULT_FAILURE_POLICY,
  DEFAULT_LIMITS,
  type BranchRecord,
  type ChildOutcome,
  type RunRecord,
  type Scope,
  type SyncPointRecord,
} from '../../core/model';
import { emptyCost, type CostCounters } from '../../core/cost';
import { CostMeter } from '../../core/cost-meter';
import { mapLimit } from '../../core/map-limit';
import { branchEvent } from '../../core/events';
import { anEvent } from '../support/events';
import type { BranchStore, CostSink } from '../../core/ports';
import { WorkMark } from '../../core/work-mark';

/** Makes the store under test; `meter` receives the capacity units it reports, by run. */
export type BranchStoreFactory = (meter?: CostSink) => BranchStore | Promise<BranchStore>;

let scopeSeq = 0;
export function newScope(team = 'team-a'): Scope {
  return { team, runId: `run-${++scopeSeq}-${randomUUID().slice(0, 8)}` };
}

export function runRecord(scope: Scope, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    ...scope,
    name: 'conformance',
    status: 'RUNNING',
    request: { question: 'Analyze Q4 sales' },
    entry: 'Planner',
    agents: { Planner: { kind: 'script', allowed: ['Worker'], responses: [{ next_action: 'final_response', content: 1 }] } },
    limits: { ...DEFAULT_LIMITS },
    failurePolicy: { ...DEFAULT_FAILURE_POLICY },
    createdAt: 1_700_000_000_000,
    branchCount: 1,
    ...overrides,
  };
}

export function branchRecord(
  scope: Scope,
  id: string,
  parentId: string | null = null,
  overrides: Partial<BranchRecord> = {},
): BranchRecord {
  return {
    ...scope,
    id,
    parentId,
    parentSeq: parentId === null ? null : 1,
    depth: id.split('.').length - 1,
    type: 'SIMPLE',
    entryAgent: 'Worker',
    agent: 'Worker',
    status: 'PENDING',
    version: 0,
    stepCount: 0,
    invalidCount: 0,
    refusalCount: 0,
    input: { task: id },
    memory: [],
    childCount: 0,
    createdAt: 1_700_000_000_000,
    ...(parentId === null ? {} : { fanIn: { waitFor: 'all' as const, maxFailedFraction: 0.5 } }),
    ...overrides,
  };
}

export function syncPointRecord(scope: Scope, parentId: string, seq: number, total: number): SyncPointRecord {
  return {
    ...scope,
    parentId,
    seq,
    counters: { total, succeeded: 0, failed: 0, cancelled: 0 },
    waitFor: 'all',
    maxFailedFraction: 0.5,
    executionName: `${scope.runId}-${parentId}-s${seq}`,
  };
}

/** A JSON value that DynamoDB maps could not hold: 40 levels deep, plus awkward scalars. */
export function awkwardJson(): unknown {
  let nested: unknown = { bottom: 'grund 🌍' };
  for (let level = 0; level < 40; level++) nested = level % 2 ? [level, nested] : { level, nested };
  return {
    nested,
    unicode: 'Grüße 🌍 中文 עברית e\u0301 \u2028 "quoted" \\ back\tslash \u0000 end',
    numbers: [0, -1, 1.5, -0.000123, 1e300, -1e-300, Number.MAX_SAFE_INTEGER, 0.1 + 0.2, 123456789.12345679],
    flags: [true, false, null],
    empty: { string: '', array: [], object: {} },
    'key with # and %': { '': 'empty key' },
  };
}

const sum = (c: { succeeded: number; failed: number; cancelled: number }) => c.succeeded + c.failed + c.cancelled;

export interface ConformanceOptions {
  /**
   * Width of the wide fan-in test (every end delivered twice). 10,000 by default on every store;
   * `BRANCH_SPAWNER_WIDE_CHILDREN` sets it for the embedded DynamoDB engines (ENGINE_WIDE_CHILDREN).
   */
  wideChildren?: number;
}

/** The wide fan-in width for the embedded DynamoDB engines (see ConformanceOptions). */
export const ENGINE_WIDE_CHILDREN = Number(process.env.BRANCH_SPAWNER_WIDE_CHILDREN ?? 10_000);

export function describeBranchStoreConformance(name: string, factory: BranchStoreFactory, options: ConformanceOptions = {}): void {
  const wideChildren = options.wideChildren ?? 10_000;
  describe(`BranchStore conformance: ${name}`, () => {
    let store: BranchStore;
    beforeAll(async () => {
      store = await factory();
    });

    async function seedRun(scope: Scope, overrides: Partial<RunRecord> = {}): Promise<RunRecord> {
      const run = runRecord(scope, overrides);
      expect(await store.createRun(run)).toBe(true);
      return run;
    }

    describe('runs', () => {
      it('creates a run once and never overwrites it', async () => {
        const scope = newScope();
        const run = runRecord(scope);
        expect(await store.createRun(run)).toBe(true);
        expect(await store.createRun({ ...run, name: 'second', request: 'other' })).toBe(false);
        expect(await store.getRun(scope)).toEqual(run);
        expect(await store.getRun(newScope())).toBeUndefined();
      });

      it('copies values in and out', async () => {
        const scope = newScope();
        const run = runRecord(scope, { request: { list: [1, 2] } });
        await store.createRun(run);
        (run.request as { list: number[] }).list.push(3);
        const read = (await store.getRun(scope))!;
        expect(read.request).toEqual({ list: [1, 2] });
        (read.request as { list: number[] }).list.push(4);
        read.limits.maxDepth = 99;
        const again = (await store.getRun(scope))!;
        expect(again.request).toEqual({ list: [1, 2] });
        expect(again.limits.maxDepth).toBe(DEFAULT_LIMITS.maxDepth);
      });

      it('finishes a RUNNING run once, applying the patch and leaving the rest alone', async () => {
        const scope = newScope();
        const run = await seedRun(scope);
        expect(
          await store.finishRun(scope, 'COMPLETED', { endedAt: 42, result: { answer: [1, 'two'] }, error: undefined }),
        ).toBe(true);
        expect(await store.getRun(scope)).toEqual({ ...run, status: 'COMPLETED', endedAt: 42, result: { answer: [1, 'two'] } });
        expect(await store.finishRun(scope, 'FAILED', { error: 'late' })).toBe(false);
        expect((await store.getRun(scope))!.status).toBe('COMPLETED');
        expect((await store.getRun(scope))!.error).toBeUndefined();
        expect(await store.finishRun(newScope(), 'CANCELLED', {})).toBe(false);
      });

      it('lets exactly one of many concurrent finishRun calls win', async () => {
        const scope = newScope();
        await seedRun(scope);
        const statuses = ['COMPLETED', 'FAILED', 'CANCELLED'] as const;
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => store.finishRun(scope, statuses[i % 3], { endedAt: i, error: `e${i}` })),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        const run = (await store.getRun(scope))!;
        expect(run).toMatchObject({ status: statuses[winner % 3], endedAt: winner, error: `e${winner}` });
      });
    });

    describe('appendEvents / listEvents', () => {
      it('numbers each run\'s events in the order appended and pages them after a number', async () => {
        const scope = newScope();
        await store.createRun(runRecord(scope));
        const event = (i: number) => anEvent('BranchCreated', { eventId: `e${i}`, team: scope.team, runId: scope.runId, branchId: `root.${i}`, time: i, detail: { depth: i } });
        await store.appendEvents(scope, [event(1), event(2)]);
        await Promise.all([store.appendEvents(scope, [event(3)]), store.appendEvents(scope, [event(4), event(5)])]);
        await store.appendEvents({ ...scope, runId: `${scope.runId}-other` }, [event(9)]);
        const all = await store.listEvents(scope, { after: 0, limit: 100 });
        expect(all.map((s) => s.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(all.slice(0, 2).map((s) => s.event)).toEqual([event(1), event(2)]);
        expect(new Set(all.map((s) => s.event.eventId))).toEqual(new Set(['e1', 'e2', 'e3', 'e4', 'e5']));
        expect((await store.listEvents(scope, { after: 2, limit: 2 })).map((s) => s.seq)).toEqual([3, 4]);
        expect(await store.listEvents(scope, { after: 5, limit: 2 })).toEqual([]);
      });

      it('packs a publication into few write units and reads it back whole, from any number inside it', async () => {
        const writeUnits = new Map<string, number>();
        const metered = await factory({ add: (s, u) => void writeUnits.set(s.runId, (writeUnits.get(s.runId) ?? 0) + (u.writeUnits ?? 0)) });
        const scope = newScope();
        await metered.createRun(runRecord(scope));
        writeUnits.clear();
        // A spawn's burst: 150 BranchCreated events with the ids eventId() gives them.
        const burst = Array.from({ length: 150 }, (_, i) => branchEvent('BranchCreated', { ...branchRecord(scope, `root.${i}`, 'root'), status: 'PENDING' }, 1_700_000_000_000 + i));
        await metered.appendEvents(scope, burst);
        // One counter update and one pack (about 1 KB deflated), not one item per event.
        expect(writeUnits.get(scope.runId)).toBeLessThanOrEqual(4);
        const all = await metered.listEvents(scope, { after: 0, limit: 500 });
        expect(all.map((s) => s.event)).toEqual(burst);
        expect(all.map((s) => s.seq)).toEqual(burst.map((_, i) => i + 1));
        expect((await metered.listEvents(scope, { after: 140, limit: 3 })).map((s) => s.seq)).toEqual([141, 142, 143]);
        expect((await metered.listEvents(scope, { after: 148, limit: 5 })).map((s) => s.seq)).toEqual([149, 150]);
      });

      it('splits a publication too large for one item and keeps its order', async () => {
        const scope = newScope();
        await store.createRun(runRecord(scope));
        // 700 events of ~1 KB of incompressible text: over one pack's bytes.
        const text = (i: number) => Array.from({ length: 64 }, (_, k) => ((i * 7919 + k * 104729) % 2 ** 31).toString(36)).join('');
        const big = Array.from({ length: 700 }, (_, i) => anEvent('ToolCalled', { eventId: `big${i}`, team: scope.team, runId: scope.runId, branchId: 'root', time: i, detail: { output: text(i) } }));
        await store.appendEvents(scope, [big[0]]);
        await store.appendEvents(scope, big.slice(1));
        const read: number[] = [];
        for (let after = 0; ; ) {
          const page = await store.listEvents(scope, { after, limit: 250 });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(250);
          read.push(...page.map((s) => s.seq));
          expect(page.map((s) => s.event)).toEqual(big.slice(after, after + page.length));
          after = page.at(-1)!.seq;
        }
        expect(read).toEqual(big.map((_, i) => i + 1));
      });
    });

    describe('listRunsPage', () => {
      it("pages a team's runs newest first, each page bounded by its limit, and leaves other teams' runs out", async () => {
        const team = `list-${Math.random().toString(36).slice(2, 8)}`;
        const created = [5, 1, 4, 2, 3].map((n) => ({ team, runId: `r${n}`, createdAt: 1_700_000_000_000 + n * 1000 }));
        for (const c of created) await store.createRun(runRecord({ team, runId: c.runId }, { createdAt: c.createdAt }));
        await store.createRun(runRecord({ team: `${team}-other`, runId: 'r9' }, { createdAt: 1_700_000_009_000 }));
        const seen: string[] = [];
        const sizes: number[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await store.listRunsPage(team, { limit: 2, ...(after ? { after } : {}) });
          sizes.push(page.runs.length);
          seen.push(...page.runs.map((r) => r.run.runId));
          expect(page.runs.every((r) => r.run.team === team)).toBe(true);
          after = page.runs.at(-1)?.position;
          if (!page.more) break;
        }
        expect(seen).toEqual(['r5', 'r4', 'r3', 'r2', 'r1']);
        expect(Math.max(...sizes)).toBe(2);
        // A run's listing shows its current state.
        await store.finishRun({ team, runId: 'r5' }, 'COMPLETED', { endedAt: 1 });
        expect((await store.listRunsPage(team, { limit: 1 })).runs[0].run).toMatchObject({ runId: 'r5', status: 'COMPLETED' });
        await expect(store.listRunsPage(team, { limit: 1, after: 'nonsense' })).rejects.toMatchObject({ name: 'ValidationError', field: 'cursor' });
      });
    });

    describe('reserveBranches', () => {
      it('counts each spawn key once and refuses past max', async () => {
        const scope = newScope();
        await seedRun(scope, { branchCount: 1 });
        expect(await store.reserveBranches(scope, 'root#0', 4, 10)).toEqual({ ok: true, branchCount: 5 });
        expect(await store.reserveBranches(scope, 'root#0', 4, 10)).toEqual({ ok: true, branchCount: 5 });
        expect(await store.reserveBranches(scope, 'root#1', 6, 10)).toEqual({ ok: false, branchCount: 5 });
        expect(await store.reserveBranches(scope, 'root#2', 5, 10)).toEqual({ ok: true, branchCount: 10 });
        expect(await store.reserveBranches(scope, 'root#3', 1, 10)).toEqual({ ok: false, branchCount: 10 });
        // A key reserved before stays ok even when the budget is now spent.
        expect(await store.reserveBranches(scope, 'root#2', 5, 10)).toEqual({ ok: true, branchCount: 10 });
        expect((await store.getRun(scope))!.branchCount).toBe(10);
      });

      it('refuses for a run that does not exist, without creating it', async () => {
        const scope = newScope();
        expect((await store.reserveBranches(scope, 'k', 1, 10)).ok).toBe(false);
        expect(await store.getRun(scope)).toBeUndefined();
      });

      it('is idempotent and bounded under concurrency', async () => {
        const scope = newScope();
        await seedRun(scope, { branchCount: 1 });
        const same = await Promise.all(Array.from({ length: 20 }, () => store.reserveBranches(scope, 'root#7', 3, 100)));
        expect(same.every((r) => r.ok)).toBe(true);
        expect((await store.getRun(scope))!.branchCount).toBe(4);

        const distinct = await Promise.all(
          Array.from({ length: 15 }, (_, i) => store.reserveBranches(scope, `b${i}#0`, 1, 10)),
        );
        expect(distinct.filter((r) => r.ok)).toHaveLength(6);
        expect((await store.getRun(scope))!.branchCount).toBe(10);
      });
    });

    describe('addRunTokens', () => {
      it('adds atomically under concurrency, whatever the run status, and never creates a run', async () => {
        const scope = newScope();
        await seedRun(scope);
        expect(await store.addRunTokens(scope, 15)).toBe(15);
        const totals = await Promise.all(Array.from({ length: 20 }, () => store.addRunTokens(scope, 5)));
        expect(Math.max(...(totals as number[]))).toBe(115);
        expect(new Set(totals).size).toBe(20);
        await store.finishRun(scope, 'FAILED', { endedAt: 1, error: 'x' });
        expect(await store.addRunTokens(scope, 1)).toBe(116);
        expect((await store.getRun(scope))!.usedTokens).toBe(116);
        const missing = newScope();
        expect(await store.addRunTokens(missing, 1)).toBeUndefined();
        expect(await store.getRun(missing)).toBeUndefined();
      });
    });

    describe('branches', () => {
      it('creates only the branches that do not exist yet', async () => {
        const scope = newScope();
        const root = branchRecord(scope, 'root');
        const a = branchRecord(scope, 'root.0', 'root');
        expect(await store.createBranches([root, a])).toEqual(['root', 'root.0']);
        const b = branchRecord(scope, 'root.1', 'root');
        expect(await store.createBranches([{ ...a, agent: 'Other' }, b])).toEqual(['root.1']);
        expect((await store.getBranch(scope, 'root.0'))!.agent).toBe('Worker');
        expect(await store.createBranches([])).toEqual([]);
        expect(await store.getBranch(scope, 'root')).toEqual(root);
        expect(await store.getBranch(scope, 'missing')).toBeUndefined();
      });

      it("reads branches' outcomes only (what a fan-in aggregates): no input or memory, a large result whole", async () => {
        const scope = newScope();
        const page = 'p'.repeat(5_000);
        const ended = { status: 'COMPLETED' as const, version: 3, result: { text: page }, endedAt: 7, advancedBy: WorkMark.step('step:2') };
        const child = branchRecord(scope, 'root.0', 'root', { ...ended, input: page, memory: [{ role: 'user', agent: 'Worker', content: page }], stepCount: 2 });
        const failed = branchRecord(scope, 'root.1', 'root', { status: 'FAILED', error: 'no', endedAt: 8 });
        await store.createBranches([branchRecord(scope, 'root'), child, failed]);
        const outcomes = await store.getOutcomes(scope, ['root.1', 'missing', 'root.0']);
        expect(outcomes).toEqual([
          { ...scope, id: 'root.1', parentId: 'root', agent: 'Worker', status: 'FAILED', version: 0, error: 'no', endedAt: 8 },
          { ...scope, id: 'root.0', parentId: 'root', agent: 'Worker', ...ended },
        ]);
        expect(await store.getOutcomes(scope, [])).toEqual([]);
      });

      it("reads the statuses of more branches than one request takes (a spawn's children)", async () => {
        const scope = newScope();
        await seedRun(scope);
        const ids = Array.from({ length: 250 }, (_, i) => `root.${i}`);
        await store.createBranches([branchRecord(scope, 'root'), ...ids.slice(0, 240).map((id) => branchRecord(scope, id, 'root', { status: 'COMPLETED' }))]);
        const { run, branches } = await store.getStatuses(scope, ids);
        expect(run).toBe('RUNNING');
        expect(branches.size).toBe(240);
        expect(branches.get('root.239')).toBe('COMPLETED');
        expect(branches.has('root.240')).toBe(false);
      });

      it('creates a branch once when the same id is created concurrently', async () => {
        const scope = newScope();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.createBranches([branchRecord(scope, 'root', null, { agent: `A${i}` })])),
        );
        expect(results.flat()).toEqual(['root']);
        const winner = results.findIndex((r) => r.length === 1);
        expect((await store.getBranch(scope, 'root'))!.agent).toBe(`A${winner}`);
      });

      it('reads the statuses of the run and of some branches, as they are now', async () => {
        const scope = newScope();
        expect(await store.getStatuses(scope, ['root'])).toEqual({ run: undefined, branches: new Map() });
        await seedRun(scope);
        await store.createBranches([branchRecord(scope, 'root'), branchRecord(scope, 'root.0', 'root')]);
        await store.transitionBranch(scope, 'root', ['PENDING'], 'RUNNING');
        expect(await store.getStatuses(scope, ['root', 'root.0', 'missing', 'root'])).toEqual({
          run: 'RUNNING',
          branches: new Map([
            ['root', 'RUNNING'],
            ['root.0', 'PENDING'],
          ]),
        });
        await store.finishRun(scope, 'CANCELLED', {});
        expect(await store.getStatuses(scope, [])).toEqual({ run: 'CANCELLED', branches: new Map() });
        // Another run's branch of the same id is not this run's.
        expect((await store.getStatuses(newScope(), ['root'])).branches.size).toBe(0);
      });

      it('reads many branches consistently, in the order asked, leaving out missing ones', async () => {
        const scope = newScope();
        const ids = Array.from({ length: 230 }, (_, i) => `root.${i}`);
        expect(await store.createBranches(ids.map((id) => branchRecord(scope, id, 'root')))).toHaveLength(230);
        const asked = ['root.229', 'nope', ...ids.slice(0, 120).reverse(), 'root.5', ...ids.slice(120)];
        const got = await store.getBranches(scope, asked);
        expect(got.map((b) => b.id)).toEqual(asked.filter((id) => id !== 'nope'));
        expect(got[0]).toEqual(branchRecord(scope, 'root.229', 'root'));
        got[1].input = 'mutated';
        expect(got.filter((b) => b.id === 'root.5').map((b) => b.input)).toEqual([{ task: 'root.5' }, { task: 'root.5' }]);
        expect(await store.getBranches(scope, [])).toEqual([]);
        expect(await store.getBranches(newScope(), ['root.1'])).toEqual([]);
      });

      it('updates at the expected version only, bumping the version and ignoring undefined keys', async () => {
        const scope = newScope();
        const b = branchRecord(scope, 'root');
        await store.createBranches([b]);
        const updated = await store.updateBranch(scope, 'root', 0, {
          status: 'RUNNING',
          stepCount: 1,
          input: { next: true },
          agent: undefined,
          memory: [{ role: 'user', agent: 'Worker', content: 'hi' }],
        });
        const expected = { ...b, status: 'RUNNING', stepCount: 1, input: { next: true }, version: 1, memory: [{ role: 'user', agent: 'Worker', content: 'hi' }] };
        expect(updated).toEqual(expected);
        expect(await store.getBranch(scope, 'root')).toEqual(expected);
        expect(await store.updateBranch(scope, 'root', 0, { stepCount: 9 })).toBeUndefined();
        expect(await store.updateBranch(scope, 'missing', 0, { stepCount: 9 })).toBeUndefined();
        expect(await store.getBranch(scope, 'root')).toEqual(expected);
      });

      it('keeps a tool loop checkpoint and clears it with null', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root')]);
        const toolLoop = {
          step: 0,
          turns: [{ calls: [{ id: 'c1', name: 'lookup', args: { q: 'x' } }], results: { c1: { text: 'found', isError: false } } }],
          usage: { inputTokens: 5, outputTokens: 1 },
          records: [{ tool: 'lookup', kind: 'module' as const, status: 'ok' as const, durationMs: 3, argumentBytes: 9, outputBytes: 5 }],
        };
        await store.updateBranch(scope, 'root', 0, { toolLoop });
        expect((await store.getBranch(scope, 'root'))?.toolLoop).toEqual(toolLoop);
        await store.updateBranch(scope, 'root', 1, { toolLoop: null, toolStats: { lookup: { calls: 1, errors: 0, totalMs: 3, maxMs: 3 } } });
        const cleared = await store.getBranch(scope, 'root');
        expect(cleared?.toolLoop ?? null).toBeNull();
        expect(cleared?.toolStats).toEqual({ lookup: { calls: 1, errors: 0, totalMs: 3, maxMs: 3 } });
      });

      it('lets exactly one of many concurrent updates at the same version win', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root')]);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.updateBranch(scope, 'root', 0, { input: { writer: i } })),
        );
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        const current = (await store.getBranch(scope, 'root'))!;
        expect(current.version).toBe(1);
        expect(current.input).toEqual(winners[0]!.input);
      });

      it('transitions from the allowed statuses only, and never out of a terminal one', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root')]);
        const running = await store.transitionBranch(scope, 'root', ['PENDING'], 'RUNNING', { startedAt: 5 });
        expect(running).toMatchObject({ status: 'RUNNING', version: 1, startedAt: 5 });
        expect(await store.transitionBranch(scope, 'root', ['PENDING'], 'RUNNING')).toBeUndefined();
        expect(await store.transitionBranch(scope, 'root', ['RUNNING'], 'RUNNING')).toMatchObject({ version: 2 });
        const done = await store.transitionBranch(scope, 'root', ACTIVE_STATUSES, 'COMPLETED', { result: { ok: 1 }, endedAt: 9 });
        expect(done).toMatchObject({ status: 'COMPLETED', version: 3, result: { ok: 1 }, endedAt: 9 });
        for (const to of BRANCH_STATUSES) {
          expect(await store.transitionBranch(scope, 'root', BRANCH_STATUSES, to, { error: 'no' })).toBeUndefined();
        }
        expect(await store.getBranch(scope, 'root')).toEqual(done);
        expect(await store.transitionBranch(scope, 'missing', ACTIVE_STATUSES, 'FAILED')).toBeUndefined();
        expect(await store.transitionBranch(scope, 'root', [], 'FAILED')).toBeUndefined();
      });

      it('lets exactly one of many concurrent transitions out of an active status win', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root', null, { status: 'RUNNING' })]);
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.transitionBranch(scope, 'root', ACTIVE_STATUSES, i % 2 ? 'CANCELLED' : 'FAILED', { error: `by ${i}` }),
          ),
        );
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        expect(await store.getBranch(scope, 'root')).toEqual(winners[0]);
        expect(winners[0]!.version).toBe(1);
      });

      it('lists a run’s branches in natural id order, and a parent’s direct children', async () => {
        const scope = newScope();
        const ids = ['root', 'root.2', 'root.10', 'root.1', 'root.0', 'root.0.1', 'root.0.0'];
        await store.createBranches(
          ids.map((id) => branchRecord(scope, id, id === 'root' ? null : id.slice(0, id.lastIndexOf('.')))),
        );
        const other = newScope();
        await store.createBranches([branchRecord(other, 'root'), branchRecord(other, 'root.0', 'root')]);

        const all = await store.listBranches(scope);
        expect(all.map((b) => b.id)).toEqual(['root', 'root.0', 'root.0.0', 'root.0.1', 'root.1', 'root.2', 'root.10']);
        expect(all[0]).toEqual(branchRecord(scope, 'root'));
        expect((await store.listChildren(scope, 'root')).map((b) => b.id)).toEqual(['root.0', 'root.1', 'root.2', 'root.10']);
        expect((await store.listChildren(scope, 'root.0')).map((b) => b.id)).toEqual(['root.0.0', 'root.0.1']);
        expect(await store.listChildren(scope, 'root.1')).toEqual([]);
        expect(await store.listChildren(scope, 'root.0')).toEqual([
          branchRecord(scope, 'root.0.0', 'root.0'),
          branchRecord(scope, 'root.0.1', 'root.0'),
        ]);
        expect(await store.listBranches(newScope())).toEqual([]);
      });

      it('lists runs larger than one query page (> 1 MB)', async () => {
        const scope = newScope();
        const filler = 'f'.repeat(6_000);
        const ids = ['root', ...Array.from({ length: 200 }, (_, i) => `root.${i}`)];
        await store.createBranches(
          ids.map((id) => branchRecord(scope, id, id === 'root' ? null : 'root', { input: { filler, id } })),
        );
        const all = await store.listBranches(scope);
        expect(all.map((b) => b.id)).toEqual(ids);
        expect(all.every((b) => (b.input as { filler: string }).filler === filler)).toBe(true);
        expect(await store.listChildren(scope, 'root')).toHaveLength(200);
        const read = await store.getBranches(scope, ids);
        expect(read.map((b) => b.id)).toEqual(ids);
      });
    });

    describe('team scoping', () => {
      it('never shows one team’s run to another, even with the same run id', async () => {
        const a: Scope = newScope('team-a');
        const b: Scope = { team: 'team-b', runId: a.runId };
        await seedRun(a, { name: 'A' });
        await store.createBranches([branchRecord(a, 'root'), branchRecord(a, 'root.0', 'root')]);
        await store.createSyncPoint(syncPointRecord(a, 'root', 1, 1));

        expect(await store.getRun(b)).toBeUndefined();
        expect(await store.getBranch(b, 'root')).toBeUndefined();
        expect(await store.getBranches(b, ['root', 'root.0'])).toEqual([]);
        expect(await store.listBranches(b)).toEqual([]);
        expect(await store.listChildren(b, 'root')).toEqual([]);
        expect(await store.listOpenSyncPoints(b)).toEqual([]);
        expect(await store.getSyncPoint(b, 'root', 1)).toBeUndefined();
        // Writes through the other team's scope change nothing and create nothing.
        expect(await store.updateBranch(b, 'root', 0, { input: 'leak' })).toBeUndefined();
        expect(await store.transitionBranch(b, 'root', ACTIVE_STATUSES, 'FAILED')).toBeUndefined();
        expect(await store.finishRun(b, 'FAILED', {})).toBe(false);
        expect((await store.reserveBranches(b, 'k', 1, 100)).ok).toBe(false);
        expect(await store.claimAggregation(b, 'root', 1, 'resume', 1, WorkMark.settle('root', 1))).toBe(false);
        await expect(store.recordChildEnd(b, 'root', 1, 'root.0', 'succeeded')).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.getRun(b)).toBeUndefined();
        expect(await store.listBranches(b)).toEqual([]);

        // Team B may use the same run id for a run of its own.
        await seedRun(b, { name: 'B' });
        await store.createBranches([branchRecord(b, 'root')]);
        expect((await store.getRun(a))!.name).toBe('A');
        expect((await store.getRun(b))!.name).toBe('B');
        expect((await store.listBranches(a)).map((x) => x.id)).toEqual(['root', 'root.0']);
        expect((await store.listBranches(b)).map((x) => x.id)).toEqual(['root']);
        expect((await store.getSyncPoint(a, 'root', 1))!.counters.total).toBe(1);
      });

      it('cannot be fooled by separators inside team, run or branch ids', async () => {
        const suffix = randomUUID().slice(0, 8);
        const a: Scope = { team: `x#R#y${suffix}`, runId: 'z' };
        const b: Scope = { team: 'x', runId: `y${suffix}#R#z` };
        const c: Scope = { team: `x%23R%23y${suffix}`, runId: 'z' };
        await seedRun(a);
        await store.createBranches([branchRecord(a, 'root'), branchRecord(a, 'root.0#P#x', 'root'), branchRecord(a, 'p%', 'root')]);
        for (const other of [b, c]) {
          expect(await store.getRun(other)).toBeUndefined();
          expect(await store.listBranches(other)).toEqual([]);
        }
        expect((await store.listBranches(a)).map((x) => x.id).sort()).toEqual(['p%', 'root', 'root.0#P#x']);
        expect(await store.listChildren(a, 'root.0')).toEqual([]);
        expect((await store.listChildren(a, 'root')).map((x) => x.id).sort()).toEqual(['p%', 'root.0#P#x']);
        expect((await store.getBranch(a, 'root.0#P#x'))!.id).toBe('root.0#P#x');
      });
    });

    describe('sync points', () => {
      it('creates once, counts each child once, and keeps the ids it counted', async () => {
        const scope = newScope();
        const sp = syncPointRecord(scope, 'root', 1, 3);
        expect(await store.createSyncPoint(sp)).toBe(true);
        expect(await store.createSyncPoint({ ...sp, counters: { ...sp.counters, total: 9 } })).toBe(false);
        expect(await store.getSyncPoint(scope, 'root', 1)).toEqual(sp);
        expect(await store.getSyncPoint(scope, 'root', 2)).toBeUndefined();

        const first = await store.recordChildEnd(scope, 'root', 1, 'root.10', 'succeeded');
        expect(first).toEqual({ applied: true, counters: { total: 3, succeeded: 1, failed: 0, cancelled: 0 } });
        const repeat = await store.recordChildEnd(scope, 'root', 1, 'root.10', 'failed');
        expect(repeat).toEqual({ applied: false, counters: { total: 3, succeeded: 1, failed: 0, cancelled: 0 } });
        expect((await store.recordChildEnd(scope, 'root', 1, 'root.2', 'failed')).counters).toEqual({
          total: 3, succeeded: 1, failed: 1, cancelled: 0,
        });
        expect((await store.recordChildEnd(scope, 'root', 1, 'root.9', 'cancelled')).counters).toEqual({
          total: 3, succeeded: 1, failed: 1, cancelled: 1,
        });
        const read = (await store.getSyncPoint(scope, 'root', 1))!;
        expect(await store.listCountedChildren(scope, 'root', 1)).toEqual(['root.2', 'root.9', 'root.10']);
        expect(read.counters).toEqual({ total: 3, succeeded: 1, failed: 1, cancelled: 1 });
        await expect(store.recordChildEnd(scope, 'root', 2, 'root.0', 'succeeded')).rejects.toBeInstanceOf(NotFoundError);
      });

      it('round-trips a sync point created with counts already in it', async () => {
        const scope = newScope();
        const sp: SyncPointRecord = {
          ...syncPointRecord(scope, 'root.3', 12, 4),
          counters: { total: 4, succeeded: 0, failed: 0, cancelled: 0 },
          waitFor: 2,
          maxFailedFraction: 0.25,
        };
        await store.createSyncPoint(sp);
        expect(await store.getSyncPoint(scope, 'root.3', 12)).toEqual(sp);
        await store.recordChildEnd(scope, 'root.3', 12, 'root.3.0', 'failed');
        expect((await store.recordChildEnd(scope, 'root.3', 12, 'root.3.0', 'succeeded')).applied).toBe(false);
        expect(await store.recordChildEnd(scope, 'root.3', 12, 'root.3.2', 'succeeded')).toEqual({
          applied: true,
          counters: { total: 4, succeeded: 1, failed: 1, cancelled: 0 },
        });
        // Counting never shows in the record: it reads back as created, with its counters.
        expect(await store.getSyncPoint(scope, 'root.3', 12)).toEqual({ ...sp, counters: { total: 4, succeeded: 1, failed: 1, cancelled: 0 } });
      });

      it('counts 200 concurrent child ends, each delivered twice, exactly; every call sees its own end', async () => {
        const scope = newScope();
        const total = 200;
        await store.createSyncPoint(syncPointRecord(scope, 'root', 1, total));
        const outcomeOf = (i: number): ChildOutcome => (i % 10 < 6 ? 'succeeded' : i % 10 < 9 ? 'failed' : 'cancelled');
        const calls: { child: string; outcome: ChildOutcome }[] = [];
        for (let i = 0; i < total; i++) calls.push({ child: `root.${i}`, outcome: outcomeOf(i) });
        // Each child twice, shuffled deterministically so duplicates interleave with everything else.
        const deliveries = [...calls, ...calls];
        let seed = 7;
        for (let i = deliveries.length - 1; i > 0; i--) {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          const j = seed % (i + 1);
          [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
        }
        const results = await Promise.all(
          deliveries.map((d) => store.recordChildEnd(scope, 'root', 1, d.child, d.outcome).then((r) => ({ ...d, ...r }))),
        );

        const applied = results.filter((r) => r.applied);
        expect(applied).toHaveLength(total);
        expect(new Set(applied.map((r) => r.child)).size).toBe(total);
        const expected = { total, succeeded: 120, failed: 60, cancelled: 20 };
        // Counters only grow, never pass the total, and the last end of all is seen complete.
        expect(results.every((r) => sum(r.counters) >= 1 && sum(r.counters) <= total && r.counters.total === total)).toBe(true);
        expect(results.some((r) => sum(r.counters) === total)).toBe(true);
        const sp = (await store.getSyncPoint(scope, 'root', 1))!;
        expect(sp.counters).toEqual(expected);
        expect(await store.listCountedChildren(scope, 'root', 1)).toEqual(calls.map((c) => c.child));
      });

      it('gives the aggregation claim to exactly one of 50 concurrent callers', async () => {
        const scope = newScope();
        await store.createSyncPoint(syncPointRecord(scope, 'root', 1, 2));
        const claims = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.claimAggregation(scope, 'root', 1, i % 2 ? 'fail' : 'resume', 1000 + i, WorkMark.settle('root', i))),
        );
        expect(claims.filter(Boolean)).toHaveLength(1);
        const winner = claims.indexOf(true);
        const sp = (await store.getSyncPoint(scope, 'root', 1))!;
        expect(sp).toMatchObject({ aggregatedAt: 1000 + winner, outcome: winner % 2 ? 'fail' : 'resume', aggregatedBy: WorkMark.settle('root', winner) });
        expect(await store.claimAggregation(scope, 'root', 1, 'resume', 1, WorkMark.settle('root', 1))).toBe(false);
        expect(await store.claimAggregation(scope, 'root', 7, 'resume', 1, WorkMark.settle('root', 7))).toBe(false);
        expect(await store.getSyncPoint(scope, 'root', 7)).toBeUndefined();
      });

      it("a batch's pool: every child past the window is claimed once, by one end each, concurrently and with duplicates; a repeat gets its claim back", async () => {
        const scope = newScope();
        // A batch of 250 children from 250 (the fan-out's second), window 10: DispatchBatch sent 250..259.
        const [first, count, window] = [250, 250, 10];
        const end = first + count;
        const claim = (ender: number, mayRepeat: boolean) => store.claimBatchChild(scope, 'root.1', 2, first, { ender, start: first + window, end, mayRepeat });
        // Every child's end claims, and every end is told twice at once (a duplicate, a retry).
        const enders = Array.from({ length: count }, (_, i) => first + i);
        const results = await Promise.all(enders.flatMap((ender) => [claim(ender, false).then((r) => ({ ender, r })), claim(ender, true).then((r) => ({ ender, r }))]));
        const fresh = results.filter((x) => x.r && !x.r.repeat);
        // Each child past the window claimed exactly once, by distinct enders, none past the batch.
        expect(fresh.map((x) => x.r!.index).sort((a, b) => a - b)).toEqual(Array.from({ length: count - window }, (_, i) => first + window + i));
        expect(new Set(fresh.map((x) => x.ender)).size).toBe(count - window);
        // A repeat that may repeat gets the same index its ender claimed; one that may not gets nothing.
        const claimedBy = new Map(fresh.map((x) => [x.ender, x.r!.index]));
        for (const x of results.filter((x) => x.r?.repeat)) expect(x.r!.index).toBe(claimedBy.get(x.ender));
        for (const ender of enders) {
          expect(await claim(ender, true)).toEqual(claimedBy.has(ender) ? { index: claimedBy.get(ender), repeat: true } : undefined);
          expect(await claim(ender, false)).toBeUndefined();
        }
        // Another batch (and another sync point) has its own pool; a batch sent whole by DispatchBatch has none to claim.
        expect(await store.claimBatchChild(scope, 'root.1', 2, 0, { ender: 3, start: 10, end: 250, mayRepeat: false })).toEqual({ index: 10, repeat: false });
        expect(await store.claimBatchChild(scope, 'root.1', 3, first, { ender: first, start: first + 1, end, mayRepeat: false })).toEqual({ index: first + 1, repeat: false });
        expect(await store.claimBatchChild(scope, 'root.1', 2, 500, { ender: 500, start: 502, end: 502, mayRepeat: true })).toBeUndefined();
      });

      it("a batch's pool costs one write a claim, under 2 write units with all 250 claims in it", async () => {
        let units = { writeUnits: 0, readUnits: 0 };
        const metered = await factory({ add: (_scope, u) => { units = { writeUnits: units.writeUnits + (u.writeUnits ?? 0), readUnits: units.readUnits + (u.readUnits ?? 0) }; } });
        const scope = newScope();
        for (let ender = 0; ender < 249; ender++) await metered.claimBatchChild(scope, 'root.9999', 1, 9750, { ender: 9750 + ender, start: 9751, end: 10_000, mayRepeat: false });
        const before = units;
        expect(await metered.claimBatchChild(scope, 'root.9999', 1, 9750, { ender: 9999, start: 9751, end: 10_000, mayRepeat: false })).toBeUndefined();
        // The full pool: every claim billed by the item's size, at most 2 units; the refused one 1 unit, no read.
        expect(units.writeUnits - before.writeUnits).toBe(1);
        expect(units.readUnits).toBe(0);
        expect(before.writeUnits).toBeGreaterThanOrEqual(249);
        expect(before.writeUnits).toBeLessThanOrEqual(2 * 249);
      });

      it('lists the sync points whose aggregation is not claimed', async () => {
        const scope = newScope();
        for (const [parent, seq] of [['root', 1], ['root', 2], ['root.0', 1], ['root.10', 1], ['root.2', 3]] as const) {
          await store.createSyncPoint(syncPointRecord(scope, parent, seq, 1));
        }
        await store.createBranches([branchRecord(scope, 'root')]);
        expect(await store.claimAggregation(scope, 'root', 1, 'resume', 5, WorkMark.settle('root', 1))).toBe(true);
        const open = await store.listOpenSyncPoints(scope);
        expect(open.map((s) => `${s.parentId}#${s.seq}`)).toEqual(['root#2', 'root.0#1', 'root.2#3', 'root.10#1']);
        expect(open[0]).toEqual(syncPointRecord(scope, 'root', 2, 1));
        expect(await store.listOpenSyncPoints(newScope())).toEqual([]);
      });
    });

    describe('wide fan-outs', () => {
      /**
       * Records every end of a `total`-child sync point twice, in a shuffled order, `parallel` at
       * a time, except the last `sample` ends of the first round: those one at a time, to measure
       * what one end costs when it comes alone (write units per end).
       */
      async function fanIn(total: number, parallel: number, sample: number) {
        const usage = new Map<string, CostCounters>();
        const sink: CostSink = { add: (scope, u) => {
          const c = usage.get(scope.runId) ?? emptyCost();
          for (const [k, v] of Object.entries(u)) c[k as keyof CostCounters] += v ?? 0;
          usage.set(scope.runId, c);
        } };
        const metered = await factory(sink);
        const scope = newScope();
        await metered.createSyncPoint(syncPointRecord(scope, 'root', 1, total));
        const outcome = (i: number): ChildOutcome => (i % 50 === 7 ? 'failed' : i % 100 === 99 ? 'cancelled' : 'succeeded');
        const order = Array.from({ length: total }, (_, i) => i);
        let seed = 11;
        for (let i = order.length - 1; i > 0; i--) {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          const j = seed % (i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
        const record = (i: number) => metered.recordChildEnd(scope, 'root', 1, `root.${i}`, outcome(i));
        const first = await mapLimit(order.slice(0, total - sample), parallel, record);
        const before = (usage.get(scope.runId) ?? emptyCost()).writeUnits;
        first.push(...(await mapLimit(order.slice(total - sample), 1, record)));
        const sampled = (usage.get(scope.runId) ?? emptyCost()).writeUnits - before;
        const again = await mapLimit(order, parallel, record);
        return { scope, first, again, store: metered, writeUnitsPerEnd: sampled / sample, expected: {
          total,
          succeeded: order.filter((i) => outcome(i) === 'succeeded').length,
          failed: order.filter((i) => outcome(i) === 'failed').length,
          cancelled: order.filter((i) => outcome(i) === 'cancelled').length,
        } };
      }

      it(`counts a ${wideChildren.toLocaleString('en')}-child fan-in with every end delivered twice exactly, at a flat cost per end`, async () => {
        // Many at once: ends of the same shard are written together (and repeats read together).
        const wide = await fanIn(wideChildren, 1_000, 200);
        expect(wide.first.every((r) => r.applied)).toBe(true);
        expect(wide.again.every((r) => !r.applied)).toBe(true);
        expect((await wide.store.getSyncPoint(wide.scope, 'root', 1))!.counters).toEqual(wide.expected);
        expect(wide.again.every((r) => sum(r.counters) === wideChildren)).toBe(true);
        const counted = await wide.store.listCountedChildren(wide.scope, 'root', 1);
        expect(counted).toHaveLength(wideChildren);
        expect(new Set(counted).size).toBe(wideChildren);
        // Recording an end alone costs the same late in a 10,000-child fan-in as in a 200-child one
        // (no item grows with the width).
        const narrow = await fanIn(200, 64, 200);
        expect(narrow.writeUnitsPerEnd).toBeGreaterThan(0);
        expect(wide.writeUnitsPerEnd).toBeLessThanOrEqual(narrow.writeUnitsPerEnd * 1.15);
      }, 600_000);

      it('keeps a wide spawn’s child specs in bounded items and reads any range back', async () => {
        const scope = newScope();
        await seedRun(scope);
        const specs = Array.from({ length: 10_000 }, (_, i) => ({ agent: 'Leaf', input: { i, pad: 'x'.repeat(40) }, type: 'SIMPLE' as const }));
        await store.putChildSpecs(scope, 'root#0#m-1', specs);
        await store.putChildSpecs(scope, 'root#0#m-1', specs); // idempotent
        expect(await store.getChildSpecs(scope, 'root#0#m-1', 0, 10_000)).toEqual(specs);
        expect(await store.getChildSpecs(scope, 'root#0#m-1', 4_321, 3_000)).toEqual(specs.slice(4_321, 7_321));
        expect(await store.getChildSpecs(scope, 'root#0#m-1', 9_999, 1)).toEqual([specs[9_999]]);
        await expect(store.getChildSpecs(scope, 'root#0#m-2', 0, 1)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.getChildSpecs(scope, 'root#0#m-1', 9_999, 2)).rejects.toBeInstanceOf(NotFoundError);
        // Nothing of it shows as a branch or a sync point.
        expect(await store.listBranches(scope)).toEqual([]);
        expect(await store.listOpenSyncPoints(scope)).toEqual([]);
      });

      it('reads only the stored chunks that hold the range asked for, so a slice costs the same however wide the spawn', async () => {
        const readUnits = new Map<string, number>();
        const metered = await factory({ add: (s, u) => readUnits.set(s.runId, (readUnits.get(s.runId) ?? 0) + (u.readUnits ?? 0)) });
        // ~100 bytes a spec: a 256 KB chunk holds ~2,500 of them.
        const spec = (i: number) => ({ agent: 'Leaf', input: { i, pad: 'x'.repeat(60) }, type: 'SIMPLE' as const });
        const sliceCost = async (width: number, offset: number, count: number) => {
          const scope = newScope();
          const specs = Array.from({ length: width }, (_, i) => spec(i));
          await metered.putChildSpecs(scope, 'root#0#m-1', specs);
          const before = readUnits.get(scope.runId) ?? 0;
          expect(await metered.getChildSpecs(scope, 'root#0#m-1', offset, count)).toEqual(specs.slice(offset, offset + count));
          return (readUnits.get(scope.runId) ?? 0) - before;
        };
        const narrow = await sliceCost(200, 150, 50);
        expect(narrow).toBeGreaterThan(0);
        // The last 50 of 20,000 (8 chunks): one chunk read, not eight.
        const wide = await sliceCost(20_000, 19_950, 50);
        expect(wide).toBeLessThanOrEqual(Math.max(narrow, 64) + 1);
        // A range across a chunk boundary reads the two chunks it spans, and the specs come back in order.
        const across = await sliceCost(20_000, 2_000, 1_000);
        expect(across).toBeLessThanOrEqual(2 * 64 + 2);
      });

      it('adds usage to a run’s cost record, counting each addition’s own write', async () => {
        const scope = newScope();
        expect(await store.getCost(scope)).toEqual(emptyCost());
        await store.addCost(scope, { readUnits: 2.5, writeUnits: 4, sqsRequests: 1.2 });
        await store.addCost(scope, { stepFunctionsTransitions: 3, eventBridgeEntries: 2 });
        expect(await store.getCost(scope)).toEqual({ ...emptyCost(), readUnits: 2.5, writeUnits: 6, sqsRequests: 1.2, stepFunctionsTransitions: 3, eventBridgeEntries: 2 });
        const meter = new CostMeter();
        meter.add(scope, { writeUnits: 1 });
        meter.add(scope, { writeUnits: 2 });
        await meter.flush(store);
        await meter.flush(store); // nothing left: no write
        expect((await store.getCost(scope)).writeUnits).toBe(10);
      });
    });

    describe('values of any size (the claim check)', () => {
      const big = 'x'.repeat(512_000);

      it('keeps a branch value past 400 KB apart, and reads it back whole, at the cost of a small write', async () => {
        const scope = newScope();
        const meter = new CostMeter();
        const metered = await factory(meter);
        await metered.createBranches(['root.3', 'root.4', 'root.5'].map((id) => branchRecord(scope, id, 'root')));
        const cost = async (write: () => Promise<unknown>) => {
          await meter.flush(metered);
          const before = (await metered.getCost(scope)).writeUnits;
          await write();
          await meter.flush(metered);
          return (await metered.getCost(scope)).writeUnits - before;
        };
        const small = await cost(() => metered.updateBranch(scope, 'root.4', 0, { result: 'small', status: 'COMPLETED' }));
        const large = await cost(() => metered.updateBranch(scope, 'root.3', 0, { result: big, status: 'COMPLETED' }));
        // The item holds a reference, not the value: the write costs what a small one does.
        expect(large).toBeLessThanOrEqual(small + 1);
        expect((await metered.getBranch(scope, 'root.3'))!.result).toBe(big);
        expect((await metered.getBranches(scope, ['root.3']))[0].result).toBe(big);
        expect((await metered.listChildren(scope, 'root')).find((b) => b.id === 'root.3')!.result).toBe(big);
        const moved = await metered.transitionBranch(scope, 'root.5', ['PENDING'], 'RUNNING', { input: big });
        expect(moved!.input).toBe(big);
        expect((await metered.getBranch(scope, 'root.5'))!.input).toBe(big);
      });

      it('getValue gives a value kept by reference (by its content-addressed ref) to its run only; NotFoundError for any other', async () => {
        const scope = newScope();
        await seedRun(scope);
        await store.createBranches([branchRecord(scope, 'root.6', 'root')]);
        expect(await store.updateBranch(scope, 'root.6', 0, { result: big, status: 'COMPLETED' })).toBeDefined();
        const ref = blobRef(JSON.stringify(big));
        expect(await store.getValue(scope, ref)).toBe(JSON.stringify(big));
        await expect(store.getValue(newScope(), ref)).rejects.toThrow(NotFoundError);
        await expect(store.getValue(scope, 'e'.repeat(64))).rejects.toThrow(NotFoundError);
      });

      it('keeps several large values of one item, each apart (none of them alone would fit beside the others)', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root', null, { input: 'i'.repeat(300_000) })]);
        const updated = await store.updateBranch(scope, 'root', 0, { result: 'a'.repeat(220_000), memory: [{ role: 'user', agent: 'A', content: 'b'.repeat(220_000) }] });
        expect(updated?.version).toBe(1);
        const branch = (await store.getBranch(scope, 'root'))!;
        expect(branch.input).toBe('i'.repeat(300_000));
        expect(branch.result).toBe('a'.repeat(220_000));
        expect(branch.memory[0].content).toBe('b'.repeat(220_000));
        expect((await store.listBranches(scope))[0]).toEqual(branch);
      });

      it('keeps large run requests and results, and large branch memories at creation', async () => {
        const scope = newScope();
        expect(await store.createRun(runRecord(scope, { request: big }))).toBe(true);
        expect((await store.getRun(scope))!.request).toBe(big);
        expect(await store.finishRun(scope, 'COMPLETED', { result: { big } })).toBe(true);
        expect((await store.getRun(scope))!.result).toEqual({ big });
        const batch = [branchRecord(scope, 'root'), branchRecord(scope, 'root.0', 'root', { memory: [{ role: 'user', agent: 'A', content: big }] })];
        expect(await store.createBranches(batch)).toEqual(['root', 'root.0']);
        expect((await store.getBranch(scope, 'root.0'))!.memory[0].content).toBe(big);
      });

      it('refuses a value past the ceiling of one value, naming it, without writing anything', async () => {
        const scope = newScope();
        await store.createBranches([branchRecord(scope, 'root')]);
        const huge = 'h'.repeat(MAX_VALUE_BYTES + 1);
        await expect(store.updateBranch(scope, 'root', 0, { result: huge })).rejects.toThrow(/^branch root result is \d+ bytes; a value is limited to 64 MB$/);
        expect((await store.getBranch(scope, 'root'))!.version).toBe(0);
      });

      it('still refuses an item too large for what is not a value (a sync point), without writing anything', async () => {
        const scope = newScope();
        const sp = { ...syncPointRecord(scope, 'root', 1, 1), executionName: big };
        await expect(store.createSyncPoint(sp)).rejects.toThrow(PayloadTooLargeError);
        expect(await store.getSyncPoint(scope, 'root', 1)).toBeUndefined();
      });
    });

    describe('values', () => {
      it('round-trips JSON values unchanged (40 levels deep, unicode, numbers)', async () => {
        const scope = newScope();
        const value = awkwardJson();
        const run = runRecord(scope, {
          request: value,
          agents: { 'Ägent 🌍': { kind: 'script', allowed: ['B'], responses: [value] } },
        });
        await store.createRun(run);
        expect(await store.getRun(scope)).toEqual(run);

        const branch = branchRecord(scope, 'root', null, {
          input: value,
          memory: [{ role: 'assistant', agent: 'Ägent 🌍', content: value, inherited: true }],
          peers: ['a', 'b'],
          maxTurns: 6,
          inheritMemory: false,
          usage: { inputTokens: 10, outputTokens: 20 },
          error: '',
          taskToken: 'tok/+=🙂',
        });
        await store.createBranches([branch]);
        expect(await store.getBranch(scope, 'root')).toEqual(branch);
        const spawn = {
          seq: 1, step: 0, firstIndex: 0, children: 1, waitFor: 2, aggregator: { kind: 'agent' as const, agent: 'Ä' },
          metadata: { value }, inheritMemory: true, pendingGroups: [[{ agent: 'W', input: value, type: 'SIMPLE' as const }]],
          groupResults: [value, null], grouped: true, childSpecs: [], aggregationOf: 0,
        };
        const updated = await store.updateBranch(scope, 'root', 0, { result: value, spawn, advancedBy: WorkMark.step('m-1') });
        expect(updated).toEqual({ ...branch, result: value, spawn, advancedBy: 'm-1', version: 1 });
        expect(await store.getBranch(scope, 'root')).toEqual(updated);
        for (const scalar of [null, 0, '', 'text', false, [], {}]) {
          const current = (await store.getBranch(scope, 'root'))!;
          const next = await store.updateBranch(scope, 'root', current.version, { result: scalar, input: scalar });
          expect(next!.result).toEqual(scalar);
          expect((await store.getBranch(scope, 'root'))!.input).toEqual(scalar);
        }
        await store.finishRun(scope, 'COMPLETED', { result: value, endedAt: 1 });
        expect((await store.getRun(scope))!.result).toEqual(value);
      });
    });
  });
}

/**
 * BranchStore.listBranchesPage on a store (with the conformance suite on each store; apart from it,
 * so that the journal suite's reopen schedule stays the suite's own).
 */
export function describeBranchStorePages(name: string, factory: BranchStoreFactory): void {
  describe(`BranchStore pages: ${name}`, () => {
    let store: BranchStore;
    beforeAll(async () => {
      store = await factory();
    });

      it('pages a run’s branches: the pages join to exactly its branches, each page at most the limit', async () => {
        const scope = newScope();
        const ids = ['root', ...Array.from({ length: 24 }, (_, i) => `root.${i}`)];
        await store.createBranches(ids.map((id) => branchRecord(scope, id, id === 'root' ? null : 'root')));
        await store.createBranches([branchRecord(newScope(), 'root')]);
        const seen: string[] = [];
        let after: string | undefined;
        for (let pages = 0; ; pages++) {
          expect(pages).toBeLessThan(10);
          const page = await store.listBranchesPage(scope, { limit: 7, ...(after ? { after } : {}) });
          expect(page.branches.length).toBeLessThanOrEqual(7);
          seen.push(...page.branches.map((b) => b.id));
          if (!page.more) break;
          after = page.branches.at(-1)?.id;
          if (!after) break;
        }
        expect(seen).toHaveLength(ids.length);
        expect([...seen].sort()).toEqual([...ids].sort());
        // The store's key order: the ids as strings.
        expect(seen).toEqual([...ids].sort());
        const first = await store.listBranchesPage(scope, { limit: 7 });
        expect(first.branches[0]).toEqual(branchRecord(scope, 'root', null));
        expect(await store.listBranchesPage(newScope(), { limit: 5 })).toEqual({ branches: [], more: false });
      });

      it('reads a page larger than one DynamoDB Query answers (1 MB) whole', async () => {
        const scope = newScope();
        // 1,200 branches of some 1.3 KB each (their results kept in the item, under the 1 KB claim-check bound).
        const ids = ['root', ...Array.from({ length: 1_199 }, (_, i) => `root.${i}`)];
        const result = { summary: 'x'.repeat(900) };
        await store.createBranches(ids.map((id) => branchRecord(scope, id, id === 'root' ? null : 'root', { status: 'COMPLETED', result })));
        const page = await store.listBranchesPage(scope, { limit: 1_500 });
        expect([page.branches.length, page.more]).toEqual([ids.length, false]);
        expect(page.branches.map((b) => b.id)).toEqual([...ids].sort());
        const part = await store.listBranchesPage(scope, { limit: 1_100 });
        expect([part.branches.length, part.more]).toEqual([1_100, true]);
      }, 120_000);
  });
}

/** BranchStore.claimRunId: an idempotency key's run id, kept once (a conditional put). */
export function describeBranchStoreRunKeys(name: string, factory: BranchStoreFactory): void {
  describe(`BranchStore run keys: ${name}`, () => {
    let store: BranchStore;
    beforeAll(async () => {
      store = await factory();
    });

    it('keeps the first run id for a key, also under concurrent claims; another key or team keeps its own', async () => {
      const key = randomUUID().replace(/-/g, '');
      expect(await store.claimRunId('team-a', key, 'run-1')).toBe('run-1');
      expect(await store.claimRunId('team-a', key, 'run-2')).toBe('run-1');
      const other = randomUUID().replace(/-/g, '');
      const claims = await Promise.all(Array.from({ length: 8 }, (_, i) => store.claimRunId('team-a', other, `run-c${i}`)));
      expect(new Set(claims).size).toBe(1);
      expect(await store.claimRunId('team-b', key, 'run-3')).toBe('run-3');
      expect(await store.getRun({ team: 'team-a', runId: 'run-1' })).toBeUndefined();
    });
  });
}

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cappedResult, syncPointResults } from '../../core/events';
import { main } from '../../local/cli';
import { RecentIds } from '../../local/hooks';
import { startLocalSpawner } from '../../local/library';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-hooks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Call = [string, ...unknown[]];

// Hooks run in a worker thread: they record to a file (OUT, replaced per run) the test reads.
const recorder = (extra = '') => `
import { appendFileSync } from 'node:fs';
const calls = { push: (call) => appendFileSync(OUT, JSON.stringify(call) + '\\n') };
export const onRunStarted = (run) => { calls.push(['onRunStarted', run.status]); };
export const onBranchCreated = (b) => { calls.push(['onBranchCreated', b.id, b.agent, b.depth]); };
export const onBranchCompleted = (b, result) => { calls.push(['onBranchCompleted', b.id, result]); ${extra} };
export const onBranchFailed = (b, error) => { calls.push(['onBranchFailed', b.id, error]); };
export const onSynchronizationPoint = (parentId, results, sp) => { calls.push(['onSynchronizationPoint', parentId, results, sp.outcome, sp.counters, sp.completion_reason]); };
export async function onRunEnded(run) { await new Promise((r) => setTimeout(r, 5)); calls.push(['onRunEnded', run.status, run.result]); }
`;

async function runWithHooks(hooksSource: string): Promise<{ code: number; doc: any; err: string; calls: Call[] }> {
  const name = `hooks-${Math.random().toString(36).slice(2)}`;
  const hooks = join(dir, `${name}.mjs`);
  const out = join(dir, `${name}.jsonl`);
  writeFileSync(out, '');
  writeFileSync(hooks, `const OUT = ${JSON.stringify(out)};\n${hooksSource}`);
  const io = captureIo();
  const code = await main(['run', 'examples/hierarchical.yaml', '--json', '--hooks', hooks], io);
  const calls = readFileSync(out, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Call);
  return { code, doc: JSON.parse(io.outText()), err: io.errText(), calls };
}

describe('--hooks', () => {
  it('receives every created and completed branch with its result, and each sync point with its results', async () => {
    const { code, doc, calls } = await runWithHooks(recorder());
    expect(code).toBe(0);
    const ids = doc.branches.map((b: any) => b.id).sort();
    expect(ids).toHaveLength(9);
    expect(calls[0]).toEqual(['onRunStarted', 'RUNNING']);
    expect(calls.at(-1)).toEqual(['onRunEnded', 'COMPLETED', doc.result]);
    expect(calls.filter((c) => c[0] === 'onBranchCreated').map((c) => c[1]).sort()).toEqual(ids);
    const completed = new Map(calls.filter((c) => c[0] === 'onBranchCompleted').map((c) => [c[1], c[2]]));
    expect([...completed.keys()].sort()).toEqual(ids);
    for (const b of doc.branches) expect(completed.get(b.id)).toEqual(b.result);
    const syncs = calls.filter((c) => c[0] === 'onSynchronizationPoint');
    expect(syncs.map((c) => c[1]).sort()).toEqual(['root', 'root.0', 'root.1']);
    for (const [, parentId, results, outcome, counters, completionReason] of syncs) {
      const children = doc.branches.filter((b: any) => b.parentId === parentId);
      expect(results).toEqual(children.map((c: any) => ({ branchId: c.id, agent: c.agent, status: 'COMPLETED', result: c.result })));
      expect(outcome).toBe('resume');
      expect(counters).toEqual({ total: children.length, succeeded: children.length, failed: 0, cancelled: 0 });
      expect(completionReason).toBe('ALL_COMPLETED');
    }
  });

  it('a hook that throws is reported and does not change the run', async () => {
    const clean = await runWithHooks(recorder());
    const throwing = await runWithHooks(recorder('throw new Error("hook bug " + b.id);'));
    expect(throwing.code).toBe(0);
    expect(throwing.doc.status).toBe('COMPLETED');
    expect(throwing.doc.result).toEqual(clean.doc.result);
    expect(throwing.doc.branches.map((b: any) => [b.id, b.status])).toEqual(clean.doc.branches.map((b: any) => [b.id, b.status]));
    expect(throwing.err).toMatch(/warning: hook onBranchCompleted threw on BranchCompleted root\.0\.0: Error: hook bug root\.0\.0/);
    expect(throwing.err.match(/warning: hook onBranchCompleted threw/g)).toHaveLength(9);
    // The hooks after the throwing one still ran.
    expect(throwing.calls.at(-1)?.[0]).toBe('onRunEnded');
  });

  it('a hooks module that exports no hook, or does not load, is exit 2', async () => {
    const none = join(dir, 'none.mjs');
    writeFileSync(none, 'export const unrelated = 1;\n');
    for (const [path, message] of [[none, /exports none of onRunStarted/], [join(dir, 'missing.mjs'), /--hooks: cannot load/]] as const) {
      const io = captureIo();
      expect(await main(['run', 'examples/simple-parallel.yaml', '--hooks', path], io)).toBe(2);
      expect(io.errText()).toMatch(message);
    }
  });
});

describe('the library API', () => {
  it('runs a scenario object and resolves with its document; hooks get full results even past the event cap', async () => {
    const big = 'x'.repeat(40 * 1024);
    const completed = new Map<string, unknown>();
    const syncResults: unknown[] = [];
    const spawner = await startLocalSpawner({
      hooks: {
        onBranchCompleted: (b, result) => void completed.set(b.id, result),
        onSynchronizationPoint: (_parent, results) => void syncResults.push(results),
        onBranchCreated: () => {
          throw new Error('ignored');
        },
      },
    });
    const events: any[] = [];
    spawner.runtime.bus.subscribe((e) => void events.push(e));
    try {
      const doc = await spawner.run({
        name: 'lib',
        request: 'go',
        entry: 'P',
        agents: {
          P: {
            kind: 'script',
            allowed: ['W'],
            responses: [{ next_action: 'parallel_invoke', agents: ['W', 'W'] }, { next_action: 'final_response', content: 'ok' }],
          },
          W: { kind: 'script', responses: [{ next_action: 'final_response', content: big }] },
        },
      });
      expect(doc).toMatchObject({ status: 'COMPLETED', result: 'ok' });
      expect(completed.get('root.0')).toBe(big);
      expect(syncResults).toEqual([[
        { branchId: 'root.0', agent: 'W', status: 'COMPLETED', result: big },
        { branchId: 'root.1', agent: 'W', status: 'COMPLETED', result: big },
      ]]);
      expect(spawner.hookErrors.map((e) => e.hook)).toEqual(['onBranchCreated', 'onBranchCreated', 'onBranchCreated']);
      // The events themselves stay small: the result is marked, with the ids to fetch it.
      const done = events.find((e) => e.type === 'BranchCompleted' && e.branchId === 'root.0');
      expect(done.detail).toMatchObject({ resultTruncated: true, resultBytes: big.length + 2 });
      expect(done.detail.result).toBeUndefined();
      const sync = events.find((e) => e.type === 'SyncPointReached');
      expect(sync.detail.resultsTruncated).toBe(true);
      expect(sync.detail.results[0].result).toBeUndefined();
    } finally {
      await spawner.close();
    }
  });
});

describe('results in events', () => {
  it('caps a result and a sync point\'s results, marking what was left out', () => {
    expect(cappedResult({ a: 1 }, 100)).toEqual({ result: { a: 1 } });
    expect(cappedResult('y'.repeat(200), 100)).toEqual({ resultTruncated: true, resultBytes: 202 });
    const children = [
      { id: 'r.0', agent: 'A', status: 'COMPLETED' as const, result: 'a'.repeat(60) },
      { id: 'r.1', agent: 'A', status: 'COMPLETED' as const, result: 'b'.repeat(60) },
      { id: 'r.2', agent: 'B', status: 'FAILED' as const, error: 'boom' },
    ];
    expect(syncPointResults(children, 100)).toEqual({
      results: [
        { branchId: 'r.0', agent: 'A', status: 'COMPLETED', result: 'a'.repeat(60) },
        { branchId: 'r.1', agent: 'A', status: 'COMPLETED', resultTruncated: true },
        { branchId: 'r.2', agent: 'B', status: 'FAILED', error: 'boom' },
      ],
      resultsTruncated: true,
    });
  });
});

describe('RecentIds (the hooks drop repeats by it)', () => {
  it('says new once per id, and forgets the oldest past its capacity', () => {
    const seen = new RecentIds(2);
    expect([seen.add('a'), seen.add('a'), seen.add('b'), seen.add('a')]).toEqual([true, false, true, false]);
    expect(seen.add('c')).toBe(true); // 'a' is forgotten
    expect([seen.add('b'), seen.add('a'), seen.add(undefined), seen.add(undefined)]).toEqual([false, true, true, true]);
  });
});

/** The terminal live tree: the frame it draws, and that it is drawn only on a TTY without --json. */
import { describe, expect, it } from 'vitest';
import type { BranchRecord } from '../../core/model';
import { main } from '../../local/cli';
import { progressFrame } from '../../local/progress';
import { captureIo } from '../support/io';

const ESC = '\x1b[';

const b = (id: string, status: BranchRecord['status'], agent = 'A', error?: string): BranchRecord => ({
  team: 't', runId: 'r', id, parentId: id === 'root' ? null : id.slice(0, id.lastIndexOf('.')),
  parentSeq: id === 'root' ? null : 1, depth: id.split('.').length - 1, type: id === 'root' ? 'NESTED' : 'SIMPLE',
  entryAgent: agent, agent, status, version: 1, stepCount: 1, invalidCount: 0, refusalCount: 0,
  input: null, memory: [], childCount: 0, createdAt: 0, ...(error ? { error } : {}),
});

const tree = [
  b('root', 'WAITING', 'Planner'),
  b('root.0', 'PENDING', 'Fetcher'),
  b('root.1', 'RUNNING', 'Fetcher'),
  b('root.2', 'WAITING', 'Lead'),
  b('root.2.0', 'COMPLETED', 'Worker'),
  b('root.2.1', 'FAILED', 'Worker', 'agent Worker failed: boom'),
  b('root.2.2', 'TIMED_OUT', 'Worker'),
  b('root.3', 'CANCELLED', 'Fetcher'),
  b('root.4', 'COMPLETED', 'Fetcher'),
];

describe('progressFrame', () => {
  it('heads the tree with the counts by status and the elapsed time', () => {
    const [head, ...lines] = progressFrame(tree, 12_345, 30, false).split('\n');
    // PENDING (not started yet) apart from RUNNING; failed counts FAILED and TIMED_OUT.
    expect(head).toBe('created 9 · pending 1 · running 1 · waiting 2 · done 2 · failed 2 · cancelled 1 · 12.3s');
    expect(lines).toHaveLength(9);
    expect(lines[0]).toBe('root Planner (nested) [WAITING]');
    expect(lines).toContain('│  ├─ root.2.1 Worker (simple) [FAILED] agent Worker failed: boom');
    expect(lines[lines.length - 1]).toBe('└─ root.4 Fetcher (simple) [COMPLETED]');
  });

  it('counts an empty run and formats elapsed time to a tenth of a second', () => {
    expect(progressFrame([], 0, 30, false)).toBe('created 0 · pending 0 · running 0 · waiting 0 · done 0 · failed 0 · cancelled 0 · 0.0s');
    expect(progressFrame([b('root', 'RUNNING')], 61_049, 30, false).split('\n')[0]).toMatch(/· 61\.0s$/);
  });

  it('truncates a tall tree to maxLines, saying how many branches are left out', () => {
    const wide = [b('root', 'WAITING'), ...Array.from({ length: 40 }, (_, i) => b(`root.${i}`, 'RUNNING'))];
    const [head, ...lines] = progressFrame(wide, 1_000, 10, false).split('\n');
    expect(head).toMatch(/^created 41 · pending 0 · running 40 /);
    expect(lines).toHaveLength(10);
    expect(lines[8]).toBe('├─ root.7 A (simple) [RUNNING]');
    expect(lines[9]).toBe('… 32 more branches');
    // Exactly maxLines branches fit without a marker.
    expect(progressFrame(wide.slice(0, 10), 0, 10, false).split('\n')).toHaveLength(11);
  });

  it('colours each status (and only the status) when asked, and never otherwise', () => {
    const painted = progressFrame(tree, 0, 30, true);
    expect(painted).toContain(`${ESC}32m[COMPLETED]${ESC}0m`);
    expect(painted).toContain(`${ESC}31m[FAILED]${ESC}0m`);
    expect(painted.split('\n')[0]).not.toContain(ESC);
    expect(painted.replace(/\x1b\[\d+m/g, '')).toBe(progressFrame(tree, 0, 30, false));
    expect(progressFrame(tree, 0, 30, false)).not.toContain(ESC);
  });
});

describe('branch-spawner run: progress only on a TTY', () => {
  it('draws the live tree (counts and colours) when stdout is a TTY', async () => {
    const io = captureIo();
    Object.assign(io.out, { isTTY: true, rows: 40 });
    expect(await main(['run', 'examples/simple-parallel.yaml'], io)).toBe(0);
    const out = io.outText();
    // The final frame is always drawn when the run ends, whatever the refresh timer managed.
    expect(out).toMatch(/created 4 · pending 0 · running 0 · waiting 0 · done 4 · failed 0 · cancelled 0 · [\d.]+s/);
    expect(out).toContain(`${ESC}32m[COMPLETED]${ESC}0m`);
    expect(out).toMatch(/run \S+ COMPLETED in/);
  });

  it('writes no progress noise without a TTY: no counts line, no escape codes', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml'], io)).toBe(0);
    expect(io.outText()).not.toContain(ESC);
    expect(io.outText()).not.toMatch(/created \d+ · pending/);
    expect(io.errText()).toBe('');
  });

  it('--json on a TTY prints exactly one JSON document and nothing else', async () => {
    const io = captureIo();
    Object.assign(io.out, { isTTY: true, rows: 40 });
    expect(await main(['run', 'examples/simple-parallel.yaml', '--json'], io)).toBe(0);
    const out = io.outText();
    expect(out).not.toContain(ESC);
    expect(out.endsWith('\n')).toBe(true);
    expect(out.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(out)).toMatchObject({ status: 'COMPLETED', metrics: { totalCreated: 4 } });
    expect(io.errText()).toBe('');
  });
});

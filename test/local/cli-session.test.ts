// Long-running: started first (vitest.config.ts).
/**
 * What a user at a terminal meets: `--version`, one JSON document from `run --json` even for an
 * invalid scenario, the run id on stderr for `run --data` and the list of unfinished runs from
 * `resume --data`, and Ctrl-C (a real SIGINT to a real process) cancelling the run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { recordDataRun } from '../../local/data-runs';
import { DEFAULT_FAILURE_POLICY, DEFAULT_LIMITS } from '../../core/model';
import { startLocalEngines } from '../../local/embedded-engines';
import { LOCAL_TEAM } from '../../local/runtime';
import { captureIo } from '../support/io';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bs-cli-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// Children that take a minute: a run that is still going when it is interrupted.
const SLOW = `
name: slow
request: go
entry: Lead
limits: { maxConcurrentBranches: 50, maxFanOut: 50 }
agents:
  Lead:
    kind: script
    allowed: [Worker]
    responses:
      - { next_action: parallel_invoke, agents: [${Array.from({ length: 40 }, () => 'Worker').join(', ')}] }
      - { next_action: final_response, content: "$input" }
  Worker:
    kind: script
    responses: [ { $delayMs: 60000, next_action: final_response, content: late } ]
`;

describe('branch-spawner --version', () => {
  it('prints the package version and exits 0', async () => {
    const io = captureIo();
    expect(await main(['--version'], io)).toBe(0);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(io.outText()).toBe(`${version}\n`);
  });
});

describe('run --json on an invalid scenario', () => {
  it('prints one JSON document with the error on stdout and exits 2', async () => {
    const path = file('bad.yaml', 'name: x\nentry: A\nagents:\n  A: { kind: telepathy }\n');
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(2);
    const lines = io.outText().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      runId: null,
      status: 'INVALID',
      error: expect.stringContaining(`${path}: agents.A.kind`),
      field: 'agents.A.kind',
      branches: [],
    });
    expect(io.errText()).toContain('agents.A.kind');
  });
});

describe('run --data and resume --data without an id', () => {
  it('prints the run id on stderr, and lists only the runs that did not end', async () => {
    const data = join(dir, 'data');
    const io = captureIo();
    const quick = file('quick.yaml', 'name: quick\nentry: A\nagents:\n  A: { kind: script, responses: [ { next_action: final_response, content: 1 } ] }\n');
    expect(await main(['run', quick, '--data', data, '--json'], io)).toBe(0);
    const finishedId = JSON.parse(io.outText()).runId;
    expect(io.errText()).toContain(`run ${finishedId} started; its state is kept in ${data} (resume with: npx branch-spawner resume ${finishedId} --data ${data})`);

    // A run whose process died while it was running: its record says RUNNING (the folder opened
    // on the tier that wrote it, as resume opens it).
    const engines = await startLocalEngines({ dataDir: data });
    const unfinishedId = 'interrupted-run';
    try {
      await engines.store.createRun({
        team: LOCAL_TEAM,
        runId: unfinishedId,
        name: 'interrupted',
        status: 'RUNNING',
        request: null,
        entry: 'A',
        agents: { A: { kind: 'script', responses: [1] } },
        limits: { ...DEFAULT_LIMITS },
        failurePolicy: { ...DEFAULT_FAILURE_POLICY },
        createdAt: Date.now(),
        branchCount: 1,
      });
      await recordDataRun(data, unfinishedId, 'interrupted', 'interrupted.yaml');
    } finally {
      await engines.close();
    }

    const listing = captureIo();
    expect(await main(['resume', '--data', data], listing)).toBe(0);
    const out = listing.outText();
    expect(out).toContain(`unfinished runs in ${data}`);
    expect(out).toMatch(new RegExp(`^${unfinishedId}  interrupted  interrupted\\.yaml  started `, 'm'));
    expect(out).not.toContain(finishedId);
  });

  it('says so when the folder has no recorded run', async () => {
    const io = captureIo();
    expect(await main(['resume', '--data', join(dir, 'empty')], io)).toBe(0);
    expect(io.outText()).toMatch(/^no runs recorded in /);
  });
});

describe('Ctrl-C on run', () => {
  function startRun(data: string, extra: string[] = []) {
    const child = spawn(process.execPath, [join(ROOT, 'bin/branch-spawner.mjs'), 'run', file('slow.yaml', SLOW), '--data', data, ...extra], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    const stderrLine = (pattern: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () => pattern.test(err) && resolve();
        child.stderr.on('data', (d) => {
          err += d;
          check();
        });
      });
    const started = stderrLine(/run \S+ started/);
    const cancelling = stderrLine(/cancelling the run/);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, started, cancelling, exited, out: () => out, err: () => err };
  }

  it('the first Ctrl-C cancels the run: RunCancelled, cancelled branches, the tree printed, exit 130', async () => {
    const run = startRun(join(dir, 'ctrl-c-once'));
    await run.started;
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.err()).toContain('cancelling the run (Ctrl-C again to exit at once)');
    // Whether the signal came before or after the spawn, every branch there is was cancelled.
    expect(run.out()).toMatch(/^root Lead \((simple|nested)\) \[CANCELLED\]/m);
    expect(run.out()).toMatch(/run \S+ CANCELLED in [\d.]+s — (\d+) branches \(0 completed, 0 failed, 0 timed out, \1 cancelled\), max depth \d, success rate —/);
  });

  it('a second Ctrl-C exits at once, without waiting for the run to end', async () => {
    // A hook that never returns holds the end of the run after the first Ctrl-C (otherwise a
    // fast engine may finish cancelling before the second one arrives).
    const hold = file('hold-end.mjs', 'export function onRunEnded() { return new Promise(() => {}); }\n');
    const run = startRun(join(dir, 'ctrl-c-twice'), ['--hooks', hold]);
    await run.started;
    run.child.kill('SIGINT');
    await run.cancelling;
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.err()).toContain('exiting without waiting for the run to end');
    expect(run.out()).not.toContain('result:');
  });
});

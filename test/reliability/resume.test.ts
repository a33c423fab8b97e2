// Long-running: started first (vitest.config.ts).
/**
 * Restart: a `run --data <dir>` process is killed (SIGKILL) while branches are running; `resume
 * <runId> --data <dir>` carries the run on to the same result. The table and the queues are kept
 * on disk (dynalite, fauxqs); the fan-outs the dead process held are started again.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { main } from '../../local/cli';
import { LocalRuntime } from '../../local/runtime';
import { captureIo } from '../support/io';
import { checkRunInvariants, syncPointsOf } from './support';
import { readTrace } from './contract-support';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE = process.execPath;

// Six workers, two at a time, each a hand-off to a checker: about 3 s of work, so a kill lands
// with some children done, some running and some not dispatched yet.
const SCENARIO = `
name: slow-team
request: go
entry: Lead
limits: { maxConcurrentBranches: 2 }
agents:
  Lead:
    kind: script
    allowed: [Worker]
    responses:
      - { next_action: parallel_invoke, agents: [Worker, Worker, Worker, Worker, Worker, Worker], action_input: { Worker: job } }
      - { next_action: final_response, content: { report: "$input" } }
  Worker:
    kind: script
    allowed: [Checker]
    responses: [ { $delayMs: 600, next_action: invoke_agent, action_input: { agent: Checker, input: "checked job" } } ]
  Checker:
    kind: script
    responses: [ { $delayMs: 300, next_action: final_response, content: "$input" } ]
`;

/** Resolves once `condition` holds for the trace file (watched, not polled). */
function whenTrace(dir: string, trace: string, condition: (events: LifecycleEvent[]) => boolean): Promise<LifecycleEvent[]> {
  return new Promise((resolve) => {
    const check = () => {
      const events = readTrace(trace);
      if (condition(events)) {
        watcher.close();
        resolve(events);
      }
    };
    const watcher = watch(dir, check);
    check();
  });
}

const KILL_POINTS: { when: string; condition: (events: LifecycleEvent[]) => boolean }[] = [
  {
    when: 'as soon as the children exist (none has run)',
    condition: (events) => events.filter((e) => e.type === 'BranchCreated' && e.branchId !== 'root').length >= 6,
  },
  {
    // The next two are running, two more were never dispatched.
    when: 'once two workers finished',
    condition: (events) => events.filter((e) => e.type === 'BranchCompleted' && e.branchId !== 'root').length >= 2,
  },
];

describe('resume after the process was killed', () => {
  it.concurrent.each(KILL_POINTS)('a run killed (SIGKILL) $when resumes on the same data and completes with the right result', async ({ condition }) => {
    const dir = mkdtempSync(join(tmpdir(), 'bs-resume-'));
    const data = join(dir, 'data');
    const trace = join(dir, 'trace.jsonl');
    const scenario = join(dir, 'slow-team.yaml');
    writeFileSync(scenario, SCENARIO);

    const child = spawn(NODE, [join(ROOT, 'bin/branch-spawner.mjs'), 'run', scenario, '--data', data, '--trace', trace, '--json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let childErr = '';
    child.stderr.on('data', (d) => (childErr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    const before = await Promise.race([
      whenTrace(dir, trace, condition),
      exited.then((code) => {
        throw new Error(`the run ended before it could be killed (exit ${code}): ${childErr}`);
      }),
    ]);
    child.kill('SIGKILL');
    await exited;
    const runId = before.find((e) => e.type === 'RunStarted')!.runId;
    const doneBeforeKill = new Set(readTrace(trace).filter((e) => e.type === 'BranchCompleted').map((e) => e.branchId));
    expect(doneBeforeKill.size).toBeLessThan(6); // it really was cut short

    const io = captureIo();
    const code = await main(['resume', runId, '--data', data, '--json', '--trace', trace], io);
    expect(code, io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    expect(doc.status).toBe('COMPLETED');
    const ids = ['root.0', 'root.1', 'root.2', 'root.3', 'root.4', 'root.5'];
    expect(doc.result.report.child_count).toBe(6);
    expect(doc.result.report.results).toEqual(Object.fromEntries(ids.map((id) => [id, 'checked job'])));
    expect(doc.result.report.failures).toEqual({});
    expect(doc.branches.map((b: { id: string; status: string }) => [b.id, b.status])).toEqual(
      ['root', ...ids].map((id) => [id, 'COMPLETED']),
    );

    // The same invariants as the fault suite, over both processes' events.
    const runtime = await LocalRuntime.start({ dataDir: data });
    try {
      const scope = { team: runtime.team, runId };
      const run = (await runtime.deps.store.getRun(scope))!;
      const branches = await runtime.deps.store.listBranches(scope);
      const events = readTrace(trace).filter((e) => e.runId === runId);
      checkRunInvariants({ run, branches, events, syncPoints: await syncPointsOf(runtime.deps.store, scope, branches) }, 'resumed run');
      // Resuming a finished run changes nothing and says so.
      const again = captureIo();
      await runtime.close();
      expect(await main(['resume', runId, '--data', data, '--json'], again)).toBe(0);
      expect(JSON.parse(again.outText()).status).toBe('COMPLETED');
    } finally {
      await runtime.close();
    }
  }, 60_000);

  it('names what is missing: no --data, or a run the folder does not have', async () => {
    const io = captureIo();
    expect(await main(['resume', 'nope'], io)).toBe(2);
    expect(io.errText()).toMatch(/resume needs --data/);
    const dir = mkdtempSync(join(tmpdir(), 'bs-resume-empty-'));
    try {
      const io2 = captureIo();
      expect(await main(['resume', 'nope', '--data', dir], io2)).toBe(2);
      expect(io2.errText()).toContain(`${dir} is not a data folder`);
      // A folder with kept state, but not this run.
      await (await LocalRuntime.start({ dataDir: dir })).close();
      const io3 = captureIo();
      expect(await main(['resume', 'nope', '--data', dir], io3)).toBe(2);
      expect(io3.errText()).toContain(`no run nope in ${dir}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

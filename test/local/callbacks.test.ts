/**
 * Waits and callbacks through the CLI, as a user runs them (child processes of the bin, the
 * journal tier of a `--data` folder): `callback --data` while `run --data` holds the folder (its
 * inbox), a second answer, an answer after the callback's timeout or after a cancel, an answer
 * and a wait across a `kill -9` and `resume`, and bad input. Each waits for the trace's events or
 * the process's end, never for time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isEventOf, type EventType } from '../../core/events';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { cli, readTrace, ROOT, whenTrace, within } from '../reliability/contract-support';

const dir = mkdtempSync(join(tmpdir(), 'bs-callbacks-'));
/**
 * What one awaited process start and its work may take: seconds alone, but a minute and more on a
 * machine many times over-committed (as a busy CI runner is), with this file's tests at once.
 * Only process starts are awaited this long; each test's whole budget is a few of them.
 */
const PROCESS = 120_000;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scenario = (name: string, responses: unknown[]) => {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ name, request: 'deploy v2', entry: 'Approver', agents: { Approver: { kind: 'script', responses } } }));
  return path;
};
const APPROVAL = scenario('approval', [
  { next_action: 'wait_for_callback', timeout_seconds: 600, message: 'deploy v2?' },
  { next_action: 'final_response', content: { decision: '$input' } },
]);

/** A fresh folder, its trace, and the first event of `type` once the trace has it. */
function trial(name: string) {
  const trialDir = mkdtempSync(join(dir, `${name}-`));
  const trace = join(trialDir, 'trace.jsonl');
  const first = <T extends EventType>(type: T) =>
    within(
      whenTrace(trialDir, trace, (events) => events.some((e) => e.type === type)).done.then((events) => events.find((e) => isEventOf(e, type))!),
      PROCESS,
      () => `${name}: no ${type} in the trace`,
    );
  return { data: join(trialDir, 'data'), trace, first };
}

/** `run --data` of the approval scenario, killed (-9) once its branch awaits the callback. */
async function killedAwaitingCallback(name: string) {
  const { data, trace, first } = trial(name);
  const run = cli(['run', APPROVAL, '--data', data, '--trace', trace]);
  const asked = await first('BranchWaitingForCallback');
  run.child.kill('SIGKILL');
  expect((await run.exited).signal).toBe('SIGKILL');
  return { data, trace, asked };
}

async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return within(cli(args).exited, PROCESS, () => `branch-spawner ${args.join(' ')} did not end`);
}

// At once: most of each test is process starts and a killed process's messages coming back.
describe('callbacks through the CLI', { concurrent: true, timeout: 4 * PROCESS }, () => {
  it('run --data prints how to answer; callback --data answers the run that holds the folder (202 once), a second answer is refused (exit 1)', async () => {
    const { data, trace, first } = trial('inbox');
    const run = cli(['run', APPROVAL, '--data', data, '--json', '--trace', trace]);
    const asked = await first('BranchWaitingForCallback');
    const token = String(asked.detail.token);
    const answered = await runCli(['callback', asked.runId, token, '--data', data, '--answer', '"approved"']);
    expect(answered, answered.stderr).toMatchObject({ code: 0, stderr: `run ${asked.runId}: callback answered, branch root goes on\n` });
    const again = await runCli(['callback', asked.runId, token, '--data', data, '--answer', '"refused"']);
    const done = await within(run.exited, PROCESS, () => 'the run did not end after its answer');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain(`awaits a callback until `);
    expect(done.stderr).toContain(`answer it with: npx branch-spawner callback ${asked.runId} ${token} --data ${data} --answer '<json>'`);
    expect(JSON.parse(done.stdout)).toMatchObject({ status: 'COMPLETED', result: { decision: 'approved' } });
    // The second answer came while the run held the folder, or after it ended: refused either way.
    expect(again.code, again.stderr).toBe(1);
    expect(again.stderr).toMatch(/^error: callback of branch root was answered already; the first answer was taken and this one is refused\n$/);
    expect(readTrace(trace).filter((e) => e.type === 'BranchResumed')).toHaveLength(1);
  });

  it('kill -9 while a branch awaits its callback, callback --data, then resume: the run completes with the answer', async () => {
    const { data, trace, asked } = await killedAwaitingCallback('kill');
    const answered = await runCli(['callback', asked.runId, String(asked.detail.token), '--data', data, '--answer-file', writeAnswer({ ok: true })]);
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stderr).toBe(`run ${asked.runId}: callback answered; branch root waits for resume: npx branch-spawner resume ${asked.runId} --data ${data}\n`);
    const resumed = await runCli(['resume', asked.runId, '--data', data, '--json', '--trace', trace]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: 'COMPLETED', result: { decision: { ok: true } } });
  });

  it('kill -9 while a branch awaits its callback, cancel --data, then callback --data: refused as cancelled (exit 1), the run CANCELLED', async () => {
    const { data, asked } = await killedAwaitingCallback('cancel');
    const cancelled = captureIo();
    expect(await main(['cancel', asked.runId, '--data', data], cancelled), cancelled.errText()).toBe(0);
    const late = captureIo();
    expect(await main(['callback', asked.runId, String(asked.detail.token), '--data', data, '--answer', '"approved"'], late)).toBe(1);
    expect(late.errText()).toBe('error: callback of branch root can no longer be answered: the branch was cancelled (cancelled by request)\n');
    const shown = captureIo();
    await main(['show', asked.runId, '--data', data, '--json'], shown);
    expect(JSON.parse(shown.outText())).toMatchObject({ status: 'CANCELLED', branches: [{ id: 'root', status: 'CANCELLED' }] });
  });

  it('kill -9 during a durable wait, then resume: the wait goes on and ends no sooner than its time', async () => {
    const { data, trace, first } = trial('wait');
    const path = scenario('nap', [{ next_action: 'wait', seconds: 2, input: 'rested' }, { next_action: 'final_response', content: '$input' }]);
    const run = cli(['run', path, '--data', data, '--trace', trace]);
    const waiting = await first('BranchWaiting');
    run.child.kill('SIGKILL');
    expect((await run.exited).signal).toBe('SIGKILL');
    const resumed = await runCli(['resume', waiting.runId, '--data', data, '--json', '--trace', trace]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: 'COMPLETED', result: 'rested' });
    const woke = readTrace(trace).filter((e) => e.type === 'BranchResumed');
    expect(woke.length).toBeGreaterThanOrEqual(1);
    for (const e of woke) expect(e.time).toBeGreaterThanOrEqual(waiting.detail.until);
  });

  it('an answer after the callback timed out is refused (exit 1) and the run FAILED with CallbackTimeout', async () => {
    const { data, trace } = trial('timeout');
    const path = scenario('late', [{ next_action: 'wait_for_callback', timeout_seconds: 1 }, { next_action: 'final_response', content: '$input' }]);
    const run = await runCli(['run', path, '--data', data, '--json', '--trace', trace]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).error).toMatch(/^CallbackTimeout: no answer to the callback within its 1 s timeout/);
    const asked = readTrace(trace).find((e) => e.type === 'BranchWaitingForCallback')!;
    const late = await runCli(['callback', asked.runId, String(asked.detail.token), '--data', data, '--answer', 'true']);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/^error: callback of branch root can no longer be answered: the branch ended FAILED \(CallbackTimeout: /);
  });

  it('examples/approval.yaml: the reviewer answers through the CLI within the veto window, the window is cancelled and the release follows the answer', async () => {
    const { data, trace, first } = trial('example');
    // The example's window is 5 s (so that it ends on its own); a machine under load may take
    // longer than that to start two processes, so this copy gives the reviewer 10 minutes.
    const example = readFileSync(join(ROOT, 'examples', 'approval.yaml'), 'utf8');
    expect(example).toContain('seconds: 5,');
    const path = join(dir, 'approval-example.yaml');
    writeFileSync(path, example.replace('seconds: 5,', 'seconds: 600,'));
    const run = cli(['run', path, '--data', data, '--json', '--trace', trace]);
    const asked = await first('BranchWaitingForCallback');
    expect(asked).toMatchObject({ branchId: 'root.0', detail: { message: { question: 'Release v2.3 to production?' } } });
    const answered = await runCli(['callback', asked.runId, String(asked.detail.token), '--data', data, '--answer', '{"approved": false, "reason": "code freeze"}']);
    expect(answered.code, answered.stderr).toBe(0);
    const done = await within(run.exited, PROCESS, () => 'the example did not end after its answer');
    expect(done.code, done.stderr).toBe(0);
    const doc = JSON.parse(done.stdout);
    expect(doc.result).toMatchObject({ release: 'v2.3', decision: { results: { 'root.0': { by: 'reviewer', answer: { approved: false, reason: 'code freeze' } } } } });
    expect(doc.branches.map((b: { id: string; status: string }) => [b.id, b.status])).toEqual([['root', 'COMPLETED'], ['root.0', 'COMPLETED'], ['root.1', 'CANCELLED']]);
  });

  it('bad input exits 2 naming it: no answer, an answer that is not JSON, a malformed token, an unknown run or callback', async () => {
    const data = join(mkdtempSync(join(dir, 'bad-')), 'data');
    const quick = scenario('quick', [{ next_action: 'final_response', content: 'done' }]);
    const io = captureIo();
    expect(await main(['run', quick, '--data', data, '--json'], io), io.errText()).toBe(0);
    const { runId } = JSON.parse(io.outText());
    const zeros = `root~1~${'0'.repeat(32)}`;
    const cases: [string[], RegExp][] = [
      [['callback', runId, zeros, '--data', data], /^error: callback: give the answer with --answer <json> or --answer-file <file> \(one of them\)\n$/],
      [['callback', runId, zeros, '--data', data, '--answer', '1', '--answer-file', 'a.json'], /one of them/],
      [['callback', runId, zeros, '--data', data, '--answer', 'yes'], /^error: callback: --answer is not JSON \(.*\); a text answer is quoted: --answer '"yes"'\n$/],
      [['callback', runId, zeros, '--data', data, '--answer-file', join(dir, 'missing.json')], /^error: callback: cannot read --answer-file /],
      [['callback', runId, 'not-a-token', '--data', data, '--answer', '1'], /^error: token: not a callback token/],
      [['callback', 'no-such-run', zeros, '--data', data, '--answer', '1'], /^error: run no-such-run not found\n$/],
      [['callback', runId, zeros, '--data', data, '--answer', '1'], new RegExp(`^error: no callback with this token in run ${runId}\n$`)],
      [['callback', runId, zeros, '--answer', '1'], /^error: callback: say where the runs are/],
    ];
    for (const [args, message] of cases) {
      const bad = captureIo();
      expect(await main(args, bad), args.join(' ')).toBe(2);
      expect(bad.errText(), args.join(' ')).toMatch(message);
    }
  });
});

function writeAnswer(value: unknown): string {
  const path = join(dir, `answer-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

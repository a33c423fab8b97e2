// Long-running: started first (vitest.config.ts).
/**
 * `kill -9` at a random moment, then `resume`, through the CLI only: `run --data <dir> --trace
 * <file>` in a child process dies (SIGKILL) after a seeded random number of its lifecycle events
 * (its own `--hooks` module, kill-hooks.ts, sends the signal, so the moment is exact whatever the
 * load); `resume <runId> --data <dir> --trace <file>` carries the run on (in the double-kill trial
 * a first resume, a child process too, is killed once more after a random number of its own
 * events). The resumed run must give the clean run's result and statuses, and the trace —
 * appended to by every process — must hold a BranchCreated and an end event for every branch of
 * the final tree, and the run's end. A third trial cuts a Ctrl-C cancel short with the kill.
 *
 * The scenario recurses with two `next_actions` groups per area: the second group's sync point
 * is opened by the settlement of the first, the window where a death used to leave `resume`
 * waiting forever. One trial kills as soon as a first group has settled, to land near it.
 *
 * The seed of each trial is in every assertion message; CONTRACT_SEED=<n> replays it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import type { RunStatus } from '../../core/model';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { between, cli, expectEveryLifecycleEvent, readTrace, seededRandom, whenTrace, within, type CliProcess } from './contract-support';

const KILL_HOOKS = fileURLToPath(new URL('./kill-hooks.ts', import.meta.url));

// 1 root, 4 areas, each two groups of 3 questions one after the other: 29 branches, 4 at a time.
// The delays stretch a run to about a second (the 4 areas run at once; so do the questions of a
// group), so that the test's kill of a resume (it reacts to the trace) has time to land.
const SCENARIO = `
name: two-groups
request: "task:root"
entry: Reasoner
limits: { maxConcurrentBranches: 4 }
agents:
  Reasoner:
    kind: script
    rules:
      - when: child_count
        responses: [ { next_actions: [], content: "$input" } ]
      - when: "task:root"
        responses: [ { next_actions: [["area:a", "area:b", "area:c", "area:d"]] } ]
      - when: "area:"
        responses: [ { $delayMs: 100, next_actions: [["q:1", "q:2", "q:3"], ["q:4", "q:5", "q:6"]] } ]
      - when: "q:"
        responses: [ { $delayMs: 300, next_actions: [], content: "answered $input" } ]
    responses: [ { next_actions: [], content: "no rule matched" } ]
`;
const BRANCHES = 1 + 4 + 4 * 6;

const dir = mkdtempSync(join(tmpdir(), 'bs-kill-resume-'));
const scenarioPath = join(dir, 'two-groups.yaml');
writeFileSync(scenarioPath, SCENARIO);

interface RunDoc {
  runId: string;
  status: RunStatus;
  result: unknown;
  error: string | null;
  branches: { id: string; status: string; error: string | null }[];
}

/** The clean run, in memory (the engines under --data give the same result: that is what is checked). */
async function cleanRun(): Promise<{ doc: RunDoc; events: number }> {
  const trace = join(dir, 'clean.jsonl');
  const io = captureIo();
  expect(await main(['run', scenarioPath, '--json', '--trace', trace], io), io.errText()).toBe(0);
  return { doc: JSON.parse(io.outText()), events: readTrace(trace).length };
}
let cleanOnce: ReturnType<typeof cleanRun> | undefined;
const clean = () => (cleanOnce ??= cleanRun());

/**
 * Starts `args` with `--trace trace` and kills it (SIGKILL) once `condition` holds for the trace.
 * Resolves with the trace's events at the kill, or undefined if the process ended first.
 */
async function killWhen(args: string[], trialDir: string, trace: string, condition: (events: LifecycleEvent[]) => boolean, label: string) {
  const proc: CliProcess = cli([...args, '--trace', trace]);
  const watched = whenTrace(trialDir, trace, condition);
  const outcome = await within(
    Promise.race([watched.done.then((events) => ({ killedAt: events })), proc.exited.then((exit) => ({ exit }))]),
    45_000,
    () => `${label}: neither the kill condition nor the end came in 45 s (${args.join(' ')})`,
  );
  watched.stop();
  if ('killedAt' in outcome) {
    proc.child.kill('SIGKILL');
    const exit = await proc.exited;
    // It may have ended on its own in the instant between the condition and the signal.
    return { killed: exit.signal === 'SIGKILL' ? outcome.killedAt : undefined, exit };
  }
  return { killed: undefined, exit: outcome.exit };
}

interface Trial {
  seed: number;
  /** The first kill: after a random number of events of `run`, or as soon as a first group settled. */
  firstKill: 'random' | 'first-group-settled';
  /** Kill the first `resume` too, after a random number of its own events. */
  double: boolean;
}

// CONTRACT_SEED=<n> replays every kind of trial with that seed.
const seedOr = (n: number) => Number(process.env.CONTRACT_SEED ?? n);
const TRIALS: Trial[] = [
  { seed: seedOr(100), firstKill: 'random', double: false },
  { seed: seedOr(101), firstKill: 'first-group-settled', double: true },
];

/** `run --data … --hooks kill-hooks.ts`: the process kills itself at the moment `env` names (see kill-hooks.ts). */
async function runKilledBy(env: Record<string, string>, data: string, trace: string) {
  return cli(['run', scenarioPath, '--data', data, '--json', '--trace', trace, '--hooks', KILL_HOOKS], env).exited;
}

// All at once: most of a trial is process starts and waiting for the dead process's messages to come back.
describe('kill -9 at a random moment, then resume', () => {
  it.concurrent.each(TRIALS)('seed $seed, first kill $firstKill, killed again while resuming: $double: the clean run\'s result, every event in the trace', async ({ seed, firstKill, double }) => {
    const { doc: reference, events: cleanEvents } = await clean();
    expect(reference.status).toBe('COMPLETED');
    expect(reference.branches).toHaveLength(BRANCHES);
    const random = seededRandom(seed);
    const trialDir = mkdtempSync(join(dir, `seed-${seed}-`));
    const data = join(trialDir, 'data');
    const trace = join(trialDir, 'trace.jsonl');
    // Up to 60% of the events: the last wave of questions takes 300 ms, and the last 40% of the
    // events come in bursts around it, so the hooks (called off the run's path) are never late.
    const firstAfter = between(random, 2, Math.floor(cleanEvents * 0.6));
    const groupDelay = between(random, 0, 4);
    const label = `seed ${seed} (${firstKill === 'random' ? `kill after event ${firstAfter}` : `kill ${groupDelay} ms after a first group settled`}${double ? ', killed again while resuming' : ''})`;

    // 1. run --data, killed (by its own hooks: the moment is exact).
    const first = await runKilledBy(firstKill === 'random' ? { KILL_AFTER_EVENTS: String(firstAfter) } : { KILL_WHEN_GROUP_SETTLED: '1', KILL_DELAY_MS: String(groupDelay) }, data, trace);
    expect(first.signal, `${label}: killed (exit ${first.code}): ${first.stderr}`).toBe('SIGKILL');
    const runId = readTrace(trace).find((e) => e.type === 'RunStarted')!.runId;
    expect(readTrace(trace).some((e) => e.type === 'RunCompleted'), `${label}: the kill landed before the run's end`).toBe(false);

    // 2. (double) resume, killed after a random number of its own events. The test reacts to the
    // trace (resume takes no hooks), so the kill may come late: if resume ended first, it ended well.
    if (double) {
      const before = readTrace(trace).length;
      const secondAfter = between(random, 1, Math.max(1, Math.floor((cleanEvents - before) * 0.6)));
      const second = await killWhen(['resume', runId, '--data', data, '--json'], trialDir, trace, (events) => events.length >= before + secondAfter, `${label}, second kill after ${secondAfter} more events`);
      if (!second.killed) expect(second.exit.code, `${label}: resume before the second kill: ${second.exit.stderr}`).toBe(0);
    }

    // 3. resume to the end (the CLI's main in this process: the same command, one process start less).
    const io = captureIo();
    const code = await within(main(['resume', runId, '--data', data, '--json', '--trace', trace], io), 60_000, () => `${label}: resume did not end in 60 s (it hung): ${io.errText()}`);
    expect(code, `${label}: resume exit code; stderr: ${io.errText()}`).toBe(0);
    const resumed = JSON.parse(io.outText()) as RunDoc;

    expect(resumed.status, label).toBe('COMPLETED');
    expect(resumed.result, `${label}: the result of the clean run`).toEqual(reference.result);
    expect(
      resumed.branches.map((b) => [b.id, b.status, b.error]),
      `${label}: the branches of the clean run (none failed by "the fan-out ended without a report")`,
    ).toEqual(reference.branches.map((b) => [b.id, b.status, b.error]));
    expectEveryLifecycleEvent(readTrace(trace), resumed, resumed.branches, label);
  }, 120_000);

  it.concurrent('Ctrl-C (the run is cancelled) cut short by kill -9, then resume: the cancel is finished by resume: CANCELLED, nothing left active, nothing failed, every event in the trace', async () => {
    const seed = seedOr(102);
    const random = seededRandom(seed);
    const { events: cleanEvents } = await clean();
    const trialDir = mkdtempSync(join(dir, `cancel-${seed}-`));
    const data = join(trialDir, 'data');
    const trace = join(trialDir, 'trace.jsonl');
    const interruptAfter = between(random, 3, Math.floor(cleanEvents * 0.6));
    const killAfterCancelled = between(random, 1, 4);
    const label = `seed ${seed} (Ctrl-C after event ${interruptAfter}, kill -9 after ${killAfterCancelled} BranchCancelled)`;

    const exit = await runKilledBy({ INTERRUPT_AFTER_EVENTS: String(interruptAfter), KILL_AFTER_CANCELLED: String(killAfterCancelled) }, data, trace);
    // 130: the cancel finished before the kill (fewer branches to cancel); resume then has nothing left to do.
    expect(exit.signal === 'SIGKILL' || exit.code === 130, `${label}: exit ${exit.code} ${exit.signal}: ${exit.stderr}`).toBe(true);
    expect(readTrace(trace).some((e) => e.type === 'RunCompleted'), `${label}: the run ended before Ctrl-C`).toBe(false);
    const runId = readTrace(trace).find((e) => e.type === 'RunStarted')!.runId;

    const io = captureIo();
    const code = await within(main(['resume', runId, '--data', data, '--json', '--trace', trace], io), 60_000, () => `${label}: resume did not end in 60 s (it hung): ${io.errText()}`);
    const resumed = JSON.parse(io.outText()) as RunDoc;
    expect(code, `${label}: ${io.errText()}`).toBe(1);
    expect(resumed.status, label).toBe('CANCELLED');
    const wrong = resumed.branches.filter((b) => !['COMPLETED', 'CANCELLED'].includes(b.status)).map((b) => `${b.id}:${b.status} ${b.error ?? ''}`);
    expect(wrong, `${label}: branches neither COMPLETED before the cancel nor CANCELLED by it`).toEqual([]);
    expect(resumed.branches.find((b) => b.id === 'root')?.status, label).toBe('CANCELLED');
    expectEveryLifecycleEvent(readTrace(trace), resumed, resumed.branches, label);

    // It stays so: resuming the ended run changes nothing.
    const again = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], again), label).toBe(1);
    expect((JSON.parse(again.outText()) as RunDoc).branches, `${label}: a second resume`).toEqual(resumed.branches);
  }, 120_000);
});

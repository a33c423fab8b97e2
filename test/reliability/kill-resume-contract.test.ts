/**
 * `kill -9` at a random moment, then `resume`, through the CLI only: `run --data <dir> --trace
 * <file>` in a child process is killed (SIGKILL) after a seeded random number of its lifecycle
 * events; `resume <runId> --data <dir> --trace <file>` carries the run on (in the double-kill
 * trial a first resume, a child process too, is killed once more after a random number of its
 * own events). The resumed run must give the clean run's result
 * and statuses, and the trace — appended to by every process — must hold a BranchCreated and an
 * end event for every branch of the final tree, and the run's end.
 *
 * The scenario recurses with two `next_actions` groups per area: the second group's sync point
 * is opened by the settlement of the first, the window where a death used to leave `resume`
 * waiting forever. One trial kills as soon as a first group has settled, to land near it.
 *
 * The seed of each trial is in every assertion message; CONTRACT_SEED=<n> replays one.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { between, cli, expectEveryLifecycleEvent, readTrace, seededRandom, whenTrace, within, type CliProcess } from './contract-support';

// 1 root, 4 areas, each two groups of 3 questions one after the other: 29 branches, 4 at a time.
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
        responses: [ { $delayMs: 40, next_actions: [["q:1", "q:2", "q:3"], ["q:4", "q:5", "q:6"]] } ]
      - when: "q:"
        responses: [ { $delayMs: 60, next_actions: [], content: "answered $input" } ]
    responses: [ { next_actions: [], content: "no rule matched" } ]
`;
const BRANCHES = 1 + 4 + 4 * 6;

const dir = mkdtempSync(join(tmpdir(), 'bs-kill-resume-'));
const scenarioPath = join(dir, 'two-groups.yaml');
writeFileSync(scenarioPath, SCENARIO);

interface RunDoc {
  runId: string;
  status: string;
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
    expect(exit.signal, `${label}: killed`).toBe('SIGKILL');
    return { killed: outcome.killedAt, exit };
  }
  return { killed: undefined, exit: outcome.exit };
}

interface Trial {
  seed: number;
  /** The first kill: after this many events of `run` (or as soon as a first group settled). */
  firstKill: 'random' | 'first-group-settled';
  /** Kill the first `resume` too, after a random number of its own events. */
  double: boolean;
}

// CONTRACT_SEED=<n> replays both kinds of trial with that seed.
const [singleSeed, doubleSeed] = process.env.CONTRACT_SEED ? [Number(process.env.CONTRACT_SEED), Number(process.env.CONTRACT_SEED)] : [100, 101];
const TRIALS: Trial[] = [
  { seed: singleSeed, firstKill: 'random', double: false },
  { seed: doubleSeed, firstKill: 'first-group-settled', double: true },
];

describe('kill -9 of run --data at a random moment, then resume: the clean run\'s result, every event in the trace', () => {
  it.concurrent.each(TRIALS)('seed $seed: first kill $firstKill, killed again while resuming: $double', async ({ seed, firstKill, double }) => {
    const { doc: reference, events: cleanEvents } = await clean();
    expect(reference.status).toBe('COMPLETED');
    expect(reference.branches).toHaveLength(BRANCHES);
    const random = seededRandom(seed);
    const trialDir = mkdtempSync(join(dir, `seed-${seed}-`));
    const data = join(trialDir, 'data');
    const trace = join(trialDir, 'trace.jsonl');
    const firstAfter = between(random, 2, Math.floor(cleanEvents * 0.8));
    const label = `seed ${seed} (${firstKill === 'random' ? `kill after event ${firstAfter}` : 'kill when a first group settled'}${double ? ', killed again while resuming' : ''})`;

    // 1. run --data, killed.
    const settledFirstGroup = (events: LifecycleEvent[]) =>
      events.some((e) => e.type === 'SyncPointReached' && e.branchId !== 'root' && (e.detail as { seq?: number }).seq === 1);
    const first = await killWhen(
      ['run', scenarioPath, '--data', data, '--json'],
      trialDir,
      trace,
      firstKill === 'random' ? (events) => events.length >= firstAfter : settledFirstGroup,
      label,
    );
    expect(first.killed, `${label}: the run ended before the kill (exit ${first.exit.code}): ${first.exit.stderr}`).toBeDefined();
    const runId = first.killed!.find((e) => e.type === 'RunStarted')!.runId;
    const endedBeforeKill = readTrace(trace).some((e) => e.type === 'RunCompleted');
    expect(endedBeforeKill, `${label}: the kill landed before the run's end`).toBe(false);

    // 2. (double) resume, killed after a random number of its own events.
    if (double) {
      const before = readTrace(trace).length;
      const secondAfter = between(random, 1, Math.max(1, Math.floor((cleanEvents - before) * 0.6)));
      const second = await killWhen(['resume', runId, '--data', data, '--json'], trialDir, trace, (events) => events.length >= before + secondAfter, `${label}, second kill after ${secondAfter} more events`);
      if (!second.killed) {
        // It ended before the second kill could land: it must have ended well.
        expect(second.exit.code, `${label}: resume before the second kill: ${second.exit.stderr}`).toBe(0);
      }
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
});

/**
 * Helpers for the public-contract suites (cancel-contract, kill-resume-contract, chaos-contract):
 * they drive the product only as a user does — the CLI (`bin/branch-spawner.mjs` in a child
 * process, or its `main` with argv) and the `dev` HTTP server — and judge it by what those give
 * back: exit codes, the `--json` document, the `--trace` JSONL file, HTTP answers and the event
 * stream. Nothing here reads a store, except to say what a run that does not finish waits on
 * (`stuckReport`, for a hang guard's message).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { isRunEnd, runEndEvent, type LifecycleEvent } from '../../core/events';
import type { RunStatus } from '../../core/model';
import { LocalRuntime } from '../../local/runtime';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'branch-spawner.mjs');
/** Node 22 from node_modules (plain `node` on PATH may be older). */
export const NODE = existsSync(join(ROOT, 'node_modules', '.bin', 'node')) ? join(ROOT, 'node_modules', '.bin', 'node') : process.execPath;

/**
 * A seeded generator (mulberry32): the random moments of a trial come from it, and the seed is
 * in every assertion message, so a failing trial names itself. CONTRACT_SEED=<n> replays one.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] from the generator. */
export const between = (random: () => number, min: number, max: number) => min + Math.floor(random() * (max - min + 1));

/**
 * The seeds of a suite's trials: `count` from `base`; only CONTRACT_SEED when it is set; and
 * CONTRACT_TRIALS=<n> runs n trials instead of `count` (a longer hunt than npm test's).
 */
export function trialSeeds(base: number, count: number): number[] {
  const only = process.env.CONTRACT_SEED;
  if (only) return [Number(only)];
  const trials = Number(process.env.CONTRACT_TRIALS ?? count);
  return Array.from({ length: trials }, (_, i) => base + i);
}

/** The events of a `--trace` file (a line cut by a killed writer is skipped). */
export function readTrace(path: string): LifecycleEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LifecycleEvent];
      } catch {
        return [];
      }
    });
}

/** Resolves with the trace's events once `condition` holds for them (the folder is watched, not polled). */
export function whenTrace(dir: string, trace: string, condition: (events: LifecycleEvent[]) => boolean): { done: Promise<LifecycleEvent[]>; stop(): void } {
  let watcher: ReturnType<typeof watch> | undefined;
  const done = new Promise<LifecycleEvent[]>((resolve) => {
    const check = () => {
      const events = readTrace(trace);
      if (condition(events)) {
        watcher?.close();
        resolve(events);
      }
    };
    watcher = watch(dir, check);
    check();
  });
  return { done, stop: () => watcher?.close() };
}

export interface CliProcess {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal) and what it wrote. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** `branch-spawner <args>` as a user runs it: a child process of the bin (`env` added to the test's). */
export function cli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code, signal) => {
      // Let the pipes drain before reporting what was written.
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    }),
  );
  return { child, exited };
}

const END_OF: Record<string, string> = {
  COMPLETED: 'BranchCompleted',
  FAILED: 'BranchFailed',
  TIMED_OUT: 'BranchFailed',
  CANCELLED: 'BranchCancelled',
};

/**
 * What a user reading the events of a finished run may rely on: a BranchCreated and the end event
 * matching its final status for every branch (at least once), and the run's end event of its
 * final status (and no other kind of run end).
 */
export function expectEveryLifecycleEvent(
  events: LifecycleEvent[],
  run: { runId: string; status: RunStatus },
  branches: { id: string; status: string }[],
  label: string,
): void {
  const mine = events.filter((e) => e.runId === run.runId);
  const created = new Set(mine.filter((e) => e.type === 'BranchCreated').map((e) => e.branchId));
  const missingCreated = branches.filter((b) => !created.has(b.id)).map((b) => b.id);
  expect(missingCreated, `${label}: branches without a BranchCreated event`).toEqual([]);
  const missingEnd = branches
    .filter((b) => !mine.some((e) => e.branchId === b.id && e.type === END_OF[b.status]))
    .map((b) => `${b.id}:${b.status}`);
  expect(missingEnd, `${label}: branches without the end event of their status`).toEqual([]);
  const runEnds = new Set(mine.filter(isRunEnd).map((e) => e.type));
  expect([...runEnds], `${label}: the run's end event`).toEqual([runEndEvent(run.status)]);
  expect(mine.some((e) => e.type === 'RunStarted'), `${label}: RunStarted`).toBe(true);
  // A change told again (the retry of work a kill cut short, a resume) carries the id it had: one id per change, one change per id.
  const idsOf = new Map<string, Set<string>>();
  const changeOf = new Map<string, Set<string>>();
  for (const e of mine.filter((x) => isRunEnd(x) || ONE_PER_CHANGE.has(x.type))) {
    const change = `${e.type} ${e.branchId ?? ''} ${JSON.stringify(('seq' in e.detail ? e.detail.seq : undefined) ?? null)}`;
    idsOf.set(change, (idsOf.get(change) ?? new Set()).add(e.eventId));
    changeOf.set(e.eventId, (changeOf.get(e.eventId) ?? new Set()).add(change));
  }
  expect([...idsOf].filter(([, ids]) => ids.size !== 1).map(([change]) => change), `${label}: changes told with different eventIds`).toEqual([]);
  expect([...changeOf].filter(([, changes]) => changes.size !== 1).map(([id]) => id), `${label}: eventIds shared by different changes`).toEqual([]);
}

/** The events of which a run has one per run, branch or sync point (and the run's end: isRunEnd). */
const ONE_PER_CHANGE = new Set(['RunStarted', 'BranchCreated', 'BranchCompleted', 'BranchFailed', 'BranchCancelled', 'SyncPointReached']);

/**
 * What a run driven by the CLI's `main` in this process is stuck on, for a hang guard (`within`):
 * the last events of its trace, and what each open local runtime waits on (steps being handled,
 * queued messages, fan-out executions and the batches they wait for, branches not ended, sync
 * points waited on: LocalRuntime.pendingWork).
 */
export async function stuckReport(label: string, trace: string): Promise<string> {
  const events = readTrace(trace);
  const last = events.slice(-8).map((e) => `  ${e.type} ${e.branchId ?? ''}`.trimEnd());
  return [`${label} did not finish; ${events.length} events in its trace, the last:`, ...last, 'what the local runtimes wait on:', await LocalRuntime.describeLive()].join('\n');
}

/** Rejects with `message()` if `work` has not settled after `ms` (a hang guard, never a timing check). */
export async function within<T>(work: Promise<T>, ms: number, message: () => string | Promise<string>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void Promise.resolve(message()).then((m) => reject(new Error(m)), reject), ms);
  });
  try {
    return await Promise.race([work, hung]);
  } finally {
    clearTimeout(timer);
  }
}

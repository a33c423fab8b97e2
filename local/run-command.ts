/** `branch-spawner run`: one scenario on the embedded engines, with progress and a result. */
import { randomUUID } from 'node:crypto';
import type { CostCounters } from '../core/cost';
import type { computeMetrics } from '../core/metrics';
import { branchView, runView, viewRun, type BranchView, type RunView } from '../core/use-cases/queries';
import type { SpawnerDeps } from '../core/use-cases/deps';
import type { BranchRecord, RunRecord } from '../core/model';
import type { LifecycleEvent } from '../core/events';
import { renderAscii } from '../core/tree';
import { counted } from '../core/wording';
import { DataFolderError, errorMessage, PayloadTooLargeError, ScenarioError, ValidationError } from '../core/errors';
import { recordDataRun } from './data-runs';
import { attachHooks, describeHookError, loadHooksModule, type LifecycleHooks } from './hooks';
import type { ChaosOptions } from './chaos';
import { LiveProgress } from './progress';
import type { EngineTier } from './embedded-engines';
import { LocalRuntime } from './runtime';
import { loadScenarioFile } from './scenario-file';
import { JsonlSink } from '../adapters/events/jsonl-sink';
import { runInputOf } from '../core/use-cases/start-run';

export interface RunCommandOptions {
  json: boolean;
  /**
   * Ctrl-C: the first SIGINT cancels the run (its tree is printed, exit 130), a second one exits
   * at once. Off in tests that call main() in-process unless they send the signal themselves.
   */
  handleSignals?: boolean;
  trace?: string;
  chaos?: ChaosOptions;
  dataDir?: string;
  /** With a data folder on the journal tier: flush each journal write to the disk. */
  fsync?: boolean;
  /** With a data folder: leave dead-lettered steps in the DLQ (for `redrive`) instead of failing their branches. */
  keepPoison?: boolean;
  /** Which engines (see local/embedded-engines): memory by default, the journal tier with a data folder. */
  tier?: EngineTier;
  /** A module exporting lifecycle hooks (local/hooks.ts). */
  hooks?: string;
  tty: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export function runDocument(run: RunRecord, branches: BranchRecord[], cost?: CostCounters) {
  return documentOf(runView(run, branches, cost), branches.map(branchView));
}

/**
 * The run document from the store, its branches read a page at a time (viewRun): what `run`,
 * `resume` and the rehearsal print. A 10,000-child run's inputs and memories are never all
 * decoded at once.
 */
export async function readRunDocument(deps: Pick<SpawnerDeps, 'store'>, run: RunRecord, cost?: CostCounters) {
  const { view, branches } = await viewRun(deps, run, cost);
  return documentOf(view, branches);
}

/** The run document of `run --json` from the API's views (what `show` and remote runs print). */
export function documentOf(view: RunView, branches: BranchView[]) {
  return {
    runId: view.runId,
    name: view.name,
    status: view.status,
    // Large values as previews that say their size (the whole result: GET /runs/{id}/branches/root/result).
    result: view.result ?? null,
    ...(view.resultTruncated ? { resultTruncated: view.resultTruncated, resultBytes: view.resultBytes } : {}),
    error: view.error ?? null,
    metrics: view.metrics,
    // The CLI's branch fields are fixed: a subset of the API's branch view.
    branches: branches.map(({ id, parentId, agent, agentChain, type, depth, status, result, resultTruncated, resultBytes, error }) => ({
      id, parentId, agent, agentChain, type, depth, status, result, ...(resultTruncated ? { resultTruncated, resultBytes } : {}), error,
    })),
  };
}

export async function runScenario(path: string, options: RunCommandOptions): Promise<number> {
  let loaded;
  try {
    loaded = await loadScenarioFile(path);
  } catch (error) {
    if (error instanceof ScenarioError || error instanceof PayloadTooLargeError) {
      options.err.write(`error: ${error.message}\n`);
      // Scripts always get one document on stdout with --json, even when nothing ran.
      if (options.json) options.out.write(`${JSON.stringify(invalidDocument(error))}\n`);
      return 2;
    }
    throw error;
  }
  let hooks: LifecycleHooks | undefined;
  try {
    hooks = options.hooks ? await loadHooksModule(options.hooks) : undefined;
  } catch (error) {
    if (error instanceof ValidationError) {
      options.err.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const { scenario, aggregators } = loaded;
  const sink = await openTrace(options.trace);
  let runtime: LocalRuntime;
  try {
    // dynalite and fauxqs take seconds to start: on a terminal, say so.
    if (options.tty && options.tier === 'engines') options.err.write('starting the engines (dynalite, fauxqs)...\n');
    runtime = await LocalRuntime.start({ aggregators, chaos: options.chaos, dataDir: options.dataDir, fsync: options.fsync, tier: options.tier, poison: options.keepPoison ? 'keep' : 'fail',
      onParked: parkedNotice(options.err, options.dataDir),
    });
  } catch (error) {
    await sink?.close();
    throw error;
  }
  // The summary's time is the run's: the engines' start is not in it.
  const started = Date.now();
  const attached = hooks ? attachHooks(runtime, hooks, (failure) => options.err.write(`warning: ${describeHookError(failure)}\n`)) : undefined;
  if (sink) runtime.bus.subscribe(sink.subscriber);
  tellCallbacks(runtime, options.err, options.dataDir);
  let progress: LiveProgress | undefined;
  let interrupted = false;
  let stopSignals = () => {};
  try {
    // With a data folder the id is recorded first: `resume` needs it if this process dies, even
    // in the middle of starting the run (a run that never got written is listed as such).
    const runId = randomUUID();
    if (options.dataDir) await recordDataRun(options.dataDir, runId, scenario.name, path);
    await runtime.startRun({ ...runInputOf(scenario), runId });
    if (options.handleSignals) {
      stopSignals = onInterrupt(
        () => {
          interrupted = true;
          options.err.write('\ncancelling the run (Ctrl-C again to exit at once)\n');
          void runtime.cancel(runId).catch((error) => options.err.write(`error: cancelling failed: ${errorMessage(error)}\n`));
        },
        () => {
          options.err.write('exiting without waiting for the run to end\n');
          process.exit(130);
        },
      );
    }
    if (options.dataDir) {
      options.err.write(`run ${runId} started; its state is kept in ${options.dataDir} (resume with: npx branch-spawner resume ${runId} --data ${options.dataDir})\n`);
    }
    if (options.tty) {
      progress = new LiveProgress(options.out, () => runtime.deps.store.listBranches({ team: runtime.team, runId }), started);
      progress.start();
    }
    let run: RunRecord;
    try {
      run = await runtime.waitForRun(runId);
    } catch (error) {
      if (!(error instanceof DataFolderError)) throw error;
      // Nothing written is lost: the run carries on from there once the folder is fixed.
      const resume = options.dataDir ? `; what was written is kept: once the folder is fixed, carry on with: npx branch-spawner resume ${runId} --data ${options.dataDir}` : '';
      throw new DataFolderError(`${error.message}${resume}`, error.code, { cause: error });
    }
    // The cost once every fan-out is done, before the listing below (the view's cost, not the run's).
    await runtime.settle();
    const cost = await runtime.costOf(runId);
    await attached?.drain();
    const doc = await readRunDocument(runtime.deps, run, cost);
    await progress?.stop(doc.branches);
    reportDocument(doc, options, started);
    if (interrupted) return 130;
    return run.status === 'COMPLETED' ? 0 : 1;
  } finally {
    attached?.detach();
    stopSignals();
    await progress?.stop();
    await sink?.close();
    await runtime.close();
  }
}

/**
 * The `--trace` file, opened before anything runs: a path that cannot be written (a folder, no
 * permission) is bad input naming the option, not a stack after the run.
 */
export async function openTrace(path: string | undefined): Promise<JsonlSink | undefined> {
  if (!path) return undefined;
  const sink = new JsonlSink(path);
  try {
    await sink.open();
  } catch (error) {
    await sink.close().catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EISDIR' ? 'is a folder; give the path of a file'
      : code === 'ENOTDIR' || code === 'EEXIST' ? 'cannot be made: a part of the path is a file'
      : `cannot be written (${code ?? errorMessage(error)})`;
    throw new ValidationError(`--trace ${path}: ${why}`, '--trace', { cause: error });
  }
  return sink;
}

/** With --keep-poison: says what the command waits for once steps are parked in the DLQ (it would wait silently). */
export function parkedNotice(err: NodeJS.WritableStream, dataDir: string | undefined): (parked: number) => void {
  return (parked) =>
    err.write(
      `waiting: ${parked} step(s) of the run are in the dead-letter queue (kept by --keep-poison); the run cannot end until they are ` +
        `moved back: stop this command (Ctrl-C; the state is kept), run npx branch-spawner redrive --data ${dataDir}, then resume the run\n`,
    );
}

/** Prints a finished run as `run` does (one JSON document with --json, else tree, summary and result). */
/** Prints a run document (see reportRun); `started` undefined: no elapsed time (a run looked up later). */
export function reportDocument(doc: ReturnType<typeof documentOf>, options: Pick<RunCommandOptions, 'json' | 'tty' | 'out'>, started?: number): void {
  if (options.json) {
    options.out.write(`${JSON.stringify(doc)}\n`);
    return;
  }
  if (!options.tty) options.out.write(`${renderAscii(doc.branches)}\n\n`);
  const took = started === undefined ? '' : ` in ${((Date.now() - started) / 1000).toFixed(2)}s`;
  options.out.write(`run ${doc.runId} ${doc.status}${took} — ${summary(doc.metrics)}\n`);
  if (doc.error) options.out.write(`error: ${doc.error}\n`);
  options.out.write(`result:\n${JSON.stringify(doc.result ?? null, null, 2)}\n`);
  if (doc.resultTruncated) options.out.write(`(a preview: the whole result is ${doc.resultBytes} bytes; the API gives it all: GET /runs/{runId}/branches/root/result)\n`);
}

/** The one JSON document `run --json` prints for a scenario that could not be read (exit 2). */
export function invalidDocument(error: ScenarioError | PayloadTooLargeError) {
  return { runId: null, name: null, status: 'INVALID', result: null, error: error.message, field: ('field' in error ? error.field : undefined) ?? null, metrics: null, branches: [] };
}

/** First SIGINT: `first`; a second one: `second`. Returns the function that removes the handler. */
export function onInterrupt(first: () => void, second: () => void): () => void {
  let count = 0;
  const handler = () => (++count === 1 ? first() : second());
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

/** The summary line's counts (run and resume print it). */
export function summary(m: ReturnType<typeof computeMetrics>): string {
  return `${counted(m.totalCreated, 'branch', 'branches')} (${m.completed} completed, ${m.failed} failed, ${m.timedOut} timed out, ${m.cancelled} cancelled), max depth ${m.maxDepth}, success rate ${m.successRate === null ? '—' : `${m.successRate}%`}`;
}

/**
 * Says how to answer each callback a branch of the run awaits (the run waits for the answer, or
 * the callback's timeout): with a data folder, `callback --data` from another terminal (this
 * process takes the answer: local/callback-inbox.ts); without one, nothing outside can reach it.
 */
export function tellCallbacks(runtime: LocalRuntime, err: NodeJS.WritableStream, dataDir: string | undefined): void {
  runtime.bus.subscribe((event) => {
    if (event.type !== 'BranchWaitingForCallback') return;
    const how = dataDir
      ? `answer it with: npx branch-spawner callback ${event.runId} ${String(event.detail.token)} --data ${dataDir} --answer '<json>'`
      : 'nothing outside this process can answer it: run the scenario with --data <dir> (then answer with branch-spawner callback ... --data <dir>) or start it on branch-spawner dev';
    err.write(callbackNotice(event, how));
  });
}

/** The line that says a branch awaits a callback: until when, the agent's message, and `how` to answer it. */
export function callbackNotice(event: LifecycleEvent<'BranchWaitingForCallback'>, how: string): string {
  const until = new Date(event.detail.timeoutAt).toISOString();
  const message = event.detail.message === undefined ? '' : ` (${JSON.stringify(event.detail.message).slice(0, 200)})`;
  return `branch ${event.branchId} awaits a callback until ${until}${message}; ${how}\n`;
}

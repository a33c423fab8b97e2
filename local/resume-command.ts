/**
 * `branch-spawner resume <runId> --data <dir>`: carries on a run whose process died. The store
 * and the queues were kept in <dir> (`run --data <dir>`); step messages in flight come back by
 * visibility timeout; the fan-outs the dead process held in memory are started again
 * (resumeRun). Then it waits for the run's end and prints it like `run` (same exit codes).
 */
import { renderAscii } from '../core/tree';
import type { AggregatorFn } from '../core/aggregators';
import { openTrace, parkedNotice, readRunDocument, summary, tellCallbacks } from './run-command';
import { startLocalEngines } from './embedded-engines';
import { LOCAL_TEAM, LocalRuntime } from './runtime';
import { listDataRuns } from './data-runs';
import { loadScenarioFile } from './scenario-file';
import { refuseNonFolder, requireDataFolder } from './data-folder';
import type { ChaosOptions } from './chaos';

export interface ResumeCommandOptions {
  /** Without it, the unfinished runs kept in `dataDir` are listed (exit 0). */
  runId?: string;
  dataDir?: string;
  /** The scenario file the run came from, for its registered aggregators (when it has some). */
  scenario?: string;
  json: boolean;
  trace?: string;
  /** Leave dead-lettered steps in the DLQ (for `redrive`) instead of failing their branches. */
  keepPoison?: boolean;
  /** Faults to inject while resuming (`--chaos`, as for run). */
  chaos?: ChaosOptions;
  /** On the journal tier: flush each journal write to the disk. */
  fsync?: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** `resume --data <dir>` without an id: the runs of the folder that have not ended, newest last. */
async function listUnfinished(dataDir: string, out: NodeJS.WritableStream): Promise<number> {
  const recorded = await listDataRuns(dataDir);
  if (recorded.length === 0) {
    out.write(`no runs recorded in ${dataDir} (runs started with run --data ${dataDir} are listed here)\n`);
    return 0;
  }
  // Only the store is opened: no poller may move a run while it is being listed.
  const engines = await startLocalEngines({ dataDir });
  try {
    const unfinished = [];
    const unstarted = [];
    for (const entry of recorded) {
      const run = await engines.store.getRun({ team: LOCAL_TEAM, runId: entry.runId });
      if (run?.status === 'RUNNING') unfinished.push(entry);
      // Recorded before it started: its process died before the run was written.
      else if (!run) unstarted.push(entry);
    }
    for (const entry of unstarted) {
      out.write(`${entry.runId}  ${entry.name}  ${entry.scenario}  never started (its process ended first): run the scenario again\n`);
    }
    if (unfinished.length === 0) {
      out.write(`every run recorded in ${dataDir} has ended; nothing to resume\n`);
      return 0;
    }
    out.write(`unfinished runs in ${dataDir} (resume one with: npx branch-spawner resume <runId> --data ${dataDir}):\n`);
    for (const entry of unfinished) {
      out.write(`${entry.runId}  ${entry.name}  ${entry.scenario}  started ${new Date(entry.startedAt).toISOString()}\n`);
    }
    return 0;
  } finally {
    await engines.close();
  }
}

export async function resumeCommand(options: ResumeCommandOptions): Promise<number> {
  if (!options.dataDir) {
    options.err.write('error: resume needs --data <dir>, the folder the run kept its state in (run --data <dir>)\n');
    return 2;
  }
  // Listing reads the folder and creates nothing (a folder without runs says so; a file is refused).
  if (!options.runId) {
    refuseNonFolder(options.dataDir);
    return listUnfinished(options.dataDir, options.out);
  }
  // The folder a run kept its state in: a missing or empty one is a mistake, not a new folder.
  requireDataFolder('resume', options.dataDir);
  const runId = options.runId;
  let aggregators: Record<string, AggregatorFn> = {};
  if (options.scenario) aggregators = (await loadScenarioFile(options.scenario)).aggregators;
  const sink = await openTrace(options.trace);
  const started = Date.now();
  let runtime: LocalRuntime;
  try {
    runtime = await LocalRuntime.start({ dataDir: options.dataDir, fsync: options.fsync, aggregators, chaos: options.chaos, poison: options.keepPoison ? 'keep' : 'fail',
      onParked: parkedNotice(options.err, options.dataDir),
    });
  } catch (error) {
    await sink?.close();
    throw error;
  }
  if (sink) runtime.bus.subscribe(sink.subscriber);
  tellCallbacks(runtime, options.err, options.dataDir);
  try {
    const scope = { team: runtime.team, runId: runId };
    const existing = await runtime.deps.store.getRun(scope);
    if (!existing) {
      options.err.write(`error: no run ${runId} in ${options.dataDir}\n`);
      return 2;
    }
    const report = await runtime.resume(runId);
    if (!options.json && report.status === 'RUNNING') {
      options.out.write(
        `resuming run ${runId}: ${report.restarted} fan-out(s) started again, ${report.settled} sync point(s) settled, ` +
          `${report.reopened} reopened, ${report.resent} step(s) sent again; in-flight steps come back from the queue\n`,
      );
    }
    const run = await runtime.waitForRun(runId);
    const doc = await readRunDocument(runtime.deps, run, await runtime.costOf(runId));
    if (options.json) {
      options.out.write(`${JSON.stringify(doc)}\n`);
    } else {
      const seconds = ((Date.now() - started) / 1000).toFixed(2);
      options.out.write(`${renderAscii(doc.branches)}\n\n`);
      options.out.write(`run ${run.runId} ${run.status} (resumed, ${seconds}s) — ${summary(doc.metrics)}\n`);
      if (run.error) options.out.write(`error: ${run.error}\n`);
      options.out.write(`result:\n${JSON.stringify(run.result ?? null, null, 2)}\n`);
    }
    return run.status === 'COMPLETED' ? 0 : 1;
  } finally {
    await sink?.close();
    await runtime.close();
  }
}

/** What every system's run reports, and the process-level meters shared by all of them. */
import type { AwsCounts } from './aws-counters';
import type { TreeShape } from './workloads';

/**
 * Our runtime on each engine tier: `ours` on the memory tier (as `run` uses it), `ours-data` on
 * the journal tier with a data folder (as `run --data` uses it), `ours-engines` on dynalite +
 * fauxqs with nothing kept (`run --engines`; AWS requests are counted there), `ours-engines-data`
 * on dynalite + fauxqs with a data folder (what `--data` used before the journal tier).
 */
export type SystemName = 'ours' | 'ours-data' | 'ours-engines' | 'ours-engines-data' | 'langgraph' | 'langgraph-checkpointed' | 'promise-all';

export const OURS: readonly SystemName[] = ['ours', 'ours-data', 'ours-engines', 'ours-engines-data'];

export interface CaseSpec {
  system: SystemName;
  shape: TreeShape;
  latencyMs: number;
  concurrency: number;
  /** Local queue pollers (ours only); each takes up to 10 messages at a time. */
  pollers?: number;
  /** Stop waiting after this long and report progress instead of a makespan. */
  budgetMs?: number;
  /** Write a CPU profile of the measured window to this file. */
  profileFile?: string;
}

export interface FanInStats {
  samples: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Ours only: last child's end → sync point claimed (SyncPointReached), p50. */
  toClaimP50Ms?: number;
  /** Ours only: sync point claimed → the parent's resumed agent call, p50. */
  claimToResumeP50Ms?: number;
}

export interface CaseResult {
  spec: CaseSpec;
  status: 'completed' | 'timeout' | 'failed';
  error?: string;
  expectedBranches: number;
  completedBranches: number;
  makespanMs: number;
  cpuMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBaselineMb: number;
  rssPeakMb: number;
  fanIn: FanInStats;
  aws?: AwsCounts;
  /** Branches completed per second over the measured window (the rate when the budget ran out). */
  branchesPerSecond: number;
  runtimeErrors?: number;
  /** 1-minute load average when the case started (the machine may be shared: a hint of noise). */
  loadAvg1mAtStart?: number;
  /** With --profile: CPU of the measured window by layer (see bench/profile-summary.ts). */
  profile?: { totalMs: number; byLayer: { layer: string; ms: number; share: number }[]; topFunctions: { fn: string; owner: string; ms: number }[] };
}

/** Nearest-rank percentile of unsorted samples (0 when there are none). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function fanInStats(samples: number[]): FanInStats {
  return {
    samples: samples.length,
    p50Ms: round(percentile(samples, 50)),
    p95Ms: round(percentile(samples, 95)),
    maxMs: round(samples.length ? Math.max(...samples) : 0),
  };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const MB = 1024 * 1024;

/** Wall clock, CPU and resident memory of this process over one measured window. */
export class ProcessMeter {
  private readonly rssBaseline = process.memoryUsage.rss();
  private rssPeak = this.rssBaseline;
  private readonly timer: NodeJS.Timeout;
  private readonly cpu0 = process.cpuUsage();
  private readonly t0 = performance.now();

  constructor(sampleMs = 20) {
    // Sampled: RSS peaks last far longer than the sampling period (heap growth, not spikes).
    this.timer = setInterval(() => {
      this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss());
    }, sampleMs);
    this.timer.unref();
  }

  stop() {
    const wallMs = performance.now() - this.t0;
    const cpu = process.cpuUsage(this.cpu0);
    clearInterval(this.timer);
    this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss());
    return {
      wallMs,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      rssBaselineMb: this.rssBaseline / MB,
      rssPeakMb: this.rssPeak / MB,
    };
  }
}

/** An agent call of the peers: the same latency as the script agents' $delayMs, nothing at 0 ms. */
export function agentCall<T>(latencyMs: number, response: T): Promise<T> {
  if (latencyMs <= 0) return Promise.resolve(response);
  return new Promise((resolve) => setTimeout(() => resolve(response), latencyMs));
}

/** Runs fn over items with at most `limit` in flight (the per-fan-out semaphore of the peers). */

/**
 * CPU profile of the measured window only (not start-up nor warm-up), written as a
 * .cpuprofile file for bench/profile-summary.ts or Chrome DevTools.
 */
export async function startProfiler(file: string | undefined): Promise<() => Promise<void>> {
  if (!file) return async () => undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

export { mapLimit } from '../core/map-limit';

/** The process figures every runner reports, rounded for the table. */
export function processFigures(m: ReturnType<ProcessMeter['stop']>, completed: number) {
  return {
    makespanMs: round(m.wallMs),
    cpuMs: round(m.cpuUserMs + m.cpuSystemMs),
    cpuUserMs: round(m.cpuUserMs),
    cpuSystemMs: round(m.cpuSystemMs),
    rssBaselineMb: round(m.rssBaselineMb, 1),
    rssPeakMb: round(m.rssPeakMb, 1),
    branchesPerSecond: round((completed / m.wallMs) * 1000, 1),
  };
}

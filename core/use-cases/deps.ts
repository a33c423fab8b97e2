/** What the use cases run on: the ports plus the few pure services they need. */
import type { AggregatorRegistry } from '../aggregators';
import type { LifecycleEvent } from '../events';
import type { FanOutDispatch } from '../fan-out-plan';
import type { RunRecord, Scope } from '../model';
import type { AgentInvoker, BranchStore, Clock, CostSink, EventPublisher, FanOutOrchestrator, StepQueue } from '../ports';

/** Named points where fault injection may make the worker "crash" (`--chaos crash=<point>`). */
export type CrashPoint =
  | 'after-read-branch'
  | 'after-write-children'
  | 'before-enqueue'
  | 'after-mark-complete'
  | 'before-task-success'
  | 'inside-aggregate';

export interface Faults {
  /**
   * Throws to simulate a crash at `point`; a no-op unless fault injection is on. `key` names the
   * piece of work that reached the point (run, branch, step or sync point), so an injector can
   * crash each piece of work a bounded number of times and let its retry through.
   */
  hit(point: CrashPoint, key: string): void;
}

export interface SpawnerDeps {
  store: BranchStore;
  queue: StepQueue;
  fanOut: FanOutOrchestrator;
  events: EventPublisher;
  invoker: AgentInvoker;
  clock: Clock;
  aggregators: AggregatorRegistry;
  faults?: Faults;
  /** Gives the abort signal for a branch's in-flight agent call (local runtime). */
  signalFor?(scope: Scope, branchId: string): AbortSignal | undefined;
  /** The cost meter, for the usage no adapter sees (e.g. state transitions of the fan-out tasks). */
  meter?: CostSink;
  /** Caches the immutable part of runs across steps (agents, limits); optional. */
  runCache?: Map<string, RunRecord>;
  /** How fan-outs dispatch children (core/fan-out-plan.ts): in batches unless this says per child. */
  fanOutDispatch?: FanOutDispatch;
}

/** A crash point reached by the work `subject` (e.g. `root.1@2`, `root#1`) of the run `scope`. */
export function hit(deps: SpawnerDeps, point: CrashPoint, scope: Scope, subject: string): void {
  deps.faults?.hit(point, `${scope.team}/${scope.runId}/${subject}`);
}

export async function publish(deps: SpawnerDeps, ...events: LifecycleEvent[]): Promise<void> {
  if (events.length) await deps.events.publish(events);
}

/** Reads a run's configuration; uses the cache because agents and limits never change. */
export async function loadRun(deps: SpawnerDeps, scope: Scope): Promise<RunRecord | undefined> {
  const key = `${scope.team}/${scope.runId}`;
  const cached = deps.runCache?.get(key);
  if (cached) return cached;
  const run = await deps.store.getRun(scope);
  if (run && deps.runCache) {
    if (deps.runCache.size > 500) deps.runCache.delete(deps.runCache.keys().next().value as string);
    deps.runCache.set(key, run);
  }
  return run;
}

/** Drops keys whose value is undefined, so a patch never erases a field by accident. */
export function defined<T extends object>(patch: T): T {
  const kept: Record<string, unknown> = {};
  for (const key in patch) if (patch[key] !== undefined) kept[key] = patch[key];
  return kept as T;
}

export function scopeOf(x: Scope): Scope {
  return { team: x.team, runId: x.runId };
}

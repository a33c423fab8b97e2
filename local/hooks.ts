/**
 * Lifecycle hooks in code (`branch-spawner run --hooks ./hooks.ts`, or `hooks` given to the
 * library): functions called as the tree grows, fed by the lifecycle events. They run one at a
 * time, in the order of the events, off the run's path (a slow hook does not slow the run down);
 * a hook that throws, or does not return within its timeout, is reported and never changes the
 * run: each call gets copies of what it is given, and the hooks module of `--hooks` runs in a
 * worker thread of its own (adapters/modules/module-host), where a stray rejection, a thrown
 * timer or `process.exit` ends at most the worker. Each event reaches the hooks once per process:
 * one told again carries the same `eventId` and is dropped. `drain()` waits for the ones queued.
 */
import { resolve } from 'node:path';
import { moduleHost } from '../adapters/modules/module-host';
import { isRunEnd, type BranchEventDetail, type LifecycleEvent, type SyncPointChildResult } from '../core/events';
import type { BranchRecord, BranchType, RunStatus, Scope } from '../core/model';
import type { CompletionReason } from '../core/fan-in-decision';
import { errorMessage, ModuleCodeError, ValidationError } from '../core/errors';
import type { LocalRuntime } from './runtime';

/** How long one hook call may take before it is reported and the next one runs (default). */
export const HOOK_TIMEOUT_MS = 10_000;
/**
 * Event ids the hooks remember to drop repeats (about 10 MB at most): a repeat comes soon after
 * the first (the retry of the work that told it), well within the last 100,000 events.
 */
export const HOOK_DEDUPE_IDS = 100_000;

/** The last `capacity` ids seen, oldest forgotten first. */
export class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly capacity: number) {}

  /** False when `id` was seen (and is still remembered); an event without an id is always new. */
  add(id: string | undefined): boolean {
    if (id === undefined) return true;
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }
}

export interface HookRun {
  runId: string;
  team: string;
  status: RunStatus;
  name?: string;
  /** onRunEnded: the run's result (COMPLETED) or error. */
  result?: unknown;
  error?: string;
}

export interface HookBranch {
  id: string;
  runId: string;
  team: string;
  parentId: string | null;
  agent: string;
  type: BranchType;
  depth: number;
  status: string;
}

export interface HookSyncPoint {
  runId: string;
  team: string;
  seq: number;
  outcome: 'resume' | 'fail';
  reason?: string;
  /** Why the fan-out ended, as a `continue` parent is told: ALL_COMPLETED, MIN_SUCCESSFUL_REACHED or FAILURE_TOLERANCE_EXCEEDED. */
  completion_reason?: CompletionReason;
  counters: { total: number; succeeded: number; failed: number; cancelled: number };
}

export interface LifecycleHooks {
  onRunStarted?(run: HookRun): unknown;
  onBranchCreated?(branch: HookBranch): unknown;
  onBranchCompleted?(branch: HookBranch, result: unknown): unknown;
  onBranchFailed?(branch: HookBranch, error: string): unknown;
  onBranchCancelled?(branch: HookBranch): unknown;
  /** `results`: each child of the sync point with its status and result or error, in child order. */
  onSynchronizationPoint?(parentId: string, results: SyncPointChildResult[], syncPoint: HookSyncPoint): unknown;
  onRunEnded?(run: HookRun): unknown;
}

export const HOOK_NAMES = [
  'onRunStarted',
  'onBranchCreated',
  'onBranchCompleted',
  'onBranchFailed',
  'onBranchCancelled',
  'onSynchronizationPoint',
  'onRunEnded',
] as const satisfies readonly (keyof LifecycleHooks)[];

export interface HookError {
  hook: keyof LifecycleHooks;
  event: LifecycleEvent;
  error: unknown;
}

export interface AttachedHooks {
  /** Resolves once every hook call queued so far has returned. */
  drain(): Promise<void>;
  detach(): void;
  readonly errors: HookError[];
}

/** Subscribes the hooks to the runtime's events; full results come from the store when an event's were capped. */
export function attachHooks(
  runtime: Pick<LocalRuntime, 'bus' | 'deps'>,
  hooks: LifecycleHooks,
  onError: (failure: HookError) => void = () => undefined,
  timeoutMs = HOOK_TIMEOUT_MS,
): AttachedHooks {
  const errors: HookError[] = [];
  let chain: Promise<void> = Promise.resolve();
  const call = async (hook: keyof LifecycleHooks, event: LifecycleEvent, args: () => Promise<unknown[]>) => {
    const fn = hooks[hook] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn !== 'function') return;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Copies: a hook that changes what it is given changes nothing of the run's.
      const values = structuredClone(await args());
      const timedOut = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new ModuleCodeError(`did not return within ${timeoutMs} ms`)), timeoutMs);
      });
      await Promise.race([Promise.resolve().then(() => fn.apply(hooks, values)), timedOut]);
    } catch (error) {
      const failure = { hook, event, error };
      errors.push(failure);
      try {
        onError(failure);
      } catch {
        // reporting must not break the chain either
      }
    } finally {
      clearTimeout(timer);
    }
  };
  const dispatch = (event: LifecycleEvent): Promise<void> | undefined => {
    const scope: Scope = { team: event.team, runId: event.runId };
    const branch = (d: BranchEventDetail): HookBranch => ({
      id: event.branchId!,
      runId: event.runId,
      team: event.team,
      parentId: d.parentId ?? null,
      agent: d.agent,
      type: d.type,
      depth: d.depth,
      status: d.status,
    });
    const stored = () => runtime.deps.store.getBranch(scope, event.branchId!);
    if (isRunEnd(event)) {
      return call('onRunEnded', event, async () => {
        const run = await runtime.deps.store.getRun(scope);
        return [{ ...scope, status: run?.status ?? event.detail.status, name: run?.name, result: run?.result ?? null, ...(run?.error ? { error: run.error } : {}) }];
      });
    }
    switch (event.type) {
      case 'RunStarted':
        return call('onRunStarted', event, async () => [{ ...scope, status: 'RUNNING', name: event.detail.name }]);
      case 'BranchCreated':
        return call('onBranchCreated', event, async () => [branch(event.detail)]);
      case 'BranchCompleted':
        return call('onBranchCompleted', event, async () => [branch(event.detail), event.detail.resultTruncated ? (await stored())?.result ?? null : event.detail.result ?? null]);
      case 'BranchFailed':
        return call('onBranchFailed', event, async () => [branch(event.detail), event.detail.error ?? event.detail.status]);
      case 'BranchCancelled':
        return call('onBranchCancelled', event, async () => [branch(event.detail)]);
      case 'SyncPointReached': {
        const d = event.detail;
        return call('onSynchronizationPoint', event, async () => {
          let results = d.results ?? [];
          if (d.resultsTruncated) results = await fullResults(runtime, scope, results);
          const syncPoint: HookSyncPoint = {
            ...scope,
            seq: d.seq,
            outcome: d.outcome,
            reason: d.reason,
            completion_reason: d.completion_reason,
            counters: { total: d.total, succeeded: d.succeeded, failed: d.failed, cancelled: d.cancelled },
          };
          return [event.branchId!, results, syncPoint];
        });
      }
    }
    return undefined;
  };
  // Each event once: a change told again (a retry after a crash, a duplicate delivery) carries the same eventId.
  const seen = new RecentIds(HOOK_DEDUPE_IDS);
  const unsubscribe = runtime.bus.subscribe((event) => {
    if (!seen.add(event.eventId)) return;
    chain = chain.then(() => dispatch(event));
  });
  return {
    drain: async () => {
      // A hook may be queued while an earlier one runs: wait until the chain stops growing.
      for (let seen = chain; ; seen = chain) {
        await seen;
        if (seen === chain) return;
      }
    },
    detach: unsubscribe,
    errors,
  };
}

async function fullResults(
  runtime: Pick<LocalRuntime, 'deps'>,
  scope: Scope,
  results: SyncPointChildResult[],
): Promise<SyncPointChildResult[]> {
  const records = await runtime.deps.store.getBranches(scope, results.map((r) => r.branchId));
  const byId = new Map<string, BranchRecord>(records.map((b) => [b.id, b]));
  return results.map((r) => {
    if (!r.resultTruncated) return r;
    const { resultTruncated: _cut, ...rest } = r;
    return { ...rest, result: byId.get(r.branchId)?.result ?? null };
  });
}

/**
 * Loads a hooks module in its worker: its function exports named like hooks (a default export
 * object counts too), each called there with copies of its arguments.
 */
export async function loadHooksModule(path: string, timeoutMs = HOOK_TIMEOUT_MS): Promise<LifecycleHooks> {
  const file = resolve(path);
  let functions: string[];
  try {
    functions = await moduleHost.functions(file);
  } catch (error) {
    throw new ValidationError(`--hooks: cannot load ${path}: ${(error as Error)?.message ?? error}`, 'hooks', { cause: error });
  }
  const hooks: LifecycleHooks = {};
  for (const name of HOOK_NAMES) {
    if (!functions.includes(name)) continue;
    (hooks as Record<string, unknown>)[name] = (...args: unknown[]) => moduleHost.call(file, name, args, { timeoutMs });
  }
  if (Object.keys(hooks).length === 0) {
    throw new ValidationError(`--hooks: ${path} exports none of ${HOOK_NAMES.join(', ')} as functions`, 'hooks');
  }
  return hooks;
}

/** How the CLI reports a hook that threw (whatever it threw). */
export function describeHookError(failure: HookError): string {
  const e = failure.error;
  // The worker's account of what the code did is the message itself.
  let message = errorMessage(e);
  if (e instanceof ModuleCodeError) message = e.thrownName && !e.message.startsWith(`${e.thrownName}: `) ? `${e.thrownName}: ${e.message}` : e.message;
  return `hook ${failure.hook} threw on ${failure.event.type}${failure.event.branchId ? ` ${failure.event.branchId}` : ''}: ${message}`;
}

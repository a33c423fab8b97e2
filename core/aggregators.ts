/**
 * Aggregation strategies: the child results of a sync point become one value. The same registry
 * holds the completion functions that `complete_when: "fn:<name>"` names.
 */
import { AggregationError } from './errors';
import type { CompletionReason, CompletionVerdict } from './fan-in-decision';
import type { BranchStatus, SyncCounters } from './model';
import { COMPLETION_FN_PREFIX, type AggregatorRef, type WaitFor } from './protocol';

export interface ChildResult {
  branchId: string;
  agent: string;
  status: BranchStatus;
  result?: unknown;
  error?: string;
}

export interface AggregationContext {
  waitFor: WaitFor;
  /** `fn:<name>` when the spawn's `complete_when` named a completion function (then `waitFor` is `all`, unused). */
  completeWhen?: string;
  metadata?: Record<string, unknown>;
  /** For a completion function: the children's counts so far. */
  counters?: SyncCounters;
}

export type AggregatorFn = (children: ChildResult[], context: AggregationContext) => unknown;

export class AggregatorRegistry {
  private readonly fns = new Map<string, AggregatorFn>();

  constructor(initial: Record<string, AggregatorFn> = {}) {
    for (const [name, fn] of Object.entries(initial)) this.register(name, fn);
  }

  register(name: string, fn: AggregatorFn): void {
    if (name === 'default' || name === 'weighted_average' || name.startsWith('agent:') || name.startsWith(COMPLETION_FN_PREFIX)) {
      throw new AggregationError(`aggregator name "${name}" is reserved`);
    }
    if (typeof fn !== 'function') throw new AggregationError(`aggregator "${name}" is not a function`);
    this.fns.set(name, fn);
  }

  get(name: string): AggregatorFn | undefined {
    return this.fns.get(name);
  }

  names(): string[] {
    return [...this.fns.keys()];
  }
}

/** Children that count: the cancelled ones are left out of every aggregate. */
function included(children: ChildResult[]): ChildResult[] {
  return children.filter((c) => c.status !== 'CANCELLED');
}

export function defaultAggregate(children: ChildResult[], context: AggregationContext) {
  const counted = included(children);
  const results: Record<string, unknown> = {};
  const failures: Record<string, string> = {};
  for (const child of counted) {
    if (child.status === 'COMPLETED') results[child.branchId] = child.result ?? null;
    else failures[child.branchId] = child.error ?? child.status;
  }
  return {
    child_count: counted.length,
    results,
    failures,
    metadata: {
      aggregation_method: 'default',
      succeeded: Object.keys(results).length,
      failed: Object.keys(failures).length,
      cancelled: children.length - counted.length,
      // What decided when the spawn was done: its wait_for, or its completion function.
      wait_for: context.completeWhen ?? context.waitFor,
      ...(context.metadata ?? {}),
    },
  };
}

/**
 * What a parent with `on_failure: continue` gets: the aggregate (an object's fields, any other
 * value as `aggregate`), why the fan-out ended, and each child's agent, status and error, the
 * cancelled ones too.
 */
export function continueAggregate(value: unknown, reason: CompletionReason, children: ChildResult[]): Record<string, unknown> {
  const base = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { aggregate: value };
  const statuses: Record<string, { agent: string; status: BranchStatus; error?: string }> = {};
  for (const c of children) statuses[c.branchId] = { agent: c.agent, status: c.status, ...(c.error !== undefined && c.status !== 'COMPLETED' ? { error: c.error } : {}) };
  return { ...base, completion_reason: reason, children: statuses };
}

export function weightedAverage(children: ChildResult[]) {
  let weighted = 0;
  let total = 0;
  for (const child of children) {
    if (child.status !== 'COMPLETED') continue;
    const r = child.result as { value?: unknown; weight?: unknown } | null;
    const value = r && typeof r === 'object' ? r.value : undefined;
    const weight = r && typeof r === 'object' && r.weight !== undefined ? r.weight : 1;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new AggregationError(`weighted_average: child ${child.branchId} result needs a numeric "value"`);
    }
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      throw new AggregationError(`weighted_average: child ${child.branchId} "weight" must be a number ≥ 0`);
    }
    weighted += value * weight;
    total += weight;
  }
  if (total === 0) throw new AggregationError('weighted_average: the total weight of the succeeded children is 0');
  return { weighted_average: weighted / total, total_weight: total };
}

/**
 * Runs a code aggregator. `agent:<Name>` aggregators are run by the runtime as an AGGREGATION
 * branch; for those this returns the default aggregate, which becomes that agent's input.
 */
export function aggregate(
  ref: AggregatorRef,
  children: ChildResult[],
  context: AggregationContext,
  registry: AggregatorRegistry,
): unknown {
  switch (ref.kind) {
    case 'default':
    case 'agent':
      return defaultAggregate(children, context);
    case 'weighted_average':
      return weightedAverage(children);
    case 'registered': {
      const fn = registry.get(ref.name);
      if (!fn) throw new AggregationError(`aggregator "${ref.name}" is not registered`);
      try {
        return fn(included(children), context) ?? null;
      } catch (error) {
        throw new AggregationError(`aggregator "${ref.name}" threw: ${(error as Error)?.message ?? error}`, {
          cause: error,
        });
      }
    }
  }
}

/**
 * Asks a registered completion function (`complete_when: "fn:<name>"`) whether the fan-out is
 * done, given every child as it is now (those still running too). It must answer true or false;
 * anything else, or a throw, is an error that fails the parent.
 */
export function askCompletion(
  registry: AggregatorRegistry,
  name: string,
  children: ChildResult[],
  context: AggregationContext,
): CompletionVerdict {
  const fn = registry.get(name);
  if (!fn) return { error: `the completion function "${name}" is not registered` };
  let answer: unknown;
  try {
    answer = fn(children, context);
  } catch (error) {
    return { error: `the completion function "${name}" threw: ${(error as Error)?.message ?? String(error)}` };
  }
  if (typeof answer !== 'boolean') return { error: `the completion function "${name}" must return true or false, got ${typeof answer}` };
  return { met: answer };
}

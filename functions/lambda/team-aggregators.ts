/**
 * The team's registered aggregators in AWS: a team config's `aggregators` module is bundled into
 * every function at synth (infra/spawner-function.ts generates an entry that registers the
 * module's exports here before the handler runs). Without one, the registry has the built-ins only.
 */
import type { AggregatorFn } from '../../core/aggregators';

const registered: Record<string, AggregatorFn> = {};

/** Registers each exported function of a module (except a default export) under its name. */
export function registerAggregators(module: Record<string, unknown>): void {
  for (const [name, fn] of Object.entries(module)) {
    if (name !== 'default' && typeof fn === 'function') registered[name] = fn as AggregatorFn;
  }
}

export function teamAggregators(): Record<string, AggregatorFn> {
  return { ...registered };
}

/**
 * A run's limits, from the one table of them (core/limit-table.ts): their defaults, team maxima
 * and ceilings, the schema that validates overrides, and the one place that decides whether a
 * spawn is allowed (and why not).
 */
import { z } from 'zod';
import { LimitExceededError } from './errors';
import { AGENT_CALL_MARGIN_SECONDS, LIMIT_TABLE, STEP_WORKER_TIMEOUT_SECONDS, type LimitName } from './limit-table';

export type Limits = Record<LimitName, number>;

export const LIMIT_NAMES = Object.keys(LIMIT_TABLE) as LimitName[];

function column(key: 'default' | 'teamMax' | 'ceiling'): Readonly<Limits> {
  return Object.freeze(Object.fromEntries(LIMIT_NAMES.map((name) => [name, LIMIT_TABLE[name][key]])) as Limits);
}

export const DEFAULT_LIMITS: Readonly<Limits> = column('default');
/** A team stack's maxima where its config names none. */
export const TEAM_DEFAULT_MAXIMA: Readonly<Limits> = column('teamMax');
export const LIMIT_CEILINGS: Readonly<Limits> = column('ceiling');

/** Limit overrides (a scenario's or request's `limits`, a team's `limitMaxima`): within [min, ceiling]. */
export const limitsSchema = z
  .object(
    Object.fromEntries(
      LIMIT_NAMES.map((name) => {
        const { min, ceiling } = LIMIT_TABLE[name];
        return [
          name,
          z
            .number()
            .int('must be an integer')
            .min(min, min === 1 ? 'must be positive' : `must be ≥ ${min}`)
            .max(ceiling, `must be ≤ ${ceiling}, the ceiling for every run`)
            .optional(),
        ];
      }),
    ) as Record<LimitName, z.ZodOptional<z.ZodNumber>>,
  )
  .strict();

/** A team's maxima with the table's team caps filled in for the limits it does not name. */
export function teamLimitMaxima(named: Partial<Limits> = {}): Limits {
  const maxima = { ...TEAM_DEFAULT_MAXIMA };
  for (const name of LIMIT_NAMES) if (named[name] !== undefined) maxima[name] = named[name];
  return maxima;
}

/**
 * A run's limits: overrides over the defaults, each within the deployment's maxima (a team's
 * stack) and always within the ceilings. A default above a team's maximum is lowered to it.
 */
export function resolveLimits(overrides: Partial<Limits> = {}, maxima: Partial<Limits> = {}): Limits {
  const limits = {} as Limits;
  for (const name of LIMIT_NAMES) {
    const { min, ceiling } = LIMIT_TABLE[name];
    const stackMax = maxima[name];
    const cap = stackMax !== undefined && stackMax < ceiling ? stackMax : ceiling;
    const value = overrides[name];
    if (value === undefined) {
      limits[name] = Math.min(DEFAULT_LIMITS[name], cap);
      continue;
    }
    if (!Number.isInteger(value) || value < min) {
      throw new LimitExceededError(name, min, value, `limits.${name} must be an integer ≥ ${min}, got ${value}`);
    }
    if (value > cap) {
      const whose = cap === ceiling ? 'the ceiling for every run is' : 'this stack allows at most';
      throw new LimitExceededError(name, cap, value, `limits.${name} is ${value}; ${whose} ${cap}`);
    }
    limits[name] = value;
  }
  return limits;
}

/**
 * Refuses an agent whose own `timeoutMs` is past the run's agent call bound (`limits.agentTimeoutSeconds`):
 * the call would be cut at the bound anyway. Returns the offending field's message, or undefined.
 */
export function agentTimeoutRefusal(definition: { kind: string; timeoutMs?: number }, agentTimeoutSeconds: number): string | undefined {
  const { timeoutMs } = definition;
  if (timeoutMs === undefined || timeoutMs <= agentTimeoutSeconds * 1000) return undefined;
  return `${timeoutMs} ms is longer than an agent call may last (limits.agentTimeoutSeconds ${agentTimeoutSeconds} s, at most ${LIMIT_TABLE.agentTimeoutSeconds.ceiling} s: the step worker's ${STEP_WORKER_TIMEOUT_SECONDS} s timeout less ${AGENT_CALL_MARGIN_SECONDS} s)`;
}

export interface LimitRefusal {
  limit: LimitName;
  max: number;
  requested: number;
  message: string;
}

/** Checks the limits a spawn can break without reading shared state (depth, fan-out width). */
export function checkSpawnLimits(limits: Limits, parentDepth: number, childCount: number): LimitRefusal | undefined {
  if (parentDepth + 1 > limits.maxDepth) {
    return refusal('maxDepth', limits.maxDepth, parentDepth + 1, `children would be at depth ${parentDepth + 1}`);
  }
  if (childCount > limits.maxFanOut) {
    return refusal('maxFanOut', limits.maxFanOut, childCount, `${childCount} children in one spawn`);
  }
  return undefined;
}

/**
 * How many of a fan-out's children run at once: what its `max_concurrency` asks, never more than
 * the run's `limits.maxConcurrentBranches` (itself within the team's cap and the ceiling).
 */
export function fanOutConcurrency(limits: Pick<Limits, 'maxConcurrentBranches'>, requested?: number): number {
  return requested === undefined ? limits.maxConcurrentBranches : Math.min(requested, limits.maxConcurrentBranches);
}

export function branchBudgetRefusal(limits: Limits, current: number, childCount: number): LimitRefusal {
  return refusal(
    'maxBranches',
    limits.maxBranches,
    current + childCount,
    `the run has ${current} branches; ${childCount} more would pass the limit`,
  );
}

function refusal(limit: LimitName, max: number, requested: number, what: string): LimitRefusal {
  return { limit, max, requested, message: `${what}; ${limit} is ${max}` };
}

/** What the agent gets as its next input after a refused spawn. */
export function refusalInput(r: LimitRefusal): Record<string, unknown> {
  return { error: 'LimitExceeded', limit: r.limit, max: r.max, requested: r.requested, message: r.message };
}

export function refusalError(r: LimitRefusal): LimitExceededError {
  return new LimitExceededError(r.limit, r.max, r.requested, `LimitExceeded ${r.limit}: ${r.message}`);
}

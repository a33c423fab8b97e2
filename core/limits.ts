/** The one place that decides whether a spawn is allowed, and why not. */
import { LimitExceededError, type LimitName } from './errors';
import { DEFAULT_LIMITS, type Limits } from './model';

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

/** Merges overrides over defaults, refusing values that are not positive integers. */
export function resolveLimits(overrides: Partial<Limits> = {}, maxima: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides) as [keyof Limits, number | undefined][]) {
    if (value === undefined) continue;
    const min = key === 'maxInvalidResponses' ? 0 : 1;
    if (!Number.isInteger(value) || value < min) {
      throw new LimitExceededError(key, min, value, `limits.${key} must be an integer ≥ ${min}, got ${value}`);
    }
    const cap = maxima[key];
    if (cap !== undefined && value > cap) {
      throw new LimitExceededError(key, cap, value, `limits.${key} is ${value}; this stack allows at most ${cap}`);
    }
    limits[key] = value;
  }
  return limits;
}

/**
 * Run budgets: `limits.maxRunTokens` (input + output tokens over the whole run, as summed in
 * `metrics.usage`) and `limits.maxRunSeconds` (wall time since the run started). Their defaults,
 * team caps and ceilings are rows of the limits table (core/limit-table.ts). Pure rules;
 * core/use-cases/budget-gate.ts enforces them around each agent call.
 */
import { BudgetExceededError } from './errors';
import type { Limits, RunRecord } from './model';

export const BUDGETS = ['maxRunTokens', 'maxRunSeconds'] as const;
export type BudgetName = (typeof BUDGETS)[number];

/** Runs stored before budgets existed have none. */
function budgetsOf(run: Pick<RunRecord, 'limits'>): { maxRunTokens?: number; maxRunSeconds?: number } {
  const limits = run.limits as Partial<Limits>;
  return { maxRunTokens: limits.maxRunTokens, maxRunSeconds: limits.maxRunSeconds };
}

/** Seconds since the run started, to the tenth. */
export function elapsedSeconds(run: Pick<RunRecord, 'createdAt' | 'endedAt'>, now: number): number {
  return Math.round(((run.endedAt ?? now) - run.createdAt) / 100) / 10;
}

/** The budget the run has spent, if any (tokens first: they are what costs money). */
export function spentBudget(
  run: Pick<RunRecord, 'limits' | 'createdAt' | 'endedAt'>,
  usedTokens: number,
  now: number,
): BudgetExceededError | undefined {
  return tokensSpent(run, usedTokens) ?? timeSpent(run, now);
}

export function tokensSpent(run: Pick<RunRecord, 'limits'>, usedTokens: number): BudgetExceededError | undefined {
  const { maxRunTokens } = budgetsOf(run);
  return maxRunTokens !== undefined && usedTokens >= maxRunTokens
    ? new BudgetExceededError('maxRunTokens', maxRunTokens, usedTokens)
    : undefined;
}

export function timeSpent(run: Pick<RunRecord, 'limits' | 'createdAt' | 'endedAt'>, now: number): BudgetExceededError | undefined {
  const { maxRunSeconds } = budgetsOf(run);
  return maxRunSeconds !== undefined && now - run.createdAt >= maxRunSeconds * 1000
    ? new BudgetExceededError('maxRunSeconds', maxRunSeconds, elapsedSeconds(run, now))
    : undefined;
}

/** Milliseconds left before `maxRunSeconds` runs out (undefined: no time budget). */
export function timeLeftMs(run: Pick<RunRecord, 'limits' | 'createdAt'>, now: number): number | undefined {
  const { maxRunSeconds } = budgetsOf(run);
  return maxRunSeconds === undefined ? undefined : Math.max(0, run.createdAt + maxRunSeconds * 1000 - now);
}

export interface BudgetUsage {
  maxRunTokens?: { limit: number; used: number };
  maxRunSeconds?: { limit: number; used: number };
}

/** Usage against each budget the run has (for `metrics`); undefined when it has none. */
export function budgetUsage(
  run: Pick<RunRecord, 'limits' | 'createdAt' | 'endedAt'> & { usedTokens?: number },
  usage: { inputTokens: number; outputTokens: number },
  now: number,
): BudgetUsage | undefined {
  const { maxRunTokens, maxRunSeconds } = budgetsOf(run);
  if (maxRunTokens === undefined && maxRunSeconds === undefined) return undefined;
  const out: BudgetUsage = {};
  // The run's counter is what the budget was held to: it also has the tokens of calls whose
  // answers were dropped at the budget's end (not on any branch); the branches' sum otherwise.
  const used = Math.max(run.usedTokens ?? 0, usage.inputTokens + usage.outputTokens);
  if (maxRunTokens !== undefined) out.maxRunTokens = { limit: maxRunTokens, used };
  if (maxRunSeconds !== undefined) out.maxRunSeconds = { limit: maxRunSeconds, used: elapsedSeconds(run, now) };
  return out;
}

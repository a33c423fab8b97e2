/**
 * Every limit of a run, in one table. Each row gives a limit's
 * - `default`: what a run gets when its scenario or request names nothing;
 * - `teamMax`: what a team stack allows when its config (`limitMaxima`) names no maximum;
 * - `ceiling`: the absolute maximum. No scenario, request or team config can go past it: the CLI
 *   and `dev` refuse more (exit 2 / 400), a team config naming more does not deploy.
 * - `min`: the smallest accepted value; `why`: the reason for the ceiling (docs/reliability.md).
 *
 * Adding a limit is adding a row: its type, defaults, team cap, ceiling and the schema that
 * validates scenarios, requests and team configs all come from here (through core/limits.ts).
 * It imports nothing, so that the error naming a limit (core/errors.ts) can name its type.
 */

/**
 * The step worker's function timeout in AWS: every agent call runs inside one of its invocations,
 * which handles a batch of up to 10 steps. A call that outlived it would fail the whole batch.
 */
export const STEP_WORKER_TIMEOUT_SECONDS = 300;
/** Time an invocation keeps after its agent calls: the writes, events and sends of the step. */
export const AGENT_CALL_MARGIN_SECONDS = 30;

export interface LimitRow {
  default: number;
  teamMax: number;
  ceiling: number;
  min: number;
  /** One line: why the ceiling is what it is. */
  why: string;
}

export const LIMIT_TABLE = {
  maxDepth: {
    default: 5,
    teamMax: 10,
    ceiling: 100,
    min: 1,
    why: 'a branch carries its ancestry (ids, inherited memory); past 100 levels a tree is a loop, not a plan',
  },
  maxFanOut: {
    default: 50,
    teamMax: 1_000,
    ceiling: 10_000,
    min: 1,
    why: "one spawn's children are one fan-out (one execution, 40 batches of 250 at 10,000); 10,000 is the widest fan-out the product is built and measured for",
  },
  maxBranches: {
    default: 1_000,
    teamMax: 10_000,
    ceiling: 100_000,
    min: 1,
    why: "every branch is an item, a queue message and agent calls: 100,000 bounds one run's cost and storage",
  },
  maxConcurrentBranches: {
    default: 10,
    teamMax: 100,
    ceiling: 1_000,
    min: 1,
    why: 'children run at once per fan-out; 1,000 is the most concurrent Lambda pollers an SQS event source drives',
  },
  maxStepsPerBranch: {
    default: 25,
    teamMax: 100,
    ceiling: 1_000,
    min: 1,
    why: 'a branch that hands off 1,000 times is looping; it keeps its whole memory in one item',
  },
  branchTimeoutSeconds: {
    default: 900,
    teamMax: 3_600,
    ceiling: 86_400,
    min: 1,
    why: "24 h: a branch's timer must fit a JavaScript timer (24.8 days) and a run must end the day it started",
  },
  agentTimeoutSeconds: {
    default: 240,
    teamMax: STEP_WORKER_TIMEOUT_SECONDS - AGENT_CALL_MARGIN_SECONDS,
    ceiling: STEP_WORKER_TIMEOUT_SECONDS - AGENT_CALL_MARGIN_SECONDS,
    min: 1,
    why: "one agent call (all its attempts): it runs inside a step worker invocation (300 s), which needs 30 s after it; an agent's timeoutMs and a script's $delayMs stay under it",
  },
  maxAgentAttempts: {
    default: 5,
    teamMax: 10,
    ceiling: 20,
    min: 1,
    why: "attempts an agent's retry policy may give one call (retry.attempts); they all run within one agent call bound, and an agent that failed 20 times will not answer on the 21st",
  },
  maxInvalidResponses: {
    default: 2,
    teamMax: 5,
    ceiling: 10,
    min: 0,
    why: 'an agent that answers outside the protocol 10 times will not get it right on the 11th: more only costs calls',
  },
  maxToolCallsPerStep: {
    default: 20,
    teamMax: 100,
    ceiling: 1_000,
    min: 0,
    why: 'user tool calls an LLM agent makes in one step before it must act: each is a model turn too, and the whole loop runs within one branch timeout',
  },
  maxWaitSeconds: {
    default: 3_600,
    teamMax: 86_400,
    ceiling: 86_400,
    min: 1,
    why: "one durable wait or callback timeout (docs/agents.md): it holds a branch, not a worker, yet it cannot outlast the run it is part of (maxRunSeconds' ceiling, 24 h)",
  },
  // Run budgets (core/run-budget.ts): the whole tree shares them, however wide and deep it grows.
  maxRunTokens: {
    default: 1_000_000,
    teamMax: 10_000_000,
    ceiling: 1_000_000_000,
    min: 1,
    why: 'input + output tokens of every agent call in the run: a recursive tree multiplies calls by fan-out^depth, so the run, not the branch, holds the budget',
  },
  maxRunSeconds: {
    default: 3_600,
    teamMax: 21_600,
    ceiling: 86_400,
    min: 1,
    why: 'wall time of the whole run; 24 h, like branchTimeoutSeconds: a run must end the day it started',
  },
} as const satisfies Record<string, LimitRow>;

export type LimitName = keyof typeof LIMIT_TABLE;

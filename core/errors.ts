/**
 * Every error the product raises on purpose. Adapters translate SDK errors into these
 * (keeping the original as `cause`); API handlers map them to status codes in one place.
 */
export class BranchSpawnerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An agent returned something the protocol does not accept. `field` names the offending path. */
export class InvalidAgentResponseError extends BranchSpawnerError {
  readonly field: string | undefined;
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options);
    this.field = options?.field;
  }
}

/** An agent named an agent its topology does not allow (a kind of invalid response). */
export class TopologyViolationError extends InvalidAgentResponseError {}

import type { LimitName } from './limits';

export type { LimitName } from './limits';

export class LimitExceededError extends BranchSpawnerError {
  constructor(
    readonly limit: LimitName,
    readonly max: number,
    readonly requested: number,
    message?: string,
  ) {
    super(message ?? `limit ${limit} exceeded: ${requested} > ${max}`);
  }

  /** The request field it is about, as the API names fields. */
  get field(): string {
    return `limits.${this.limit}`;
  }
}

/** A run spent its whole budget (`limits.maxRunTokens` or `limits.maxRunSeconds`); the run fails with it. */
export class BudgetExceededError extends BranchSpawnerError {
  constructor(
    readonly budget: 'maxRunTokens' | 'maxRunSeconds',
    readonly max: number,
    readonly used: number,
  ) {
    super(`${BUDGET_EXCEEDED} ${budget} ${max}, used ${used}`);
  }

  /** Whether a branch's or run's error is a budget's end (every branch it cancels carries it). */
  static isMessage(message: string | undefined): message is string {
    return typeof message === 'string' && message.startsWith(BUDGET_EXCEEDED);
  }
}

const BUDGET_EXCEEDED = 'BudgetExceeded:';

/** A scenario or run request is malformed; `field` is a dotted path such as `agents.Planner.kind`. */
export class ValidationError extends BranchSpawnerError {
  constructor(
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class ScenarioError extends ValidationError {
  constructor(
    readonly file: string,
    message: string,
    field?: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, field, options);
  }
}

export class NotFoundError extends BranchSpawnerError {}

/** A conditional write lost: another writer changed the item first. */
export class ConflictError extends BranchSpawnerError {}

/** A value would not fit the store's item or the queue's message size. */
export class PayloadTooLargeError extends BranchSpawnerError {
  /** The part of a document from outside that makes it too large, when known. */
  readonly field: string | undefined;
  constructor(
    message: string,
    readonly size: number,
    readonly max: number,
    options?: { cause?: unknown; field?: string },
  ) {
    super(message, options);
    this.field = options?.field;
  }
}

/** Something only one process may hold at a time (a `--data` folder) is held by another. */
export class InUseError extends BranchSpawnerError {
  constructor(
    message: string,
    readonly pid: number,
  ) {
    super(message);
  }
}

export class AgentInvocationError extends BranchSpawnerError {
  constructor(
    readonly agent: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class AgentTimeoutError extends AgentInvocationError {}

/** The model server refused a request that offered tools (`toolCalling: auto` then falls back to text). */
export class ToolsRefusedError extends AgentInvocationError {}

export class AggregationError extends BranchSpawnerError {}

/** The request is not allowed for this caller (e.g. an inline agent where the stack forbids it). */
export class ForbiddenError extends BranchSpawnerError {}

/** A transient infrastructure failure worth retrying (throttling, 5xx). */
export class TransientError extends BranchSpawnerError {}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

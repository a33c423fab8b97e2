/**
 * Every error the product raises on purpose. Adapters translate SDK errors into these
 * (keeping the original as `cause`); API handlers map them to status codes in one place.
 */
import type { LimitName } from './limit-table';

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

/** What the request is about existed but is over for good (a callback whose branch ended or timed out). */
export class GoneError extends BranchSpawnerError {}

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
  /** Tokens the call reported before it failed: spent all the same (counted against the run's budget). */
  readonly usage?: { inputTokens: number; outputTokens: number };

  constructor(
    readonly agent: string,
    message: string,
    options?: { cause?: unknown; usage?: { inputTokens: number; outputTokens: number } },
  ) {
    super(message, options);
    if (options?.usage) this.usage = options.usage;
  }
}

export class AgentTimeoutError extends AgentInvocationError {}

/**
 * The agent could not be reached: a network error, an HTTP 5xx or 429, a function that could not
 * be invoked — after the transport's own retries. An agent's `retry` names it `transport`.
 */
export class AgentTransportError extends AgentInvocationError {
  /** How long the server asked to wait before the next attempt (an HTTP 429's Retry-After), if it did. */
  readonly retryAfterMs?: number;

  constructor(agent: string, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(agent, message, options);
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** The model server refused a request that offered tools (`toolCalling: auto` then falls back to text). */
export class ToolsRefusedError extends AgentInvocationError {}

/**
 * The data folder cannot be used: its journal is damaged, or the disk refuses a write (full,
 * read-only, no permission). What was written before stays whole; the CLI says so in one line
 * (exit 2) and `resume` carries on once the folder is fixed.
 */
export class DataFolderError extends BranchSpawnerError {
  constructor(
    message: string,
    /** The system's error code (ENOSPC, EROFS, EACCES, ...) when the disk refused. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Error codes of a disk that refuses writes: retrying at once will not help. */
const DISK_REFUSALS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO']);

/** The code of a file-system error that a retry will not fix, if it is one. */
export function diskRefusal(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISK_REFUSALS.has(code) ? code : undefined;
}

/** Code the user brought (a module agent, a hook, a tool) threw, exited or misbehaved; the message says how. */
export class ModuleCodeError extends BranchSpawnerError {
  /** The name of the Error the code threw, when it threw one (`message` is then its message). */
  readonly thrownName?: string;

  constructor(message: string, options?: { cause?: unknown; thrownName?: string }) {
    super(message, options);
    if (options?.thrownName) this.thrownName = options.thrownName;
  }
}

export class AggregationError extends BranchSpawnerError {}

/** The request is not allowed for this caller (e.g. an inline agent where the stack forbids it). */
export class ForbiddenError extends BranchSpawnerError {}

/**
 * A deployed API answered a request with an error (the CLI's remote mode). `status` and `code`
 * (the API's or API Gateway's error name) are kept; 401/403 name the credentials that were used.
 */
export class RemoteApiError extends BranchSpawnerError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A transient infrastructure failure worth retrying (throttling, 5xx). */
export class TransientError extends BranchSpawnerError {}

/** The longest error text kept (a branch's or run's `error`, a hook's report): errors from outside can be any size. */
export const MAX_ERROR_CHARS = 8 * 1024;

/** Cuts a message to MAX_ERROR_CHARS, saying how much was left out. */
export function boundedMessage(message: string, max = MAX_ERROR_CHARS): string {
  if (message.length <= max) return message;
  const note = ` … [${message.length - max} more characters cut]`;
  return message.slice(0, Math.max(0, max - note.length)) + note;
}

/** `Name: message` of an error (anything thrown), bounded; never throws. */
export function errorMessage(error: unknown): string {
  if (isError(error)) return boundedMessage(`${safeString(() => error.name ?? '')}: ${safeString(() => error.message ?? '')}`);
  return describeThrown(error);
}

/**
 * What was thrown, as one bounded line: an Error's message (with its name when not plain
 * `Error`), a string as is, anything else as JSON or its String(); never throws, whatever it is
 * (a null-prototype object, a `toString` that throws, a revoked proxy).
 */
export function describeThrown(thrown: unknown): string {
  let text: string;
  if (isError(thrown)) {
    const name = safeString(() => thrown.name ?? '');
    const message = safeString(() => thrown.message ?? '');
    text = name && name !== 'Error' ? `${name}: ${message}` : message;
  } else if (typeof thrown === 'string') {
    text = thrown;
  } else {
    text = safeString(() => JSON.stringify(thrown) ?? String(thrown), () => String(thrown), () => Object.prototype.toString.call(thrown));
  }
  return boundedMessage(text);
}

function isError(value: unknown): value is Error {
  try {
    return value instanceof Error;
  } catch {
    return false; // a proxy whose getPrototypeOf throws
  }
}

/** The first of the attempts that gives a string without throwing. */
function safeString(...attempts: (() => unknown)[]): string {
  for (const attempt of attempts) {
    try {
      const value = attempt();
      if (typeof value === 'string') return value;
      if (value !== undefined) return String(value);
    } catch {
      // try the next way
    }
  }
  return '[a value that cannot be described]';
}

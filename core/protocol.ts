/**
 * The agent response protocol (docs/protocol.md): turns whatever an agent returned into one typed
 * decision, or an InvalidAgentResponseError that names what was wrong.
 */
import { z } from 'zod';
import { InvalidAgentResponseError } from './errors';
import { LIMIT_CEILINGS } from './limits';

// What a spawn asks for, in the protocol's terms; a waiting branch and its sync point keep them as given (core/model.ts).

/** What a spawn's sync point waits for: every child, the first, or a count of them (`wait_for`). */
export type WaitFor = 'all' | 'any' | number;

/** What a fan-out does when its failures pass what it tolerates: fail the parent, or resume it with the aggregate. */
export type OnFailure = 'fail' | 'continue';

/**
 * The per-fan-out options an agent gave beside `wait_for` (docs/protocol.md); each one left out
 * falls back to the run's setting (`limits.maxConcurrentBranches`, `failurePolicy`).
 */
export interface FanOutOptions {
  /** Children running at once (never more than the run's `limits.maxConcurrentBranches`). */
  maxConcurrency?: number;
  /** Failures tolerated: a count of children, or a fraction of them. */
  toleratedFailures?: { count: number } | { fraction: number };
  onFailure?: OnFailure;
  /** `complete_when: "fn:<name>"`: a registered completion function decides when the fan-out is done. */
  completeFn?: string;
}

/** Reference to how a sync point's child results become one value. */
export type AggregatorRef =
  | { kind: 'default' }
  | { kind: 'weighted_average' }
  | { kind: 'registered'; name: string }
  | { kind: 'agent'; agent: string };

/** One child a spawn asks for. */
export interface ChildSpec {
  agent: string;
  input: unknown;
  type: 'SIMPLE' | 'CONVERSATION';
  peers?: string[];
  maxTurns?: number;
}

export type Decision =
  | { kind: 'handoff'; agent: string; input: unknown }
  | { kind: 'continue'; input: unknown }
  | { kind: 'complete'; content: unknown }
  | SpawnDecision
  | SuspendDecision;

export interface SpawnDecision {
  kind: 'spawn';
  /** One group per sync point; canonical responses have exactly one group. */
  groups: ChildSpec[][];
  /** The `next_actions` dialect: the agent resumes with the list of group aggregates. */
  grouped: boolean;
  waitFor: WaitFor;
  aggregator: AggregatorRef;
  metadata?: Record<string, unknown>;
  inheritMemory: boolean;
  /** Per-fan-out options (`max_concurrency`, `tolerated_failures`, `on_failure`, `complete_when: "fn:<name>"`). */
  options?: FanOutOptions;
}

/** How `complete_when` names a registered completion function: `fn:<name>`, as `agent:<Name>` names an aggregator agent. */
export const COMPLETION_FN_PREFIX = 'fn:';
/** A completion function is asked with every child at each child's end: that many reads each time, so it is for small spawns. */
export const MAX_COMPLETION_FN_CHILDREN = 100;

export interface ParseContext {
  /** The agent that answered (copies in the `next_actions` dialect are copies of it). */
  currentAgent: string;
  /** The input of the step, handed on where a response gives no input of its own. */
  currentInput: unknown;
}

/** Largest raw text we try to read as a response; beyond it the response is invalid. */
export const MAX_RESPONSE_CHARS = 1_000_000;

const agentName = z.string().trim().min(1, 'must be a non-empty agent name').max(256, 'is too long');
const waitForSchema = z.union([
  z.literal('all'),
  z.literal('any'),
  z.number().int('must be "all", "any" or a positive integer').positive('must be a positive integer'),
]);
const COMPLETE_WHEN_FORMS = 'must be "all", "any", a positive integer or "fn:<name>" (a registered completion function)';
const completeWhenSchema = z.union([
  z.literal('all'),
  z.literal('any'),
  z.number().int(COMPLETE_WHEN_FORMS).positive(COMPLETE_WHEN_FORMS),
  z.string().regex(/^fn:\S+$/, COMPLETE_WHEN_FORMS).max(256, 'is too long'),
]);
const maxConcurrencySchema = z
  .number()
  .int('must be an integer')
  .min(1, 'must be positive')
  .max(LIMIT_CEILINGS.maxConcurrentBranches, `must be ≤ ${LIMIT_CEILINGS.maxConcurrentBranches}`);
// An integer is a count of children; a number below 1 is a fraction of them (1 means one child).
const toleratedFailuresSchema = z
  .number()
  .min(0, 'must be ≥ 0')
  .max(LIMIT_CEILINGS.maxFanOut, `must be ≤ ${LIMIT_CEILINGS.maxFanOut}`)
  .refine((n) => Number.isInteger(n) || n < 1, 'must be a count (an integer) or a fraction between 0 and 1');
const metadataSchema = z.record(z.string(), z.unknown());

/** The per-fan-out options beside `wait_for` (a script's canned responses are checked against them when a scenario is read). */
export const FAN_OUT_OPTION_SCHEMAS = {
  max_concurrency: maxConcurrencySchema.optional(),
  tolerated_failures: toleratedFailuresSchema.optional(),
  on_failure: z.enum(['fail', 'continue']).optional(),
  complete_when: completeWhenSchema.optional(),
};
const aggregatorSchema = z.string().trim().min(1, 'must be a non-empty aggregator name');

/**
 * The response forms, built around one agent-name schema: parsing uses any non-empty name; the
 * tools offered to LLM agents (core/protocol-tools.ts) use the names the topology allows, as an
 * enum, so both come from these very definitions.
 */
export function protocolSchemas(name: z.ZodType<string> = agentName) {
  const childSchema = z.object({
    agent: name,
    input: z.unknown().optional(),
    type: z
      .string()
      .transform((t) => t.toLowerCase())
      .pipe(z.enum(['simple', 'conversation']))
      .optional(),
    peers: z.array(name).optional(),
    max_turns: z.number().int().positive().max(1000).optional(),
  });

  const spawnOptions = {
    wait_for: waitForSchema.optional(),
    wait_for_all: z.boolean().optional(),
    aggregator: aggregatorSchema.optional(),
    metadata: metadataSchema.optional(),
    inherit_memory: z.boolean().optional(),
    ...FAN_OUT_OPTION_SCHEMAS,
  };

  return {
    invoke_agent: z.object({
      next_action: z.literal('invoke_agent'),
      action_input: z.union([name, z.object({ agent: name, input: z.unknown().optional() })]).optional(),
      agent: name.optional(),
      input: z.unknown().optional(),
    }),
    parallel_invoke: z.object({
      next_action: z.literal('parallel_invoke'),
      agents: z.array(name).optional(),
      action_input: z.record(z.string(), z.unknown()).optional(),
      agent_requests: z.record(z.string(), z.unknown()).optional(),
      branches: z.array(childSchema).optional(),
      ...spawnOptions,
    }),
    final_response: z.object({
      next_action: z.literal('final_response'),
      content: z.unknown().optional(),
      action_input: z.unknown().optional(),
    }),
    next_actions: z.object({
      next_actions: z.array(z.array(z.unknown()).min(1, 'a group must hold at least one action')),
      content: z.unknown().optional(),
      ...spawnOptions,
    }),
  };
}

const schemas = protocolSchemas();
const invokeSchema = schemas.invoke_agent;
const parallelSchema = schemas.parallel_invoke;
const finalSchema = schemas.final_response;
const nextActionsSchema = schemas.next_actions;

/**
 * The forms that suspend the branch without holding a worker (docs/protocol.md, "Waits and
 * callbacks"): a durable wait, and a callback someone outside answers. Their bounds (the run's
 * `maxWaitSeconds`) are checked where the run's limits are known (execute-step).
 */
export type SuspendDecision =
  /** `until` is epoch ms; the time left is worked out when the reply is acted on. */
  | { kind: 'wait'; seconds?: number; until?: number; input?: unknown }
  | { kind: 'callback'; timeoutSeconds?: number; message?: unknown };

/** The pausing forms' schemas (parsed here; offered as tools to LLM agents with `pauses: true`, core/protocol-tools.ts). */
export const suspendSchemas = {
  wait: z.object({
    next_action: z.literal('wait'),
    seconds: z.number().positive('must be a positive number of seconds').finite().optional(),
    until: z.string().max(64, 'must be an ISO 8601 date-time').optional(),
    input: z.unknown().optional(),
  }),
  wait_for_callback: z.object({
    next_action: z.literal('wait_for_callback'),
    timeout_seconds: z.number().int('must be a whole number of seconds').positive('must be a positive number of seconds').optional(),
    message: z.unknown().optional(),
  }),
};

function parseWait(value: z.infer<typeof suspendSchemas.wait>): SuspendDecision {
  if ((value.seconds === undefined) === (value.until === undefined)) {
    throw new InvalidAgentResponseError('wait needs either "seconds" or "until" (not both)', { field: 'seconds' });
  }
  let until: number | undefined;
  if (value.until !== undefined) {
    // A date-time with its zone (Z or an offset): a time without one means nothing to a server.
    until = /(?:Z|[+-]\d\d:?\d\d)$/i.test(value.until) ? Date.parse(value.until) : NaN;
    if (Number.isNaN(until)) {
      throw new InvalidAgentResponseError(`until must be an ISO 8601 date-time with its zone, e.g. 2030-01-01T09:00:00Z; got ${preview(value.until)}`, { field: 'until' });
    }
  }
  return {
    kind: 'wait',
    ...(value.seconds !== undefined ? { seconds: value.seconds } : { until }),
    ...(value.input !== undefined ? { input: value.input } : {}),
  };
}

const NEXT_ACTIONS = ['invoke_agent', 'parallel_invoke', 'final_response', 'wait', 'wait_for_callback'] as const;

export function parseAgentResponse(raw: unknown, context: ParseContext): Decision {
  const value = toObject(raw);
  if ('next_actions' in value) return parseNextActions(value, context);
  const action = value.next_action;
  if (action === undefined) {
    throw new InvalidAgentResponseError(
      `response must have "next_action" (${NEXT_ACTIONS.join(' | ')}) or "next_actions"`,
      { field: 'next_action' },
    );
  }
  switch (action) {
    case 'invoke_agent':
      return parseInvoke(check(invokeSchema, value), context);
    case 'parallel_invoke':
      return parseParallel(check(parallelSchema, value), context);
    case 'final_response': {
      const final = check(finalSchema, value);
      return { kind: 'complete', content: final.content ?? final.action_input ?? null };
    }
    case 'wait':
      return parseWait(check(suspendSchemas.wait, value));
    case 'wait_for_callback': {
      const callback = check(suspendSchemas.wait_for_callback, value);
      return {
        kind: 'callback',
        ...(callback.timeout_seconds !== undefined ? { timeoutSeconds: callback.timeout_seconds } : {}),
        ...(callback.message !== undefined ? { message: callback.message } : {}),
      };
    }
    default:
      throw new InvalidAgentResponseError(
        `next_action must be one of ${NEXT_ACTIONS.join(', ')}, got ${preview(action)}`,
        { field: 'next_action' },
      );
  }
}

function parseInvoke(value: z.infer<typeof invokeSchema>, context: ParseContext): Decision {
  const target = typeof value.action_input === 'string' ? value.action_input : value.action_input?.agent ?? value.agent;
  if (!target) {
    throw new InvalidAgentResponseError('invoke_agent needs the agent to call in "action_input" or "agent"', {
      field: 'action_input',
    });
  }
  const explicitInput =
    typeof value.action_input === 'object' && value.action_input && 'input' in value.action_input
      ? value.action_input.input
      : value.input;
  return { kind: 'handoff', agent: target, input: explicitInput === undefined ? context.currentInput : explicitInput };
}

function parseParallel(value: z.infer<typeof parallelSchema>, context: ParseContext): SpawnDecision {
  const inputs = value.action_input ?? value.agent_requests;
  let children: ChildSpec[];
  if (value.branches) {
    if (value.agents) {
      throw new InvalidAgentResponseError('give either "branches" or "agents", not both', { field: 'agents' });
    }
    children = value.branches.map((b, i) => {
      const type = b.type === 'conversation' ? 'CONVERSATION' : 'SIMPLE';
      if (type === 'SIMPLE' && (b.peers || b.max_turns)) {
        throw new InvalidAgentResponseError('peers and max_turns apply to conversation branches only', {
          field: `branches.${i}.type`,
        });
      }
      return {
        agent: b.agent,
        input: b.input === undefined ? context.currentInput : b.input,
        type,
        ...(type === 'CONVERSATION' ? { peers: b.peers ?? [], maxTurns: b.max_turns ?? 6 } : {}),
      };
    });
  } else {
    const names = value.agents ?? (inputs ? Object.keys(inputs) : undefined);
    if (!names) {
      throw new InvalidAgentResponseError('parallel_invoke needs "agents" (or "branches")', { field: 'agents' });
    }
    if (inputs && value.agents) {
      const unknown = Object.keys(inputs).find((name) => !value.agents!.includes(name));
      if (unknown !== undefined) {
        throw new InvalidAgentResponseError(`action_input names "${unknown}", which is not in "agents"`, {
          field: `action_input.${unknown}`,
        });
      }
    }
    children = names.map((agent) => ({
      agent,
      input: inputs && Object.hasOwn(inputs, agent) ? inputs[agent] : context.currentInput,
      type: 'SIMPLE' as const,
    }));
  }
  if (children.length === 0) {
    throw new InvalidAgentResponseError('parallel_invoke must name at least one agent', {
      field: value.branches ? 'branches' : 'agents',
    });
  }
  return {
    kind: 'spawn',
    groups: [children],
    grouped: false,
    ...spawnOptionsOf(value, children.length, children.length),
  };
}

function parseNextActions(raw: Record<string, unknown>, context: ParseContext): Decision {
  const value = check(nextActionsSchema, raw);
  const groups = value.next_actions;
  if (groups.length === 0) return { kind: 'complete', content: value.content ?? null };
  if (groups.length === 1 && groups[0].length === 1) return { kind: 'continue', input: groups[0][0] };
  const specs: ChildSpec[][] = groups.map((group) =>
    group.map((action) => ({ agent: context.currentAgent, input: action, type: 'SIMPLE' as const })),
  );
  // A loop, not Math.min(...): spreading a list of 100k+ groups overflows the stack.
  const smallest = specs.reduce((min, g) => Math.min(min, g.length), Infinity);
  const widest = specs.reduce((max, g) => Math.max(max, g.length), 0);
  return { kind: 'spawn', groups: specs, grouped: true, ...spawnOptionsOf(value, smallest, widest) };
}

function spawnOptionsOf(
  value: {
    wait_for?: WaitFor;
    wait_for_all?: boolean;
    aggregator?: string;
    metadata?: Record<string, unknown>;
    inherit_memory?: boolean;
    max_concurrency?: number;
    tolerated_failures?: number;
    on_failure?: 'fail' | 'continue';
    complete_when?: WaitFor | string;
  },
  childCount: number,
  widest: number,
): Omit<SpawnDecision, 'kind' | 'groups' | 'grouped'> {
  const completeWhen = value.complete_when;
  const completeFn = typeof completeWhen === 'string' && completeWhen.startsWith(COMPLETION_FN_PREFIX) ? completeWhen.slice(COMPLETION_FN_PREFIX.length) : undefined;
  if (completeWhen !== undefined && value.wait_for !== undefined && completeWhen !== value.wait_for) {
    throw new InvalidAgentResponseError('give either "complete_when" or "wait_for", not both', { field: 'complete_when' });
  }
  if (completeFn !== undefined && widest > MAX_COMPLETION_FN_CHILDREN) {
    throw new InvalidAgentResponseError(
      `complete_when "${completeWhen}" is for at most ${MAX_COMPLETION_FN_CHILDREN} children (it reads every child at each end); this spawn has ${widest}`,
      { field: 'complete_when' },
    );
  }
  const field = completeWhen !== undefined ? 'complete_when' : 'wait_for';
  const waitFor: WaitFor =
    completeFn !== undefined ? 'all' : ((completeWhen as WaitFor | undefined) ?? value.wait_for ?? (value.wait_for_all === false ? 'any' : 'all'));
  if (typeof waitFor === 'number' && waitFor > childCount) {
    throw new InvalidAgentResponseError(`${field} ${waitFor} is more than the ${childCount} children spawned`, { field });
  }
  const tolerated = value.tolerated_failures;
  const options: FanOutOptions = {
    ...(value.max_concurrency !== undefined ? { maxConcurrency: value.max_concurrency } : {}),
    ...(tolerated !== undefined ? { toleratedFailures: Number.isInteger(tolerated) ? { count: tolerated } : { fraction: tolerated } } : {}),
    ...(value.on_failure !== undefined ? { onFailure: value.on_failure } : {}),
    ...(completeFn !== undefined ? { completeFn } : {}),
  };
  return {
    waitFor,
    aggregator: parseAggregatorRef(value.aggregator ?? 'default'),
    ...(value.metadata ? { metadata: value.metadata } : {}),
    inheritMemory: value.inherit_memory ?? false,
    ...(Object.keys(options).length ? { options } : {}),
  };
}


export function parseAggregatorRef(name: string): AggregatorRef {
  if (name === 'default') return { kind: 'default' };
  if (name === 'weighted_average') return { kind: 'weighted_average' };
  if (name.startsWith('agent:')) {
    const agent = name.slice('agent:'.length).trim();
    if (!agent) throw new InvalidAgentResponseError('aggregator "agent:" needs an agent name', { field: 'aggregator' });
    return { kind: 'agent', agent };
  }
  return { kind: 'registered', name };
}

/** Accepts an object, a JSON string, a ```json fenced block, or prose around one JSON object. */
function toObject(raw: unknown): Record<string, unknown> {
  let value = raw;
  if (typeof raw === 'string') value = parseText(raw);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidAgentResponseError(`response must be a JSON object, got ${describe(value)}`, { field: '(root)' });
  }
  return value as Record<string, unknown>;
}

function parseText(text: string): unknown {
  if (text.length > MAX_RESPONSE_CHARS) {
    throw new InvalidAgentResponseError(
      `response is ${text.length} characters; at most ${MAX_RESPONSE_CHARS} are read`,
      { field: '(root)' },
    );
  }
  const trimmed = text.trim();
  const direct = tryJson(trimmed);
  if (direct.ok) return direct.value;
  const fence = /```(?:json|JSON)?\s*\n?([\s\S]*?)```/.exec(trimmed);
  if (fence) {
    const fenced = tryJson(fence[1].trim());
    if (fenced.ok) return fenced.value;
    throw new InvalidAgentResponseError(`the fenced block is not valid JSON: ${fenced.error}`, { field: '(root)' });
  }
  const start = trimmed.indexOf('{');
  const end = trimmed.lastIndexOf('}');
  if (start >= 0 && end > start) {
    const embedded = tryJson(trimmed.slice(start, end + 1));
    if (embedded.ok) return embedded.value;
  }
  throw new InvalidAgentResponseError(`response is not JSON: ${direct.error}`, { field: '(root)' });
}

function tryJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

function check<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  throw new InvalidAgentResponseError(`${field}: ${issue.message}`, { field, cause: parsed.error });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? 'a string' : typeof value;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

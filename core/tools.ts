/**
 * User tools of LLM agents (`tools:` in an agent's definition): what a definition may say, what
 * one tool call leaves behind (for the trace, the metrics and the budgets), and how those add up.
 * Running a tool is an adapter's job (adapters/tools).
 */
import { z } from 'zod';
import { boundValue } from './bounded-value';
import { PROTOCOL_TOOL_NAMES } from './protocol-tools';

/** Tool names as the tool-calling APIs accept them (OpenAI and Bedrock both). */
const toolName = z
  .string()
  .regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"')
  .refine((name) => !(PROTOCOL_TOOL_NAMES as readonly string[]).includes(name), {
    message: `is a protocol tool's name (${PROTOCOL_TOOL_NAMES.join(', ')})`,
  });
const positiveInt = z.number().int('must be an integer').positive('must be positive');

/** Default time a tool call may take, ms. */
export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
/** Longest a tool's `timeoutMs` may be (a step's tools run within the branch's timeout anyway). */
export const MAX_TOOL_TIMEOUT_MS = 900_000;
/** Characters of a tool's output the model gets; past this it is cut and marked. */
export const DEFAULT_TOOL_OUTPUT_CHARS = 20_000;
export const MAX_TOOL_OUTPUT_CHARS = 200_000;

const common = {
  description: z.string().max(2_000).optional(),
  /** False when running it twice does harm: a call in flight when its step was interrupted is then not run again. */
  idempotent: z.boolean().optional(),
  timeoutMs: positiveInt.max(MAX_TOOL_TIMEOUT_MS, `must be ≤ ${MAX_TOOL_TIMEOUT_MS}`).optional(),
  maxOutputChars: positiveInt.max(MAX_TOOL_OUTPUT_CHARS, `must be ≤ ${MAX_TOOL_OUTPUT_CHARS}`).optional(),
};
const parameters = z.record(z.string(), z.unknown()).optional();

const moduleTool = z
  .object({
    kind: z.literal('module'),
    module: z.string().min(1),
    export: z.string().min(1).optional(),
    name: toolName.optional(),
    parameters,
    ...common,
  })
  .strict()
  .refine((t) => t.name !== undefined || t.export !== undefined, {
    message: 'a module tool needs "name" or "export" (its name is the export unless given)',
    path: ['name'],
  });

const httpTool = z
  .object({
    kind: z.literal('http'),
    name: toolName,
    url: z.string().url('must be a URL'),
    headers: z.record(z.string(), z.string()).optional(),
    parameters,
    ...common,
  })
  .strict();

const lambdaTool = z
  .object({
    kind: z.literal('lambda'),
    name: toolName,
    /** The function's name or ARN (AWS, and the rehearsal). */
    functionName: z.string().min(1).max(256),
    parameters,
    ...common,
  })
  .strict();

const mcpTool = z
  .object({
    kind: z.literal('mcp'),
    /** stdio: the command that starts the server (local runs). */
    command: z.string().min(1).optional(),
    args: z.array(z.string()).max(100).optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().min(1).optional(),
    /** Streamable HTTP: the server's URL. */
    url: z.string().url('must be a URL').optional(),
    headers: z.record(z.string(), z.string()).optional(),
    /** Only these of the server's tools are offered (default: all). */
    include: z.array(z.string().min(1)).max(200).optional(),
    /** Put before each of the server's tool names (`<prefix>_<name>`), to keep names apart. */
    prefix: z.string().regex(/^[a-zA-Z0-9_-]{1,20}$/, 'must be 1-20 letters, digits, "_" or "-"').optional(),
    ...common,
  })
  .strict()
  .refine((t) => (t.command === undefined) !== (t.url === undefined), {
    message: 'an mcp tool needs either "command" (stdio) or "url" (streamable HTTP), not both',
    path: ['command'],
  });

export const toolDefinitionSchema = z.discriminatedUnion('kind', [moduleTool, httpTool, lambdaTool, mcpTool]);
export const toolsSchema = z.array(toolDefinitionSchema).max(50, 'at most 50 tool entries per agent');
export type ToolDefinition = z.infer<typeof toolDefinitionSchema>;
export type ModuleToolDefinition = z.infer<typeof moduleTool>;
export type HttpToolDefinition = z.infer<typeof httpTool>;
export type LambdaToolDefinition = z.infer<typeof lambdaTool>;
export type McpToolDefinition = z.infer<typeof mcpTool>;

export const TOOL_CALLING_MODES = ['auto', 'on', 'off'] as const;
export type ToolCallingMode = (typeof TOOL_CALLING_MODES)[number];

/**
 * How an agent answers: `off` (the text protocol), `on` (the protocol as tools; a server without
 * tool calling fails the step) or `auto` (tools, and the text protocol where the server refuses
 * them). An agent with user tools is `auto` unless it says otherwise; without, `off`.
 */
export function toolCallingOf(definition: { toolCalling?: ToolCallingMode; tools?: readonly unknown[] }): ToolCallingMode {
  return definition.toolCalling ?? (definition.tools?.length ? 'auto' : 'off');
}

/**
 * The input of a copy made by `parallel_tool_calls: branch`: the one tool call it runs before it
 * goes on reasoning (its memory is its parent's conversation up to that turn).
 */
export const BRANCHED_CALL_KEY = '$tool_call';

export interface BranchedCall {
  id: string;
  name: string;
  args: unknown;
}

/** The spawn that hands each tool call of one turn to a copy of the agent (inheriting its memory). */
export function branchedCallsResponse(agent: string, calls: readonly BranchedCall[]): Record<string, unknown> {
  return {
    next_action: 'parallel_invoke',
    branches: calls.map((call) => ({ agent, input: { [BRANCHED_CALL_KEY]: { id: call.id, name: call.name, args: call.args } } })),
    inherit_memory: true,
  };
}

/** The tool call a branched copy was made for, if its input is one. */
export function branchedCallOf(input: unknown): BranchedCall | undefined {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return undefined;
  const call = (input as Record<string, unknown>)[BRANCHED_CALL_KEY] as Record<string, unknown> | undefined;
  if (!call || typeof call !== 'object' || typeof call.id !== 'string' || typeof call.name !== 'string') return undefined;
  return { id: call.id, name: call.name, args: call.args };
}

export type ToolCallStatus = 'ok' | 'error' | 'timeout' | 'aborted' | 'refused' | 'interrupted';

/** One user tool call, as the trace (`ToolCalled`) and the metrics see it. */
export interface ToolCallRecord {
  /** The tool's name as the model called it. */
  tool: string;
  /** Where it ran: `module`, `http`, `lambda` or `mcp`. */
  kind: ToolDefinition['kind'] | 'unknown';
  status: ToolCallStatus;
  durationMs: number;
  /** Whole sizes (UTF-8 bytes of the arguments' JSON and of the output text). */
  argumentBytes: number;
  outputBytes: number;
  /** `inline`: the arguments, whole when within TOOL_TRACE_PREVIEW_BYTES, else a preview that says what it left out. */
  arguments?: unknown;
  /** `inline`: the output text, likewise whole or cut with a note of its whole size. */
  output?: string;
  /** The whole arguments kept in the run's blob store (`GET /runs/{runId}/values/{ref}`): past the preview, or always with `reference`. */
  argumentsRef?: string;
  /** The whole output (its JSON: a string), kept likewise. */
  outputRef?: string;
  error?: string;
}

/** What a trace record (and so a `ToolCalled` event) holds of a call's arguments and of its output, each. */
export const TOOL_TRACE_PREVIEW_BYTES = 1024;

/**
 * How a call's arguments and output appear in its `ToolCalled` event (a team setting in a stack):
 * `inline`, whole up to TOOL_TRACE_PREVIEW_BYTES and a preview past that, with a reference to the
 * whole value; `reference`, references only, so no tool content travels with the events (the
 * team's bus and whoever reads it).
 */
export const TOOL_VALUE_MODES = ['inline', 'reference'] as const;
export type ToolValueMode = (typeof TOOL_VALUE_MODES)[number];

/** The largest argument or output kept by reference; a larger one is kept as a preview of this size (saying what it left out). */
export const MAX_TOOL_VALUE_BYTES = 4 * 1024 * 1024;

/** Whether a value of this size is kept by reference under `mode`. */
export function keepsToolValue(mode: ToolValueMode, bytes: number): boolean {
  return mode === 'reference' || bytes > TOOL_TRACE_PREVIEW_BYTES;
}

/** The stored form of a value kept by reference: its JSON, within MAX_TOOL_VALUE_BYTES. */
export function keptToolValue(value: unknown): string {
  // A preview is about its budget (its JSON quoting and notes aside): a margin keeps it under the maximum.
  return JSON.stringify(boundValue(value ?? null, MAX_TOOL_VALUE_BYTES - 1024).value);
}

/** The arguments and output of a call as its trace record shows them under `mode`, with the references of those kept. */
export function toolTraceValues(
  args: unknown,
  output: string,
  mode: ToolValueMode,
  refs: { arguments?: string; output?: string } = {},
): Pick<ToolCallRecord, 'arguments' | 'output' | 'argumentsRef' | 'outputRef'> {
  return {
    ...(mode === 'inline'
      ? { arguments: boundValue(args ?? null, TOOL_TRACE_PREVIEW_BYTES).value, output: boundValue(output, TOOL_TRACE_PREVIEW_BYTES).value as string }
      : {}),
    ...(refs.arguments ? { argumentsRef: refs.arguments } : {}),
    ...(refs.output ? { outputRef: refs.output } : {}),
  };
}

/** One model turn of a tool loop that asked for user tools, and the results so far (by call id). */
export interface ToolTurn {
  text?: string;
  /** `refused`: the call is past maxToolCallsPerStep and is answered with this instead of run. */
  calls: { id: string; name: string; args: unknown; refused?: string }[];
  results: Record<string, { text: string; isError: boolean }>;
}

/**
 * A step's tool loop as it grows, kept in the branch record: a redelivered step (a crash, a lost
 * acknowledgement) continues from here instead of calling the model and the finished tools again.
 */
export interface ToolLoopCheckpoint {
  /** The step it belongs to (a checkpoint of another step is ignored). */
  step: number;
  turns: ToolTurn[];
  /** Tokens of the turns so far. */
  usage: { inputTokens: number; outputTokens: number };
  /** The calls made so far (their ToolCalled events went out when they ended). */
  records: ToolCallRecord[];
}

/** Per tool: calls, failed calls and time spent (summed over a branch's steps, then the run). */
export interface ToolStat {
  calls: number;
  errors: number;
  totalMs: number;
  maxMs: number;
}
export type ToolStats = Record<string, ToolStat>;

export function addToolCalls(stats: ToolStats | undefined, records: readonly ToolCallRecord[]): ToolStats | undefined {
  if (records.length === 0) return stats;
  const next: ToolStats = { ...stats };
  for (const r of records) {
    const s = next[r.tool] ?? { calls: 0, errors: 0, totalMs: 0, maxMs: 0 };
    next[r.tool] = {
      calls: s.calls + 1,
      errors: s.errors + (r.status === 'ok' ? 0 : 1),
      totalMs: s.totalMs + r.durationMs,
      maxMs: Math.max(s.maxMs, r.durationMs),
    };
  }
  return next;
}

export function mergeToolStats(into: ToolStats, add: ToolStats | undefined): ToolStats {
  for (const [tool, s] of Object.entries(add ?? {})) {
    const t = into[tool] ?? { calls: 0, errors: 0, totalMs: 0, maxMs: 0 };
    into[tool] = { calls: t.calls + s.calls, errors: t.errors + s.errors, totalMs: t.totalMs + s.totalMs, maxMs: Math.max(t.maxMs, s.maxMs) };
  }
  return into;
}

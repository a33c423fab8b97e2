/**
 * User tools of LLM agents: opens what an agent's `tools:` name (a module's function, an HTTP
 * endpoint, the tools of an MCP server over stdio or streamable HTTP), lists them to the model
 * with their schemas, and runs one call with a timeout, the step's abort and a bounded output.
 * A failing tool is an error result the model reads, not a failed step; only an abort (cancel,
 * run budget, branch timeout) ends the step.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { AgentInvocationError, errorMessage } from '../../core/errors';
import type { ToolSpec } from '../../core/protocol-tools';
import {
  DEFAULT_TOOL_OUTPUT_CHARS,
  DEFAULT_TOOL_TIMEOUT_MS,
  type HttpToolDefinition,
  type LambdaToolDefinition,
  type McpToolDefinition,
  type ModuleToolDefinition,
  type ToolCallRecord,
  type ToolDefinition,
  keepsToolValue,
  keptToolValue,
  toolTraceValues,
  type ToolValueMode,
} from '../../core/tools';
import { jsonBytes } from '../../core/bounded-value';
import type { BlobStore } from '../../core/ports';
import { whenAborted } from '../retry';
import { DEFAULT_MAX_RESPONSE_BYTES, readCappedText } from '../agents/http-invoker';
import type { ModuleInvokerOptions } from '../agents/module-invoker';

/** What a module tool's function receives besides its arguments. */
export interface ModuleToolContext {
  agent: string;
  branch: { id: string; runId: string };
  /** Aborted at the tool's timeout, on cancel, or when the run ends. */
  signal: AbortSignal;
}

export type ModuleTool = (args: unknown, context: ModuleToolContext) => unknown;

export interface ToolCallContext {
  agent: string;
  team: string;
  branchId: string;
  runId: string;
  /** The step's signal: cancel, run budget, branch timeout. */
  signal?: AbortSignal;
  /** How the call's arguments and output are traced (default: inline, nothing kept by reference). */
  trace?: ToolTrace;
}

/** How tool calls' arguments and outputs are traced, and where those kept by reference go (the run's blob store). */
export interface ToolTrace {
  mode: ToolValueMode;
  blobs?: BlobStore;
}

/** One tool the model may call. */
export interface UserTool {
  spec: ToolSpec;
  kind: ToolDefinition['kind'];
  timeoutMs: number;
  maxOutputChars: number;
  /** False: a call in flight when its step was interrupted is not run again. */
  idempotent: boolean;
  run(args: unknown, signal: AbortSignal, context: ToolCallContext): Promise<{ text: string; isError?: boolean }>;
}

export interface ToolOutcome {
  /** What the model gets back. */
  text: string;
  isError: boolean;
  record: ToolCallRecord;
}

export interface ToolBoxOptions extends ModuleInvokerOptions {
  fetch?: typeof fetch;
  /** The client of `lambda` tools (default: one for the environment's region and credentials, made at the first call). */
  lambdaClient?: LambdaClient;
  /** How calls' arguments and outputs are traced (ToolCalled): default inline, nothing kept by reference. */
  trace?: ToolTrace;
  /**
   * Where no local file may be loaded (a deployed stack): module tools come from these modules,
   * bundled at synth, by the path the definition names; a module not among them fails the step, saying so.
   */
  bundledModules?: BundledModules;
}

/** Modules bundled into a deployed function, by the path the tool definitions write (`module:`). */
export type BundledModules = Record<string, Record<string, unknown>>;

type McpSdk = {
  Client: typeof import('@modelcontextprotocol/sdk/client/index.js').Client;
  StdioClientTransport: typeof import('@modelcontextprotocol/sdk/client/stdio.js').StdioClientTransport;
  StreamableHTTPClientTransport: typeof import('@modelcontextprotocol/sdk/client/streamableHttp.js').StreamableHTTPClientTransport;
  getDefaultEnvironment: typeof import('@modelcontextprotocol/sdk/client/stdio.js').getDefaultEnvironment;
};
let mcpSdk: Promise<McpSdk> | undefined;
/** Loaded by the first MCP tool: runs without one never load the SDK. */
const loadMcp = (): Promise<McpSdk> =>
  (mcpSdk ??= Promise.all([
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/client/stdio.js'),
    import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
  ]).then(([c, s, h]) => ({
    Client: c.Client,
    StdioClientTransport: s.StdioClientTransport,
    StreamableHTTPClientTransport: h.StreamableHTTPClientTransport,
    getDefaultEnvironment: s.getDefaultEnvironment,
  })));

interface McpConnection {
  client: Client;
  tools: { name: string; description?: string; inputSchema: Record<string, unknown> }[];
}

/** Most tools one MCP server may offer an agent. */
const MAX_MCP_TOOLS = 200;

export class ToolBox {
  private readonly fetch: typeof fetch;
  private lambdaClient: LambdaClient | undefined;
  /** One connection per MCP server configuration, shared by every step of the process. */
  private readonly servers = new Map<string, Promise<McpConnection>>();

  readonly trace: ToolTrace;

  constructor(private readonly options: ToolBoxOptions = {}) {
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.trace = options.trace ?? { mode: 'inline' };
  }

  /** The agent's tools, MCP servers connected and listed (once per server). */
  async toolsFor(agent: string, definitions: readonly ToolDefinition[]): Promise<UserTool[]> {
    const tools: UserTool[] = [];
    for (const [i, def] of definitions.entries()) {
      const where = `agent ${agent} tools.${i}`;
      if (def.kind === 'module') tools.push(await this.moduleTool(where, def));
      else if (def.kind === 'http') tools.push(this.httpTool(def));
      else if (def.kind === 'lambda') tools.push(this.lambdaTool(def));
      else tools.push(...(await this.mcpTools(where, def)));
    }
    const seen = new Set<string>();
    for (const tool of tools) {
      if (seen.has(tool.spec.name)) throw new AgentInvocationError(agent, `agent ${agent} has two tools named "${tool.spec.name}"`);
      seen.add(tool.spec.name);
    }
    return tools;
  }

  /** Closes the MCP connections (stdio servers are stopped). */
  async close(): Promise<void> {
    const open = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(open.map((c) => c.then((conn) => conn.client.close()).catch(() => undefined)));
  }

  private async moduleTool(where: string, def: ModuleToolDefinition): Promise<UserTool> {
    const exportName = def.export ?? 'default';
    let fn: ModuleTool;
    const bundled = this.options.bundledModules;
    if (bundled) {
      const found = Object.hasOwn(bundled, def.module) ? bundled[def.module][exportName] : undefined;
      if (typeof found !== 'function') {
        const missing = Object.hasOwn(bundled, def.module) ? `has no function export "${exportName}"` : 'is not bundled into this stack';
        throw new AgentInvocationError(
          where,
          `${where}: module ${def.module} ${missing}: in AWS, module tools are those of the team registry's agents, bundled at synth (cdk deploy)`,
        );
      }
      fn = found as ModuleTool;
    } else {
      try {
        // Loaded by the first module tool: a deployed function never loads the module host (it needs tsx on disk).
        const { loadModuleAgent, resolveModulePath } = await import('../agents/module-invoker');
        // The module agents' loader: the same path rules and the same isolation as module agents.
        fn = (await loadModuleAgent(resolveModulePath(def.module, this.options.baseDir ?? process.cwd(), this.options.confineTo), exportName)) as unknown as ModuleTool;
      } catch (error) {
        throw new AgentInvocationError(where, `${where}: ${errorMessage(error)}`, { cause: error });
      }
    }
    const name = def.name ?? exportName;
    return {
      spec: { name, description: def.description ?? `the function ${exportName} of ${def.module}`, parameters: def.parameters ?? { type: 'object' } },
      kind: 'module',
      ...bounds(def),
      run: async (args, signal, context) => {
        const value = await fn(args, { agent: context.agent, branch: { id: context.branchId, runId: context.runId }, signal });
        return { text: typeof value === 'string' ? value : JSON.stringify(value ?? null) };
      },
    };
  }

  private httpTool(def: HttpToolDefinition): UserTool {
    return {
      spec: { name: def.name, description: def.description ?? `POST ${def.url}`, parameters: def.parameters ?? { type: 'object' } },
      kind: 'http',
      ...bounds(def),
      run: async (args, signal, context) => {
        const response = await this.fetch(def.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...def.headers },
          body: JSON.stringify({ tool: def.name, arguments: args, agent: context.agent, runId: context.runId, branchId: context.branchId }),
          signal,
        });
        const text = await readCappedText(response, DEFAULT_MAX_RESPONSE_BYTES, () => `the response of tool ${def.name} is over ${DEFAULT_MAX_RESPONSE_BYTES} bytes`, context.agent);
        if (!response.ok) return { text: `HTTP ${response.status}: ${text.slice(0, 500)}`, isError: true };
        return { text };
      },
    };
  }

  private lambdaTool(def: LambdaToolDefinition): UserTool {
    return {
      spec: { name: def.name, description: def.description ?? `the Lambda function ${def.functionName}`, parameters: def.parameters ?? { type: 'object' } },
      kind: 'lambda',
      ...bounds(def),
      run: async (args, signal, context) => {
        const { InvokeCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
        this.lambdaClient ??= this.options.lambdaClient ?? new LambdaClient({});
        const payload = { tool: def.name, arguments: args, agent: context.agent, runId: context.runId, branchId: context.branchId };
        const result = await this.lambdaClient.send(
          new InvokeCommand({ FunctionName: def.functionName, Payload: new TextEncoder().encode(JSON.stringify(payload)) }),
          { abortSignal: signal as never },
        );
        const text = result.Payload ? new TextDecoder().decode(result.Payload) : 'null';
        return result.FunctionError ? { text: `${def.functionName} raised ${result.FunctionError}: ${text.slice(0, 500)}`, isError: true } : { text };
      },
    };
  }

  private async mcpTools(where: string, def: McpToolDefinition): Promise<UserTool[]> {
    const conn = await this.connect(where, def);
    const listed = def.include ? conn.tools.filter((t) => def.include!.includes(t.name)) : conn.tools;
    return listed.map((t) => ({
      spec: {
        name: def.prefix ? `${def.prefix}_${t.name}` : t.name,
        description: t.description ?? t.name,
        parameters: t.inputSchema,
      },
      kind: 'mcp' as const,
      ...bounds(def),
      run: async (args, signal) => {
        const { client } = await this.connect(where, def);
        const result = await client.callTool({ name: t.name, arguments: (args ?? {}) as Record<string, unknown> }, undefined, {
          signal,
          // The tool's own timeout is the one that counts (see callTool below); this only keeps the SDK's default away.
          timeout: MAX_SDK_TIMEOUT_MS,
        });
        return { text: mcpText(result as { content?: unknown; structuredContent?: unknown }), isError: result.isError === true };
      },
    }));
  }

  private connect(where: string, def: McpToolDefinition): Promise<McpConnection> {
    const key = JSON.stringify([def.command, def.args, def.env, def.cwd, def.url, def.headers]);
    let conn = this.servers.get(key);
    if (!conn) {
      conn = this.open(def, () => this.servers.delete(key)).catch((error: unknown) => {
        this.servers.delete(key);
        const server = def.url ?? [def.command, ...(def.args ?? [])].join(' ');
        throw new AgentInvocationError(where, `${where}: cannot use the MCP server ${server}: ${errorMessage(error)}`, { cause: error });
      });
      this.servers.set(key, conn);
    }
    return conn;
  }

  private async open(def: McpToolDefinition, onClose: () => void): Promise<McpConnection> {
    const sdk = await loadMcp();
    const client = new sdk.Client({ name: 'branch-spawner', version: '0.1.0' });
    const transport = def.url
      ? new sdk.StreamableHTTPClientTransport(new URL(def.url), { requestInit: { headers: def.headers ?? {} } })
      : new sdk.StdioClientTransport({
          // `node` is the Node that runs branch-spawner (Node 22 from node_modules, whatever is on PATH).
          command: def.command === 'node' ? process.execPath : def.command!,
          args: def.args ?? [],
          // The SDK's short list of inherited variables (PATH, HOME, ...), plus what the definition adds.
          ...(def.env ? { env: { ...sdk.getDefaultEnvironment(), ...def.env } } : {}),
          ...(def.cwd ? { cwd: def.cwd } : {}),
          stderr: 'ignore',
        });
    client.onclose = onClose;
    await client.connect(transport);
    const tools: McpConnection['tools'] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      for (const t of page.tools) tools.push({ name: t.name, description: t.description, inputSchema: t.inputSchema as Record<string, unknown> });
      cursor = page.nextCursor;
    } while (cursor && tools.length < MAX_MCP_TOOLS);
    return { client, tools: tools.slice(0, MAX_MCP_TOOLS) };
  }
}

/** Longer than any tool's timeout: the MCP SDK's own request timeout never decides first. */
const MAX_SDK_TIMEOUT_MS = 24 * 3600 * 1000;

/**
 * Runs one tool call within its timeout and the step's signal, with its output bounded. A tool
 * that fails or times out gives an error result; only the step's own abort throws.
 */
export async function callTool(tool: UserTool, args: unknown, context: ToolCallContext): Promise<ToolOutcome> {
  const started = Date.now();
  const timeout = AbortSignal.timeout(tool.timeoutMs);
  const signal = context.signal ? AbortSignal.any([context.signal, timeout]) : timeout;
  // `whole`: the output before the model's cut (what is kept by reference, and its size).
  const record = async (status: ToolCallRecord['status'], text: string, error?: string, whole = text): Promise<ToolOutcome> => ({
    text,
    isError: status !== 'ok',
    record: {
      tool: tool.spec.name,
      kind: tool.kind,
      status,
      durationMs: Date.now() - started,
      ...(await tracedValues(args, whole, context)),
      ...(error !== undefined ? { error } : {}),
    },
  });
  let out: { text: string; isError?: boolean };
  try {
    // Raced against the signal: a tool that ignores its abort must not hold the step.
    out = await whenAborted(tool.run(args, signal, context), signal);
  } catch (error) {
    if (context.signal?.aborted) {
      throw new ToolCallAborted(await record('aborted', '', 'the step was aborted (cancel, budget or branch timeout)'), { cause: error });
    }
    if (timeout.aborted) {
      const message = `tool ${tool.spec.name} timed out after ${tool.timeoutMs} ms`;
      return record('timeout', message, message);
    }
    const message = `tool ${tool.spec.name} failed: ${errorMessage(error)}`;
    return record('error', bounded(message, 2_000), message.slice(0, 300));
  }
  const text = bounded(out.text, tool.maxOutputChars);
  return out.isError ? record('error', text, text.slice(0, 300), out.text) : record('ok', text, undefined, out.text);
}

/**
 * A call's sizes, and its arguments and output as the trace shows them (core/tools.ts): values
 * past the preview (all, with `reference`) are kept whole in the run's blob store, by reference.
 */
export async function tracedValues(
  args: unknown,
  output: string,
  context: Pick<ToolCallContext, 'team' | 'runId' | 'trace'>,
): Promise<Pick<ToolCallRecord, 'argumentBytes' | 'outputBytes' | 'arguments' | 'output' | 'argumentsRef' | 'outputRef'>> {
  const { mode, blobs } = context.trace ?? { mode: 'inline' };
  const argumentBytes = jsonBytes(args ?? null);
  const outputBytes = byteLength(output);
  const scope = { team: context.team, runId: context.runId };
  // Written before the record that names them, as every claim check is (content-addressed: a retry writes the same).
  const keep = (value: unknown, bytes: number) => (blobs && keepsToolValue(mode, bytes) ? blobs.put(scope, keptToolValue(value)) : undefined);
  const [argumentsRef, outputRef] = await Promise.all([keep(args, argumentBytes), keep(output, outputBytes)]);
  return { argumentBytes, outputBytes, ...toolTraceValues(args, output, mode, { arguments: argumentsRef, output: outputRef }) };
}

/** A tool call cut short by the step's abort; carries the call's record for the trace. */
export class ToolCallAborted extends Error {
  constructor(
    readonly outcome: ToolOutcome,
    options?: { cause?: unknown },
  ) {
    super(`tool ${outcome.record.tool} aborted`, options);
  }
}

function bounds(def: { timeoutMs?: number; maxOutputChars?: number; idempotent?: boolean }) {
  return {
    timeoutMs: def.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    maxOutputChars: def.maxOutputChars ?? DEFAULT_TOOL_OUTPUT_CHARS,
    idempotent: def.idempotent ?? true,
  };
}

function bounded(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n[output cut: ${text.length} characters, the first ${max} shown]`;
}

/** An MCP tool result as text: its text parts, else its structured content, else a note per part. */
function mcpText(result: { content?: unknown; structuredContent?: unknown }): string {
  const parts = Array.isArray(result.content) ? (result.content as { type?: string; text?: string }[]) : [];
  const texts = parts.filter((p) => p.type === 'text' && typeof p.text === 'string').map((p) => p.text!);
  if (texts.length) return texts.join('\n');
  if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return parts.length ? parts.map((p) => `[${p.type ?? 'unknown'} content]`).join('\n') : '(no output)';
}

function byteLength(text: string): number {
  return Buffer.byteLength(text);
}


/**
 * `module` agents (local runs and `dev` only): an async function exported by a TypeScript or
 * JavaScript file, called in a worker thread of its own (adapters/modules/module-host: what the
 * code does cannot reach the runtime; it gets copies). TypeScript runs directly (tsx is
 * registered in the worker, as in the CLI). What the function returns is the agent response;
 * what it throws, leaves unhandled or exits with fails the branch, like a script agent's `$fail`.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import type { ModuleAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, AgentTimeoutError, describeThrown, errorMessage, ModuleCodeError, TransientError } from '../../core/errors';
import { moduleHost, type ModuleHost } from '../modules/module-host';
import type { BranchType, MemoryEntry } from '../../core/model';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

/** What a module agent's function receives. */
export interface ModuleAgentContext {
  /** The agent's name in the scenario. */
  agent: string;
  input: unknown;
  memory: MemoryEntry[];
  branch: { id: string; runId: string; depth: number; type: BranchType };
  /** Which attempt of the agent's retry policy (`retry`) this call is: 1 for the first. */
  attempt: number;
  /** Aborted when the branch is cancelled or times out, or the run ends. */
  signal: AbortSignal;
  /** Adds token usage to the branch (summed into `metrics.usage` and the run's `maxRunTokens`). */
  reportUsage(usage: { inputTokens: number; outputTokens: number }): void;
}

export type ModuleAgent = (...args: any[]) => unknown;

export const MODULE_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

export interface ModuleInvokerOptions {
  /** Relative `module` paths resolve against this folder (default: the working directory). */
  baseDir?: string;
  /** When set, a module must be inside one of these folders (`dev` confines modules to where it started). */
  confineTo?: string[];
  /** Where module code runs (default: the process's one host, a worker thread per file). */
  host?: ModuleHost;
}

export class ModuleInvoker implements AgentInvoker<ModuleAgentDefinition> {
  private readonly baseDir: string;
  private readonly confineTo?: string[];
  private readonly host: ModuleHost;

  constructor(options: ModuleInvokerOptions = {}) {
    this.baseDir = options.baseDir ?? process.cwd();
    this.confineTo = options.confineTo;
    this.host = options.host ?? moduleHost;
  }

  async invoke(call: AgentInvocation<ModuleAgentDefinition>): Promise<AgentReply> {
    const def = call.definition;
    let file: string;
    try {
      file = resolveModulePath(def.module, this.baseDir, this.confineTo);
    } catch (error) {
      throw new AgentInvocationError(call.agentName, errorMessage(error), { cause: error });
    }
    let usage: { inputTokens: number; outputTokens: number } | undefined;
    let usageError: string | undefined;
    const signal = call.signal ?? new AbortController().signal;
    if (signal.aborted) throw new AgentInvocationError(call.agentName, 'aborted: the branch ended');
    // What crosses to the worker: plain data, the signal and the one callback (see module-host).
    const context: ModuleAgentContext = {
      agent: call.agentName,
      input: call.input ?? null,
      memory: call.memory,
      branch: { id: call.branchId, runId: call.runId, depth: call.depth ?? 0, type: call.branchType ?? 'SIMPLE' },
      attempt: call.retryAttempt ?? 1,
      signal,
      reportUsage: (u) => {
        const checked = checkUsage(u);
        if (typeof checked === 'string') {
          usageError ??= checked;
          return;
        }
        usage = { inputTokens: (usage?.inputTokens ?? 0) + checked.inputTokens, outputTokens: (usage?.outputTokens ?? 0) + checked.outputTokens };
      },
    };
    let response: unknown;
    try {
      response = await this.host.call(file, def.export ?? 'default', [context], { signal, timeoutMs: def.timeoutMs });
    } catch (error) {
      if (error instanceof TransientError || error === signal.reason) throw error;
      // Tokens reported before the throw were spent all the same: they go with the error.
      const message = error instanceof ModuleCodeError ? error.message : describeThrown(error);
      const Failure = error instanceof ModuleCodeError && message.startsWith('did not return within') ? AgentTimeoutError : AgentInvocationError;
      throw new Failure(call.agentName, message, { cause: error, usage });
    }
    if (usageError) throw new AgentInvocationError(call.agentName, usageError, { usage });
    return usage ? { response, usage } : { response };
  }
}

/** reportUsage's argument: two non-negative finite token counts (missing ones count 0). */
function checkUsage(u: unknown): { inputTokens: number; outputTokens: number } | string {
  const value = (u ?? {}) as { inputTokens?: unknown; outputTokens?: unknown };
  const out = { inputTokens: 0, outputTokens: 0 };
  for (const key of ['inputTokens', 'outputTokens'] as const) {
    const n = value[key] === undefined ? 0 : Number(value[key]);
    if (!Number.isFinite(n) || n < 0) return `reportUsage: ${key} must be a non-negative number (got ${describeThrown(value[key])})`;
    out[key] = n;
  }
  return out;
}

/** The absolute path of a module agent's file; refuses other extensions and, if asked, escapes. */
export function resolveModulePath(path: string, baseDir: string, confineTo?: string[]): string {
  if (!path) throw new Error('a module agent needs `module`: the path of its file');
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  if (!MODULE_EXTENSIONS.some((ext) => file.endsWith(ext))) {
    throw new Error(`module ${path}: must be a ${MODULE_EXTENSIONS.join(', ')} file`);
  }
  if (confineTo) {
    // The real paths: a symlink inside a folder may point anywhere.
    const real = realOrSelf(file);
    const inside = confineTo.some((dir) => {
      const rel = relative(realOrSelf(resolve(dir)), real);
      return !rel.startsWith('..') && !isAbsolute(rel);
    });
    if (!inside) throw new Error(`module ${path}: must be inside ${confineTo.join(' or ')}`);
  }
  return file;
}

/** The path with every symlink resolved (as is when it does not exist: loading it fails anyway). */
function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Loads the file in its worker (once per process, see adapters/modules/module-host) and returns
 * the named export as a function that calls it there: arguments and answer are cloned, an
 * object argument's `signal` and callbacks are carried over.
 */
export async function loadModuleAgent(file: string, exportName: string, host: ModuleHost = moduleHost): Promise<ModuleAgent> {
  const functions = await host.functions(file);
  if (!functions.includes(exportName)) {
    throw new Error(`module ${file} has no function export "${exportName}" (function exports: ${functions.join(', ') || 'none'})`);
  }
  return (...args: unknown[]) => host.call(file, exportName, args);
}

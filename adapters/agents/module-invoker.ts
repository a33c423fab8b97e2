/**
 * `module` agents (local runs and `dev` only): an async function exported by a TypeScript or
 * JavaScript file, called in this process. TypeScript runs directly (the CLI runs under tsx, and
 * Node 22 strips types). What the function returns is the agent response; what it throws fails
 * the branch, like a script agent's `$fail`.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AgentInvocationError, errorMessage } from '../../core/errors';
import type { BranchType, MemoryEntry } from '../../core/model';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

/** What a module agent's function receives. */
export interface ModuleAgentContext {
  /** The agent's name in the scenario. */
  agent: string;
  input: unknown;
  memory: MemoryEntry[];
  branch: { id: string; runId: string; depth: number; type: BranchType };
  /** Aborted when the branch is cancelled or times out, or the run ends. */
  signal: AbortSignal;
  /** Adds token usage to the branch (summed into `metrics.usage` and the run's `maxRunTokens`). */
  reportUsage(usage: { inputTokens: number; outputTokens: number }): void;
}

export type ModuleAgent = (context: ModuleAgentContext) => unknown;

export const MODULE_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

export interface ModuleInvokerOptions {
  /** Relative `module` paths resolve against this folder (default: the working directory). */
  baseDir?: string;
  /** When set, a module must be inside one of these folders (`dev` confines modules to where it started). */
  confineTo?: string[];
}

export class ModuleInvoker implements AgentInvoker {
  private readonly baseDir: string;
  private readonly confineTo?: string[];

  constructor(options: ModuleInvokerOptions = {}) {
    this.baseDir = options.baseDir ?? process.cwd();
    this.confineTo = options.confineTo;
  }

  async invoke(call: AgentInvocation): Promise<AgentReply> {
    const def = call.definition as { module?: string; export?: string };
    const fn = await loadModuleAgent(resolveModulePath(def.module ?? '', this.baseDir, this.confineTo), def.export ?? 'default').catch(
      (error: unknown) => {
        throw new AgentInvocationError(call.agentName, errorMessage(error), { cause: error });
      },
    );
    let usage: { inputTokens: number; outputTokens: number } | undefined;
    const signal = call.signal ?? new AbortController().signal;
    if (signal.aborted) throw new AgentInvocationError(call.agentName, 'aborted: the branch ended');
    const context: ModuleAgentContext = {
      agent: call.agentName,
      input: call.input ?? null,
      memory: call.memory,
      branch: { id: call.branchId, runId: call.runId, depth: call.depth ?? 0, type: call.branchType ?? 'SIMPLE' },
      signal,
      reportUsage: (u) => {
        const inputTokens = Number(u?.inputTokens) || 0;
        const outputTokens = Number(u?.outputTokens) || 0;
        usage = { inputTokens: (usage?.inputTokens ?? 0) + inputTokens, outputTokens: (usage?.outputTokens ?? 0) + outputTokens };
      },
    };
    let response: unknown;
    try {
      response = await fn(context);
    } catch (error) {
      throw new AgentInvocationError(call.agentName, thrownMessage(error), { cause: error });
    }
    return usage ? { response, usage } : { response };
  }
}

/** The absolute path of a module agent's file; refuses other extensions and, if asked, escapes. */
export function resolveModulePath(path: string, baseDir: string, confineTo?: string[]): string {
  if (!path) throw new Error('a module agent needs `module`: the path of its file');
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  if (!MODULE_EXTENSIONS.some((ext) => file.endsWith(ext))) {
    throw new Error(`module ${path}: must be a ${MODULE_EXTENSIONS.join(', ')} file`);
  }
  if (confineTo) {
    const inside = confineTo.some((dir) => {
      const rel = relative(resolve(dir), file);
      return !rel.startsWith('..') && !isAbsolute(rel);
    });
    if (!inside) throw new Error(`module ${path}: must be inside ${confineTo.join(' or ')}`);
  }
  return file;
}

/** Imports the file (once per process: Node caches modules) and returns the named export. */
export async function loadModuleAgent(file: string, exportName: string): Promise<ModuleAgent> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`cannot load module ${file}: ${(error as Error)?.message ?? error}`, { cause: error });
  }
  const fn = module[exportName];
  if (typeof fn !== 'function') {
    const exported = Object.keys(module).filter((k) => typeof module[k] === 'function');
    throw new Error(
      `module ${file} has no function export "${exportName}" (function exports: ${exported.join(', ') || 'none'})`,
    );
  }
  return fn as ModuleAgent;
}

function thrownMessage(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/**
 * `module` agents and LLM agents' `module` tools: `module` paths are relative to the scenario file
 * (or, for `dev`, to where it started or to the example's folder); each is loaded and its export
 * checked before the run starts, so a typo is an invalid scenario (`run` exit 2, `dev` 400, naming
 * `agents.<name>.module`, `.export` or `.tools.<i>.module`), not a failed branch. One check for
 * both: checkModuleAgents. MCP servers started over stdio run in the file's folder unless told
 * otherwise.
 */
import { dirname, resolve } from 'node:path';
import { loadModuleAgent, resolveModulePath, type ModuleInvokerOptions } from '../adapters/agents/module-invoker';
import { ScenarioError, ValidationError } from '../core/errors';
import { isLlmAgent } from '../core/agent-kinds';
import type { AgentRegistry } from '../core/model';
import type { Scenario } from '../core/scenario';
import type { ToolDefinition } from '../core/tools';

/** Where relative `module` paths resolve, and (for `dev`) the folders modules must be inside. */
export type ModulePlaces = Required<Pick<ModuleInvokerOptions, 'baseDir'>> & ModuleInvokerOptions;

/**
 * Resolves and loads every `module` agent and `module` tool of `agents`; returns them with
 * absolute paths. Throws a ValidationError naming the field (`agents.<name>.module`, ...).
 */
export async function checkModuleAgents(agents: AgentRegistry, places: ModulePlaces): Promise<AgentRegistry> {
  const checked = { ...agents };
  for (const [name, agent] of Object.entries(agents)) {
    if (isLlmAgent(agent) && agent.tools) checked[name] = { ...agent, tools: await resolveTools(agent.tools, places, `agents.${name}.tools`) };
    if (agent.kind !== 'module') continue;
    checked[name] = { ...agent, module: await loadModule(agent.module, agent.export ?? 'default', places, `agents.${name}`) };
  }
  return checked;
}

/** A scenario file's `module` agents and tools, resolved against the file's folder (run, the library). */
export async function resolveModuleAgents(scenario: Scenario, file: string, source: string): Promise<Scenario> {
  try {
    return { ...scenario, agents: await checkModuleAgents(scenario.agents, { baseDir: dirname(resolve(file)) }) };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    throw new ScenarioError(source, error.message, error.field, { cause: error.cause });
  }
}

/** Loads one module's export; returns its absolute path. `where` is the field's prefix. */
async function loadModule(module: string, exportName: string, places: ModulePlaces, where: string): Promise<string> {
  let path: string;
  try {
    path = resolveModulePath(module, places.baseDir, places.confineTo);
  } catch (error) {
    throw new ValidationError(`${where}.module: ${(error as Error).message}`, `${where}.module`, { cause: error });
  }
  try {
    await loadModuleAgent(path, exportName);
  } catch (error) {
    const field = (error as Error).message.includes('has no function export') ? `${where}.export` : `${where}.module`;
    throw new ValidationError(`${field}: ${(error as Error).message}`, field, { cause: error });
  }
  return path;
}

async function resolveTools(tools: ToolDefinition[], places: ModulePlaces, where: string): Promise<ToolDefinition[]> {
  const resolved: ToolDefinition[] = [];
  for (const [i, tool] of tools.entries()) {
    if (tool.kind === 'mcp') {
      resolved.push(tool.command ? { ...tool, cwd: resolve(places.baseDir, tool.cwd ?? '.') } : tool);
      continue;
    }
    if (tool.kind !== 'module') {
      resolved.push(tool);
      continue;
    }
    resolved.push({ ...tool, module: await loadModule(tool.module, tool.export ?? 'default', places, `${where}.${i}`) });
  }
  return resolved;
}

/** A scenario document with its `module` agents' paths made absolute (examples served by `dev`). */
export function withAbsoluteModulePaths(document: unknown, dir: string): unknown {
  const agents = (document as { agents?: unknown } | null)?.agents;
  if (!agents || typeof agents !== 'object') return document;
  const absolute = (entry: Record<string, unknown> | null): Record<string, unknown> | null => {
    if (entry?.kind === 'module' && typeof entry.module === 'string') entry = { ...entry, module: resolve(dir, entry.module) };
    if (entry?.kind === 'mcp' && typeof entry.command === 'string') entry = { ...entry, cwd: resolve(dir, typeof entry.cwd === 'string' ? entry.cwd : '.') };
    if (Array.isArray(entry?.tools)) entry = { ...entry, tools: entry.tools.map((t) => (t && typeof t === 'object' ? absolute(t as Record<string, unknown>) : t)) };
    return entry;
  };
  const resolved = Object.fromEntries(
    Object.entries(agents as Record<string, Record<string, unknown> | null>).map(([name, agent]) => [name, absolute(agent)]),
  );
  return { ...(document as object), agents: resolved };
}

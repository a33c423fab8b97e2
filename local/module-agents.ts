/**
 * `module` agents and LLM agents' `module` tools in a scenario file: `module` paths are relative
 * to the file; each is loaded and its export checked when the scenario is read, so a typo is an
 * invalid scenario (exit 2, naming `agents.<name>.module`, `.export` or `.tools.<i>.module`), not
 * a failed branch. MCP servers started over stdio run in the file's folder unless told otherwise.
 */
import { dirname, resolve } from 'node:path';
import { loadModuleAgent, resolveModulePath } from '../adapters/agents/module-invoker';
import { ScenarioError } from '../core/errors';
import type { Scenario } from '../core/scenario';
import type { ToolDefinition } from '../core/tools';

export async function resolveModuleAgents(scenario: Scenario, file: string, source: string): Promise<Scenario> {
  const dir = dirname(resolve(file));
  const agents = { ...scenario.agents };
  for (const [name, agent] of Object.entries(agents)) {
    if (Array.isArray(agent.tools)) agents[name] = { ...agent, tools: await resolveTools(agent.tools as ToolDefinition[], dir, source, `agents.${name}.tools`) };
    if (agent.kind !== 'module') continue;
    let path: string;
    try {
      path = resolveModulePath(String(agent.module ?? ''), dir);
    } catch (error) {
      throw new ScenarioError(source, `agents.${name}.module: ${(error as Error).message}`, `agents.${name}.module`, { cause: error });
    }
    const exportName = typeof agent.export === 'string' ? agent.export : 'default';
    try {
      await loadModuleAgent(path, exportName);
    } catch (error) {
      const field = (error as Error).message.includes('has no function export') ? `agents.${name}.export` : `agents.${name}.module`;
      throw new ScenarioError(source, `${field}: ${(error as Error).message}`, field, { cause: error });
    }
    agents[name] = { ...agent, module: path };
  }
  return { ...scenario, agents };
}

async function resolveTools(tools: ToolDefinition[], dir: string, source: string, where: string): Promise<ToolDefinition[]> {
  const resolved: ToolDefinition[] = [];
  for (const [i, tool] of tools.entries()) {
    if (tool.kind === 'mcp') {
      resolved.push(tool.command ? { ...tool, cwd: resolve(dir, tool.cwd ?? '.') } : tool);
      continue;
    }
    if (tool.kind !== 'module') {
      resolved.push(tool);
      continue;
    }
    let path: string;
    try {
      path = resolveModulePath(tool.module, dir);
      await loadModuleAgent(path, tool.export ?? 'default');
    } catch (error) {
      const field = (error as Error).message.includes('has no function export') ? `${where}.${i}.export` : `${where}.${i}.module`;
      throw new ScenarioError(source, `${field}: ${(error as Error).message}`, field, { cause: error });
    }
    resolved.push({ ...tool, module: path });
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

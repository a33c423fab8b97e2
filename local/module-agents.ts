/**
 * `module` agents in a scenario file: `module` paths are relative to the file; each is loaded
 * and its export checked when the scenario is read, so a typo is an invalid scenario (exit 2,
 * naming `agents.<name>.module` or `.export`), not a failed branch.
 */
import { dirname, resolve } from 'node:path';
import { loadModuleAgent, resolveModulePath } from '../adapters/agents/module-invoker';
import { ScenarioError } from '../core/errors';
import type { Scenario } from '../core/scenario';

export async function resolveModuleAgents(scenario: Scenario, file: string, source: string): Promise<Scenario> {
  const dir = dirname(resolve(file));
  const agents = { ...scenario.agents };
  for (const [name, agent] of Object.entries(agents)) {
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

/** A scenario document with its `module` agents' paths made absolute (examples served by `dev`). */
export function withAbsoluteModulePaths(document: unknown, dir: string): unknown {
  const agents = (document as { agents?: unknown } | null)?.agents;
  if (!agents || typeof agents !== 'object') return document;
  const resolved = Object.fromEntries(
    Object.entries(agents as Record<string, Record<string, unknown> | null>).map(([name, agent]) =>
      agent?.kind === 'module' && typeof agent.module === 'string' ? [name, { ...agent, module: resolve(dir, agent.module) }] : [name, agent],
    ),
  );
  return { ...(document as object), agents: resolved };
}

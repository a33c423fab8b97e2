/**
 * A run request from outside (API, EventBridge) becomes a StartRunInput. Where agents come from
 * is a trust decision: inline definitions only where the deployment allows them.
 */
import { ForbiddenError, ValidationError } from './errors';
import type { AgentRegistry } from './model';
import { parseScenario, type Scenario } from './scenario';
import type { StartRunInput } from './use-cases/start-run';

export interface AgentPolicy {
  /** The team's registry; agents a request may name. */
  registry: AgentRegistry;
  /** Which inline definitions a request may carry: all kinds (dev), script only, or none. */
  inline: 'any' | 'script' | 'none';
  /**
   * The aggregator modules whose functions this deployment registered (as a scenario names them,
   * e.g. `./aggregators.ts`). A request never brings code: naming any other module is refused.
   */
  aggregatorModules?: readonly string[];
}

export function toStartRunInput(
  document: unknown,
  options: { team: string; runId?: string; policy: AgentPolicy; source?: string },
): StartRunInput {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ValidationError('the body must be a JSON object (a scenario document)', '(root)');
  }
  const doc = { ...(document as Record<string, unknown>) };
  const inlineAgents = (doc.agents ?? {}) as Record<string, unknown>;
  if (typeof inlineAgents !== 'object' || inlineAgents === null || Array.isArray(inlineAgents)) {
    throw new ValidationError('agents: must be an object of agent definitions', 'agents');
  }
  for (const [name, def] of Object.entries(inlineAgents)) {
    const kind = (def as { kind?: unknown } | null)?.kind;
    if (kind === 'module' && options.policy.inline !== 'any') {
      throw new ForbiddenError(
        `agents.${name}: module agents run only in local runs and dev (a request here can never name a file to load); ` +
          'in AWS use the registry\'s lambda, bedrock, openai or http agents',
      );
    }
    if (options.policy.inline === 'any') continue;
    if (options.policy.inline === 'script' && kind === 'script') continue;
    throw new ForbiddenError(
      `agents.${name}: inline ${String(kind)} agents are not accepted here; name agents of the team's registry` +
        (options.policy.inline === 'script' ? ' (only inline script agents are allowed)' : ''),
    );
  }
  // Registry agents first, inline ones (where allowed) may add to them but never replace them.
  for (const name of Object.keys(inlineAgents)) {
    if (options.policy.inline !== 'any' && Object.hasOwn(options.policy.registry, name)) {
      throw new ForbiddenError(`agents.${name}: a request may not redefine the registry agent "${name}"`);
    }
  }
  if (doc.aggregators !== undefined) {
    const known = options.policy.aggregatorModules ?? [];
    if (typeof doc.aggregators !== 'string' || !known.includes(doc.aggregators)) {
      throw new ValidationError(
        `aggregators: a request cannot load code, so the module ${JSON.stringify(doc.aggregators)} would be ignored; ` +
          (known.length
            ? `this server registered the aggregators of ${known.join(', ')} only`
            : 'this server registered no aggregator module (run the scenario with the CLI, which loads it)'),
        'aggregators',
      );
    }
  }
  doc.agents = { ...options.policy.registry, ...inlineAgents };
  const scenario: Scenario = parseScenario(doc, options.source ?? 'request');
  return {
    team: options.team,
    ...(options.runId ? { runId: options.runId } : {}),
    name: scenario.name,
    request: scenario.request ?? null,
    entry: scenario.entry,
    agents: scenario.agents,
    ...(scenario.limits ? { limits: scenario.limits } : {}),
    ...(scenario.failurePolicy ? { failurePolicy: scenario.failurePolicy } : {}),
    ...(scenario.aggregators ? { aggregators: scenario.aggregators } : {}),
  };
}

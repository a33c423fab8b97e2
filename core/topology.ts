/** Which agents an agent may name: its `allowed` list and copies of itself. */
import { InvalidAgentResponseError, TopologyViolationError } from './errors';
import type { AgentRegistry, BranchRecord } from './model';
import { COMPLETION_FN_PREFIX, type Decision } from './protocol';

export interface TopologyContext {
  agents: AgentRegistry;
  /** Names of registered custom aggregators (completion functions are registered with them). */
  aggregators: readonly string[];
  branch: Pick<BranchRecord, 'agent' | 'entryAgent' | 'type' | 'peers'>;
}

/** The agents the current agent may hand off to or spawn (copies of itself included). */
export function allowedTargets(context: Pick<TopologyContext, 'agents' | 'branch'>): string[] {
  const { branch, agents } = context;
  if (branch.type === 'CONVERSATION') {
    return unique([branch.entryAgent, ...(branch.peers ?? [])]).filter((a) => a !== branch.agent);
  }
  return unique(agents[branch.agent]?.allowed ?? []);
}

/** Throws TopologyViolationError when the decision names an agent the topology does not allow. */
export function checkTopology(decision: Decision, context: TopologyContext): void {
  const { branch, agents } = context;
  const self = branch.agent;
  const allowed = new Set(allowedTargets(context));
  const mayName = (name: string) => name === self || allowed.has(name);
  const require = (name: string, field: string, how: string) => {
    if (!Object.hasOwn(agents, name)) {
      throw new TopologyViolationError(`${how} "${name}" is not a registered agent`, { field });
    }
    if (!mayName(name)) {
      const list = [...allowed].join(', ') || 'none';
      throw new TopologyViolationError(`${self} may not ${how.toLowerCase()} "${name}" (allowed: ${list})`, { field });
    }
  };

  if (decision.kind === 'handoff') {
    require(decision.agent, 'action_input', 'Call');
    return;
  }
  if (decision.kind !== 'spawn') return;
  decision.groups.forEach((group, g) =>
    group.forEach((child, i) => {
      const field = decision.grouped ? `next_actions.${g}.${i}` : `agents.${i}`;
      require(child.agent, field, 'Spawn');
      for (const peer of child.peers ?? []) require(peer, `branches.${i}.peers`, 'Spawn');
    }),
  );
  const aggregator = decision.aggregator;
  if (aggregator.kind === 'agent') require(aggregator.agent, 'aggregator', 'Aggregate with');
  if (aggregator.kind === 'registered' && !context.aggregators.includes(aggregator.name)) {
    const known = ['default', 'weighted_average', ...context.aggregators].join(', ');
    throw new InvalidAgentResponseError(`aggregator "${aggregator.name}" is not registered (known: ${known})`, {
      field: 'aggregator',
    });
  }
  const completeFn = decision.options?.completeFn;
  if (completeFn !== undefined && !context.aggregators.includes(completeFn)) {
    const known = context.aggregators.length ? context.aggregators.map((name) => `${COMPLETION_FN_PREFIX}${name}`).join(', ') : 'none';
    throw new InvalidAgentResponseError(`complete_when "${COMPLETION_FN_PREFIX}${completeFn}" names no registered function (known: ${known})`, {
      field: 'complete_when',
    });
  }
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}

/**
 * The scenario document (docs/scenarios.md): validated into a run request, with errors that name the
 * offending field. Reading the file is the caller's job; this module only sees its content.
 */
import { z } from 'zod';
import { agentRegistrySchema, isLlmAgent, kindsTaking } from './agent-kinds';
import { ScenarioError } from './errors';
import { checkDocumentBounds } from './input-bounds';
import { agentTimeoutRefusal, limitsSchema } from './limits';
import { DEFAULT_LIMITS, type AgentRegistry, type FailurePolicy, type Limits } from './model';
import { agentRetryRefusal } from './retry-policy';
import { checkScriptDelays, checkScriptFanOutOptions } from './script-directives';
import { withArticle } from './wording';

const scenarioSchema = z
  .object({
    name: z.string().min(1, 'must be a non-empty name').max(128),
    description: z.string().optional(),
    request: z.unknown().optional(),
    entry: z.string().min(1),
    limits: limitsSchema.optional(),
    failurePolicy: z.object({ maxFailedFraction: z.number().min(0).max(1) }).strict().optional(),
    aggregators: z.string().min(1).optional(),
    agents: agentRegistrySchema,
  })
  .strict();

export interface Scenario {
  name: string;
  description?: string;
  request: unknown;
  entry: string;
  limits?: Partial<Limits>;
  failurePolicy?: FailurePolicy;
  aggregators?: string;
  agents: AgentRegistry;
}

/** Validates a parsed scenario document (every one from outside comes through here); `source` names it in errors (a file path or "request"). */
export function parseScenario(document: unknown, source: string): Scenario {
  // Size and depth first: nothing below may walk a document that is too deep or too big.
  checkDocumentBounds(document, source);
  const parsed = scenarioSchema.safeParse(document);
  if (!parsed.success) {
    const { field, message } = describeIssue(parsed.error.issues[0], document);
    throw new ScenarioError(source, `${field}: ${message}`, field, { cause: parsed.error });
  }
  const scenario = parsed.data;
  const names = Object.keys(scenario.agents);
  if (names.length === 0) throw new ScenarioError(source, 'agents: at least one agent is needed', 'agents');
  if (!names.includes(scenario.entry)) {
    throw new ScenarioError(source, `entry: "${scenario.entry}" is not one of the agents (${names.join(', ')})`, 'entry');
  }
  for (const [name, agent] of Object.entries(scenario.agents)) {
    for (const [i, target] of (agent.allowed ?? []).entries()) {
      if (!names.includes(target)) {
        const field = `agents.${name}.allowed.${i}`;
        throw new ScenarioError(source, `${field}: "${target}" is not one of the agents`, field);
      }
    }
    if (isLlmAgent(agent)) checkToolUse(source, name, agent);
    const agentTimeoutSeconds = scenario.limits?.agentTimeoutSeconds ?? DEFAULT_LIMITS.agentTimeoutSeconds;
    const tooLong = agentTimeoutRefusal(agent, agentTimeoutSeconds);
    if (tooLong) throw new ScenarioError(source, `agents.${name}.timeoutMs: ${tooLong}`, `agents.${name}.timeoutMs`);
    const retryRefused = agentRetryRefusal(agent, scenario.limits?.maxAgentAttempts ?? DEFAULT_LIMITS.maxAgentAttempts);
    if (retryRefused) {
      const field = `agents.${name}.${retryRefused.path}`;
      throw new ScenarioError(source, `${field}: ${retryRefused.message}`, field);
    }
    if (agent.kind === 'script') {
      const branchTimeoutSeconds = scenario.limits?.branchTimeoutSeconds ?? DEFAULT_LIMITS.branchTimeoutSeconds;
      const maxConcurrentBranches = scenario.limits?.maxConcurrentBranches ?? DEFAULT_LIMITS.maxConcurrentBranches;
      const maxWaitSeconds = scenario.limits?.maxWaitSeconds ?? DEFAULT_LIMITS.maxWaitSeconds;
      const refused =
        checkScriptDelays(agent, { branchTimeoutSeconds, agentTimeoutSeconds, maxWaitSeconds }) ?? checkScriptFanOutOptions(agent, { maxConcurrentBranches });
      if (refused) {
        const field = `agents.${name}.${refused.path}`;
        throw new ScenarioError(source, `${field}: ${refused.message}`, field);
      }
    }
  }
  return { ...scenario, request: scenario.request };
}

/** An LLM agent's tool settings agree with each other (only openai and bedrock agents take them: their schemas). */
function checkToolUse(source: string, name: string, agent: { toolCalling?: string; tools?: unknown[]; parallel_tool_calls?: string }): void {
  if (agent.toolCalling === 'off' && agent.tools?.length) {
    const tools = `agents.${name}.tools`;
    throw new ScenarioError(source, `${tools}: tools need toolCalling auto or on (it is off)`, tools);
  }
  if (agent.parallel_tool_calls === 'branch' && !agent.tools?.length) {
    const branch = `agents.${name}.parallel_tool_calls`;
    throw new ScenarioError(source, `${branch}: "branch" needs tools to call (the agent has none)`, branch);
  }
}

const TOOL_FIELDS = ['tools', 'toolCalling', 'parallel_tool_calls'];

/**
 * A zod issue as the field it names and a message a user can act on: a wrong `kind` lists the
 * kinds, a missing field says which kind needs it, a field of another kind says which kinds take it.
 */
function describeIssue(issue: z.core.$ZodIssue, document: unknown): { field: string; message: string } {
  const path = issue.path.map(String);
  const field = path.join('.') || '(root)';
  if (issue.code === 'invalid_union' && 'options' in issue && issue.discriminator !== undefined) {
    return { field, message: `Invalid option: expected one of ${(issue.options ?? []).map((o) => JSON.stringify(o)).join('|')}` };
  }
  const agent = path.length >= 2 && path[0] === 'agents' ? agentAt(document, path[1]) : undefined;
  if (agent && path.length === 3 && issue.code === 'invalid_type' && agent[path[2]] === undefined) {
    return { field, message: `${withArticle(String(agent.kind))} agent needs ${path[2]}` };
  }
  if (issue.code !== 'unrecognized_keys') return { field, message: issue.message };
  const key = issue.keys[0];
  if (field === '(root)') return { field: key, message: `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` };
  const takers = agent && path.length === 2 ? kindsTaking(key) : [];
  if (agent && takers.length > 0) {
    const what = TOOL_FIELDS.includes(key) ? 'call tools' : `take ${key}`;
    return { field: `${field}.${key}`, message: `only ${listOf(takers)} agents ${what} (this agent is ${String(agent.kind)})` };
  }
  return { field, message: `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` };
}

/** The agent `name` of a scenario document as given (before validation), if it is an object. */
function agentAt(document: unknown, name: string): Record<string, unknown> | undefined {
  const agents: unknown = isRecord(document) ? document.agents : undefined;
  const agent: unknown = isRecord(agents) ? agents[name] : undefined;
  return isRecord(agent) ? agent : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function listOf(items: string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

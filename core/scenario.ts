/**
 * The scenario document (docs/scenarios.md): validated into a run request, with errors that name the
 * offending field. Reading the file is the caller's job; this module only sees its content.
 */
import { z } from 'zod';
import { MAX_PROMPT_TOKENS, MIN_PROMPT_TOKENS } from './prompt';
import { ScenarioError } from './errors';
import { checkDocumentBounds } from './input-bounds';
import { agentTimeoutRefusal, limitsSchema } from './limits';
import { DEFAULT_LIMITS, type AgentRegistry, type FailurePolicy, type Limits } from './model';
import { agentRetryRefusal, retrySchema } from './retry-policy';
import { checkScriptDelays, checkScriptFanOutOptions } from './script-directives';
import { TOOL_CALLING_MODES, toolsSchema } from './tools';
import { withArticle } from './wording';

export const AGENT_KINDS = ['script', 'http', 'lambda', 'bedrock', 'openai', 'module'] as const;

const positiveInt = z.number().int('must be an integer').positive('must be positive');
const ruleSchema = z.object({ when: z.string().min(1), responses: z.array(z.unknown()).min(1) }).strict();

const agentSchema = z
  .object({
    kind: z.enum(AGENT_KINDS),
    allowed: z.array(z.string().min(1)).optional(),
    description: z.string().optional(),
    // script
    responses: z.array(z.unknown()).min(1, 'needs at least one response').optional(),
    rules: z.array(ruleSchema).optional(),
    // http
    url: z.string().url('must be a URL').optional(),
    timeoutMs: positiveInt.optional(),
    retries: z.number().int().min(0).max(10).optional(),
    headers: z.record(z.string(), z.string()).optional(),
    maxResponseBytes: positiveInt.optional(),
    // lambda
    functionName: z.string().min(1).optional(),
    // bedrock / openai
    modelId: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    baseUrl: z.string().url('must be a URL').optional(),
    apiKeyEnv: z.string().min(1).optional(),
    region: z.string().min(1).optional(),
    system: z.string().optional(),
    temperature: z.number().min(0).max(2).optional(),
    maxTokens: positiveInt.optional(),
    toolCalling: z.enum(TOOL_CALLING_MODES).optional(),
    // several user tool calls in one turn: run together in the step (default) or each in a copy of the agent
    parallel_tool_calls: z.enum(['together', 'branch']).optional(),
    tools: toolsSchema.optional(),
    promptTokens: z.number().int().min(MIN_PROMPT_TOKENS).max(MAX_PROMPT_TOKENS).optional(),
    // module (local runs and dev only): a function exported by a TypeScript/JavaScript file
    module: z.string().min(1).optional(),
    export: z.string().min(1).optional(),
    // every kind: the agent call's retry policy (core/retry-policy.ts)
    retry: retrySchema.optional(),
  })
  .strict();

const scenarioSchema = z
  .object({
    name: z.string().min(1, 'must be a non-empty name').max(128),
    description: z.string().optional(),
    request: z.unknown().optional(),
    entry: z.string().min(1),
    limits: limitsSchema.optional(),
    failurePolicy: z.object({ maxFailedFraction: z.number().min(0).max(1) }).strict().optional(),
    aggregators: z.string().min(1).optional(),
    agents: z.record(z.string().min(1), agentSchema),
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

const REQUIRED_BY_KIND: Record<(typeof AGENT_KINDS)[number], string[][]> = {
  script: [['responses', 'rules']],
  http: [['url']],
  lambda: [['functionName']],
  bedrock: [['modelId']],
  openai: [['model']],
  module: [['module']],
};

/** Validates a parsed scenario document (every one from outside comes through here); `source` names it in errors (a file path or "request"). */
export function parseScenario(document: unknown, source: string): Scenario {
  // Size and depth first: nothing below may walk a document that is too deep or too big.
  checkDocumentBounds(document, source);
  const parsed = scenarioSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join('.') || '(root)';
    const detail =
      issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    const where = issue.code === 'unrecognized_keys' && field === '(root)' ? issue.keys[0] : field;
    throw new ScenarioError(source, `${where}: ${detail}`, where, { cause: parsed.error });
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
    for (const alternatives of REQUIRED_BY_KIND[agent.kind]) {
      if (!alternatives.some((key) => agent[key as keyof typeof agent] !== undefined)) {
        const field = `agents.${name}.${alternatives[0]}`;
        throw new ScenarioError(source, `${field}: ${withArticle(agent.kind)} agent needs ${alternatives.join(' or ')}`, field);
      }
    }
    if (agent.toolCalling !== undefined || agent.tools !== undefined || agent.parallel_tool_calls !== undefined) checkToolUse(source, name, agent);
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
  return scenario as Scenario;
}

/** Tools are for the LLM kinds, which must call them natively. */
function checkToolUse(source: string, name: string, agent: { kind: string; toolCalling?: string; tools?: unknown[]; parallel_tool_calls?: string }): void {
  const field =
    agent.toolCalling !== undefined ? `agents.${name}.toolCalling` : agent.tools !== undefined ? `agents.${name}.tools` : `agents.${name}.parallel_tool_calls`;
  if (agent.kind !== 'openai' && agent.kind !== 'bedrock') {
    throw new ScenarioError(source, `${field}: only openai and bedrock agents call tools (this agent is ${agent.kind})`, field);
  }
  if (agent.toolCalling === 'off' && agent.tools?.length) {
    const tools = `agents.${name}.tools`;
    throw new ScenarioError(source, `${tools}: tools need toolCalling auto or on (it is off)`, tools);
  }
  if (agent.parallel_tool_calls === 'branch' && !agent.tools?.length) {
    const branch = `agents.${name}.parallel_tool_calls`;
    throw new ScenarioError(source, `${branch}: "branch" needs tools to call (the agent has none)`, branch);
  }
}

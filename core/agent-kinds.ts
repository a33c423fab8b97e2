/**
 * An agent's definition (docs/scenarios.md#agents): one schema per `kind`, discriminated on it.
 * Each kind's fields are written here once; the invokers take the inferred type of their kind,
 * so what a scenario may say and what an invoker reads cannot drift apart.
 */
import { z } from 'zod';
import { retrySchema } from './retry-policy';
import { TOOL_CALLING_MODES, toolsSchema, type ToolDefinition } from './tools';

const positiveInt = z.number().int('must be an integer').positive('must be positive');
const ruleSchema = z.object({ when: z.string().min(1), responses: z.array(z.unknown()).min(1) }).strict();

/** What every kind may say. */
const common = {
  /** Agents this one may hand off to or spawn (copies of itself are always allowed). */
  allowed: z.array(z.string().min(1)).optional(),
  description: z.string().optional(),
  /** The agent call's retry policy (core/retry-policy.ts). */
  retry: retrySchema.optional(),
};
/** The call's own timeout; the run's `limits.agentTimeoutSeconds` bounds it (core/limits.ts). */
const timeoutMs = positiveInt.optional();
/** The transport's retries of 5xx, throttling and network failures. */
const retries = z.number().int().min(0).max(10).optional();
const maxResponseBytes = positiveInt.optional();

const scriptAgent = z
  .object({
    kind: z.literal('script'),
    ...common,
    responses: z.array(z.unknown()).min(1, 'needs at least one response').optional(),
    rules: z.array(ruleSchema).optional(),
  })
  .strict()
  .superRefine((agent, ctx) => {
    if (agent.responses === undefined && agent.rules === undefined) {
      ctx.addIssue({ code: 'custom', path: ['responses'], message: 'a script agent needs responses or rules' });
    }
  });

const httpAgent = z
  .object({
    kind: z.literal('http'),
    ...common,
    url: z.string().url('must be a URL'),
    timeoutMs,
    retries,
    headers: z.record(z.string(), z.string()).optional(),
    maxResponseBytes,
  })
  .strict();

const lambdaAgent = z
  .object({
    kind: z.literal('lambda'),
    ...common,
    functionName: z.string().min(1),
    timeoutMs,
  })
  .strict();

/**
 * The smallest and largest `promptTokens` an LLM agent may set (1M: the largest context windows
 * offered); core/prompt.ts fits the call's messages within it (DEFAULT_PROMPT_TOKENS when unset).
 */
export const MIN_PROMPT_TOKENS = 1_000;
export const MAX_PROMPT_TOKENS = 1_000_000;

/** What bedrock and openai agents share. */
const llm = {
  ...common,
  system: z.string().optional(),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: positiveInt.optional(),
  promptTokens: z.number().int().min(MIN_PROMPT_TOKENS).max(MAX_PROMPT_TOKENS).optional(),
  timeoutMs,
  retries,
  toolCalling: z.enum(TOOL_CALLING_MODES).optional(),
  tools: toolsSchema.optional(),
  // several user tool calls in one turn: run together in the step (default) or each in a copy of the agent
  parallel_tool_calls: z.enum(['together', 'branch']).optional(),
  // taught wait and wait_for_callback (and offered them as tools): off by default, since a model
  // that pauses unasked holds its run until the wait or the callback's timeout ends
  pauses: z.boolean().optional(),
};

const bedrockAgent = z
  .object({
    kind: z.literal('bedrock'),
    ...llm,
    modelId: z.string().min(1),
    region: z.string().min(1).optional(),
  })
  .strict();

const openaiAgent = z
  .object({
    kind: z.literal('openai'),
    ...llm,
    model: z.string().min(1),
    baseUrl: z.string().url('must be a URL').optional(),
    apiKeyEnv: z.string().min(1).optional(),
    maxResponseBytes,
  })
  .strict();

/** Local runs and `dev` only: a function exported by a TypeScript/JavaScript file. */
const moduleAgent = z
  .object({
    kind: z.literal('module'),
    ...common,
    module: z.string().min(1),
    export: z.string().min(1).optional(),
    timeoutMs,
  })
  .strict();

const members = [scriptAgent, httpAgent, lambdaAgent, openaiAgent, bedrockAgent, moduleAgent] as const;

export const agentDefinitionSchema = z.discriminatedUnion('kind', [...members]);
export const agentRegistrySchema = z.record(z.string().min(1), agentDefinitionSchema);

/** How a run's agents are executed; each invoker adapter takes the member of its kind. */
export type AgentDefinition = z.infer<typeof agentDefinitionSchema>;
export type AgentRegistry = Record<string, AgentDefinition>;
export type AgentKind = AgentDefinition['kind'];
export type AgentOfKind<K extends AgentKind> = Extract<AgentDefinition, { kind: K }>;
export type ScriptAgentDefinition = AgentOfKind<'script'>;
export type HttpAgentDefinition = AgentOfKind<'http'>;
export type LambdaAgentDefinition = AgentOfKind<'lambda'>;
export type BedrockAgentDefinition = AgentOfKind<'bedrock'>;
export type OpenAiAgentDefinition = AgentOfKind<'openai'>;
export type ModuleAgentDefinition = AgentOfKind<'module'>;
export type LlmAgentDefinition = BedrockAgentDefinition | OpenAiAgentDefinition;

export const AGENT_KINDS: readonly AgentKind[] = members.map((m) => m.shape.kind.value);

/** A kind's fields, read from its schema. */
export function fieldsOf(kind: string): string[] {
  const member = members.find((m) => m.shape.kind.value === kind);
  return member ? Object.keys(member.shape) : [];
}

/** The kinds that take `field`, in the schemas' order (for messages that say which kinds do). */
export function kindsTaking(field: string): AgentKind[] {
  return AGENT_KINDS.filter((kind) => fieldsOf(kind).includes(field));
}

/** The kinds whose transport retries on its own (`retries`), which a retry policy may turn off. */
export function hasTransportRetries(definition: AgentDefinition): definition is HttpAgentDefinition | LlmAgentDefinition {
  return fieldsOf(definition.kind).includes('retries');
}

export function isLlmAgent(definition: AgentDefinition): definition is LlmAgentDefinition {
  return definition.kind === 'bedrock' || definition.kind === 'openai';
}

/** The agent's user tools (only LLM agents have any). */
export function toolsOf(definition: AgentDefinition): ToolDefinition[] {
  return isLlmAgent(definition) ? (definition.tools ?? []) : [];
}

/**
 * The agent response protocol offered as tools to LLM agents that call tools natively: each
 * action (final_response, invoke_agent, parallel_invoke, next_actions; wait and wait_for_callback
 * for an agent with `pauses: true`) is a tool whose JSON
 * schema is generated from the protocol's own schemas (core/protocol.ts) with the agents the
 * topology allows as an enum; a call of one of them is read back as the protocol response it
 * stands for, which the runtime then parses and checks like any other.
 */
import { z } from 'zod';
import { protocolSchemas, suspendSchemas } from './protocol';

export const PROTOCOL_TOOL_NAMES = ['final_response', 'invoke_agent', 'parallel_invoke', 'next_actions', 'wait', 'wait_for_callback'] as const;
export type ProtocolToolName = (typeof PROTOCOL_TOOL_NAMES)[number];

/** A tool as the model sees it: name, what it does, and the JSON schema of its arguments. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export interface ProtocolToolsInput {
  agentName: string;
  /** The agents this agent may name (the topology). */
  allowed: readonly string[];
  /** Copies of itself are always allowed; false leaves the copy forms out. */
  isCopyAllowed?: boolean;
  /** The agent may pause its branch (its `pauses: true`): wait and wait_for_callback are offered too. */
  pauses?: boolean;
}

const DESCRIPTIONS: Record<ProtocolToolName, string> = {
  final_response: 'Finish your work in this branch and give your result as "content" (any JSON value).',
  invoke_agent:
    'Hand the work over to another agent in this branch: "agent" names it, "input" is what it gets (your own input when left out).',
  parallel_invoke:
    'Run agents in parallel, each in its own child branch, and wait for their results; you are called again with the aggregate. ' +
    'Give "agents" (naming an agent twice runs two copies) with "action_input" {agent: input}, or "branches" [{agent, input}] to give each child its own input. ' +
    '"wait_for": "all" (default), "any" or a number k; "aggregator": "default", "weighted_average" or "agent:<Name>". ' +
    'Per fan-out: "max_concurrency" (children at once, within the run\'s limit); "tolerated_failures" (a count, or a fraction below 1); ' +
    '"on_failure": "fail" (default: past the tolerated failures you fail) or "continue" (you are called with the aggregate, its "completion_reason" ' +
    'and each child\'s status and error, and decide); "complete_when": "all", "any", k or "fn:<name>" (a registered completion function).',
  next_actions:
    'Branched recursion: "next_actions" is a list of groups of actions; each action runs in a copy of yourself, groups one after another, ' +
    'and you are called again with the list of the groups\' results. One group of one action makes it your own next input; an empty list finishes with "content".',
  wait:
    'Pause this branch for "seconds", or "until" an ISO 8601 date-time with its zone (one of the two), without holding anything; ' +
    'you are then called again with "input" if you gave one, else {"wait_over": {"since", "until"}}.',
  wait_for_callback:
    'Pause this branch until someone outside answers (a person approving, another system): "message" (any JSON) is shown to them, ' +
    '"timeout_seconds" bounds the wait (past it the branch fails). You are called again with their answer as your input.',
};

/** The protocol tools this agent may call, with schemas generated from the protocol's. */
export function protocolTools(input: ProtocolToolsInput): ToolSpec[] {
  const self = input.agentName;
  const copies = input.isCopyAllowed ?? true;
  const others = [...new Set(input.allowed)].filter((name) => name !== self);
  const names = copies ? [...others, self] : others;
  const schemas = protocolSchemas(names.length ? z.enum(names as [string, ...string[]]) : undefined);
  const tools: ToolSpec[] = [spec('final_response', schemas.final_response.omit({ next_action: true, action_input: true }))];
  if (others.length) tools.push(spec('invoke_agent', schemas.invoke_agent.omit({ next_action: true })));
  if (names.length) tools.push(spec('parallel_invoke', schemas.parallel_invoke.omit({ next_action: true })));
  if (copies) tools.push(spec('next_actions', schemas.next_actions));
  if (input.pauses) {
    tools.push(spec('wait', suspendSchemas.wait.omit({ next_action: true })), spec('wait_for_callback', suspendSchemas.wait_for_callback.omit({ next_action: true })));
  }
  return tools;
}

export function isProtocolTool(name: string): name is ProtocolToolName {
  return (PROTOCOL_TOOL_NAMES as readonly string[]).includes(name);
}

/**
 * The protocol response a protocol tool call stands for: its arguments with the tool's name as
 * `next_action` (next_actions' arguments are the response as they are). Arguments that are not
 * a JSON object give a reason instead, which the runtime re-asks with like any invalid reply.
 */
export function responseOfToolCall(
  name: ProtocolToolName,
  args: unknown,
): { ok: true; response: Record<string, unknown> } | { ok: false; field: string; message: string } {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    const got = typeof args === 'string' ? `text that is not JSON: ${args.slice(0, 80)}` : String(args);
    return { ok: false, field: '(root)', message: `the arguments of tool ${name} must be a JSON object, got ${got}` };
  }
  const fields = args as Record<string, unknown>;
  if (name === 'next_actions') return { ok: true, response: { ...fields } };
  return { ok: true, response: { ...fields, next_action: name } };
}

function spec(name: ProtocolToolName, schema: z.ZodType): ToolSpec {
  return { name, description: DESCRIPTIONS[name], parameters: jsonSchemaOf(schema) };
}

/** The JSON schema of a zod schema, as tool APIs take it (no `$schema` key; input side of transforms). */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

/**
 * Prompts for LLM agents (bedrock, openai): the system prompt that teaches the agent response
 * protocol (docs/protocol.md) and the topology, and the chat history built from a branch's memory.
 * Pure text building; the invokers send it and the runtime parses whatever comes back.
 */
import type { AgentDefinition, MemoryEntry } from './model';
import { boundValue } from './bounded-value';

/**
 * What an LLM agent's messages (its memory and its input) may take per call, in tokens, unless its
 * definition sets `promptTokens`: an aggregate of 10,000 children (megabytes) would not fit any
 * model's context, so a call gets a rendering of it within this budget that says what it left out.
 */
export const DEFAULT_PROMPT_TOKENS = 32_000;
/** Bytes of JSON text counted per token (a safe average for English and JSON). */
const BYTES_PER_TOKEN = 4;
/** No memory message is cut below this, however long the memory. */
const MIN_MESSAGE_BYTES = 512;

export interface SystemPromptInput {
  agentName: string;
  definition: AgentDefinition;
  /** The agents this agent may name (the topology), as given to the invoker. */
  allowed: readonly string[];
  /** Copies of itself are always allowed; false leaves the copy forms out. */
  isCopyAllowed?: boolean;
  /** How the agent answers: `text` (one JSON object; the default) or `tools` (it calls the protocol tools, see core/protocol-tools). */
  mode?: 'text' | 'tools';
  /** The user tools offered next to the protocol tools (tools mode). */
  userTools?: readonly string[];
  /** Tool calls per step (the run's maxToolCallsPerStep), said in the prompt. */
  maxToolCalls?: number;
  /** `parallel_tool_calls: branch`: several tool calls of one turn each run in a copy of the agent. */
  branchCalls?: boolean;
}

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface BuildMessagesOptions {
  /**
   * The agent being called. Memory entries of other agents (a hand-off chain shares the branch
   * memory) are labelled with their agent, so the model does not take their replies for its own.
   */
  agentName?: string;
  /** `tools`: a refused reply is re-asked as a tool call, not a JSON object. */
  mode?: 'text' | 'tools';
  /** The token budget of the call's messages (default DEFAULT_PROMPT_TOKENS). */
  promptTokens?: number;
  /** The run, named in the note of a value that was cut (where to fetch the rest). */
  runId?: string;
}

export function buildSystemPrompt(input: SystemPromptInput): string {
  const { agentName: self, definition } = input;
  const copies = input.isCopyAllowed ?? true;
  const others = unique(input.allowed).filter((name) => name !== self);
  const description = definition.description?.trim() ?? '';
  const userSystem = 'system' in definition ? (definition.system?.trim() ?? '') : '';
  // Examples name real agents so the model copies valid names rather than placeholders.
  const a = others[0] ?? self;
  const b = others[1] ?? (copies ? self : a);
  const canSpawn = others.length > 0 || copies;
  // Taught only to an agent that may pause (`pauses: true`): a pause nobody expects holds the run.
  const pauses = 'pauses' in definition && definition.pauses === true;

  const sections: string[] = [];
  sections.push(
    [
      `You are the agent "${self}" in a multi-agent system that runs work as a tree of branches.`,
      ...(description ? [`Your role: ${description}`] : []),
    ].join('\n'),
  );

  const team: string[] = [];
  team.push(
    others.length
      ? `Agents you may call: ${others.map((n) => `"${n}"`).join(', ')}.`
      : 'You may not call any other agent.',
  );
  if (copies) {
    team.push(`You may also spawn copies of yourself ("${self}") to work on parts of the task in parallel.`);
  }
  team.push('Never name any other agent: a reply naming an agent not listed here is rejected.');
  sections.push(team.join('\n'));

  if (input.mode === 'tools') {
    sections.push(toolForms({ others, copies, canSpawn, pauses, userTools: input.userTools ?? [], maxToolCalls: input.maxToolCalls, branchCalls: input.branchCalls }));
    if (userSystem) sections.push(`Instructions for this agent:\n${userSystem}`);
    return sections.join('\n\n');
  }

  const forms: string[] = [
    'How to answer: every reply is exactly one JSON object, in one of these forms.',
    '',
    'Finish and give your result (any JSON value as content):',
    json({ next_action: 'final_response', content: { answer: '...' } }),
  ];
  if (others.length) {
    forms.push(
      '',
      `Hand the work over to another agent in this branch (it continues with your input):`,
      json({ next_action: 'invoke_agent', action_input: { agent: a, input: '...' } }),
    );
  }
  if (canSpawn) {
    forms.push(
      '',
      'Run agents in parallel, each in its own child branch, and wait for their results:',
      json({
        next_action: 'parallel_invoke',
        agents: a === b ? [a, a] : [a, b],
        action_input: a === b ? { [a]: 'sub-task' } : { [a]: 'sub-task for A', [b]: 'sub-task for B' },
        wait_for: 'all',
        aggregator: 'default',
      }),
      '- "agents": who runs; naming an agent twice runs two copies. "action_input" gives each named agent its input (copies share it).',
      `- To give each child its own input, use "branches" instead: ${json({
        next_action: 'parallel_invoke',
        branches: [
          { agent: a, input: 'part 1' },
          { agent: a, input: 'part 2' },
        ],
      })}`,
      '- "wait_for": "all" (default), "any" (go on after the first success; the rest are cancelled) or a number k (after k successes).',
      `- "aggregator": "default" (you get {"child_count", "results": {<branchId>: <result>}, "failures": {<branchId>: <error>}}), ` +
        `"weighted_average" (children answer {"value": <number>, "weight": <number>}) or "agent:<Name>" (that agent combines the results, e.g. "agent:${a}").`,
      '- Per fan-out, beside "wait_for": "max_concurrency": n (children running at once, within the run\'s limit); "tolerated_failures": a count (2) or a fraction (0.3) of the children that may fail; ' +
        '"on_failure": "fail" (default: past the tolerated failures you fail too) or "continue" (you get the aggregate with "completion_reason" — ALL_COMPLETED, MIN_SUCCESSFUL_REACHED or FAILURE_TOLERANCE_EXCEEDED — and "children": {<branchId>: {agent, status, error}}, and decide what to do next).',
      '- When the children are done you are called again with the aggregated result as your input; then answer again (usually final_response).',
    );
  }
  if (copies) {
    forms.push(
      '',
      'Branched recursion, the other form ("next_actions" is a list of groups of actions):',
      `${json({ next_actions: [['sub-task 1', 'sub-task 2']] })} spawns one copy of yourself per action; several groups run one after another; you are then called with the list of the groups' results, one entry per group (a list of one for one group).`,
      `${json({ next_actions: [['my next thought']] })} (one group of one action) makes that action your own next input.`,
      `${json({ next_actions: [], content: { answer: '...' } })} finishes with that content.`,
    );
  }
  if (pauses) {
    forms.push(
      '',
      'Pause this branch without holding anything, then go on (you are called again in this branch):',
      `${json({ next_action: 'wait', seconds: 60, input: 'check again' })} (wait that long, or "until" an ISO 8601 date-time with its zone instead of "seconds"; you then get "input", else {"wait_over": {...}})`,
      `${json({ next_action: 'wait_for_callback', timeout_seconds: 3600, message: { question: '...' } })} (wait until someone outside answers; they are shown "message", their answer is your next input; past the timeout the branch fails)`,
    );
  }
  sections.push(forms.join('\n'));

  sections.push(
    [
      'Rules:',
      '- Answer with exactly one JSON object and nothing else: no prose, no second object.',
      '- Use only the agent names listed above.',
      '- If a reply cannot be read or is refused, the next message says why; answer again with a corrected JSON object.',
    ].join('\n'),
  );

  if (userSystem) sections.push(`Instructions for this agent:\n${userSystem}`);
  return sections.join('\n\n');
}

/** How an agent that calls tools acts: the protocol tools, then its own tools. */
function toolForms(input: { others: string[]; copies: boolean; canSpawn: boolean; pauses: boolean; userTools: readonly string[]; maxToolCalls?: number; branchCalls?: boolean }): string {
  const lines = [
    'How to act: call tools. Each reply calls exactly one of these protocol tools, which ends your turn:',
    '- final_response: finish and give your result as "content".',
  ];
  if (input.others.length) lines.push('- invoke_agent: hand the work over to another agent in this branch.');
  if (input.canSpawn) {
    lines.push(
      '- parallel_invoke: run agents in parallel, each in its own child branch; when they are done you are called again with the aggregated result (then usually call final_response).',
    );
  }
  if (input.copies) lines.push('- next_actions: split the work into copies of yourself, one per action.');
  if (input.pauses) {
    lines.push(
      '- wait: pause this branch for a while ("seconds", or "until" a time), then you are called again.',
      '- wait_for_callback: pause this branch until someone outside answers ("message" is shown to them); their answer is your next input.',
    );
  }
  if (input.userTools.length) {
    const cap = input.maxToolCalls !== undefined ? ` (at most ${input.maxToolCalls} calls in this turn)` : '';
    lines.push(
      '',
      `Before that you may call your own tools as often as you need${cap}: ${input.userTools.map((n) => `"${n}"`).join(', ')}. ` +
        'Their results come back to you; then act with a protocol tool.',
    );
    if (input.branchCalls) {
      lines.push(
        'Calling several of your tools at once runs each call in a copy of yourself: each copy gets one result and goes on from there, ' +
          'and you are then called again with all the copies\' results.',
      );
    }
  }
  lines.push('', `Only the agent names listed above are accepted. A refused call comes back with the reason; call again with corrected arguments.`);
  return lines.join('\n');
}

/**
 * The branch memory as chat history, then the step input as the last user message, within the
 * call's token budget: the input gets half of it (all of it without memory), each memory message an
 * equal share of the rest. A value cut to fit says how large it was and what was left out.
 */
export function buildMessages(memory: readonly MemoryEntry[], input: unknown, options: BuildMessagesOptions = {}): ChatMessage[] {
  const mode = options.mode ?? 'text';
  const tokens = options.promptTokens ?? DEFAULT_PROMPT_TOKENS;
  const budget = tokens * BYTES_PER_TOKEN;
  const inputBytes = memory.length ? Math.floor(budget / 2) : budget;
  const entryBytes = memory.length ? Math.max(MIN_MESSAGE_BYTES, Math.floor((budget - inputBytes) / memory.length)) : 0;
  const asUser = (value: unknown) => userText(value, mode);
  const messages: ChatMessage[] = memory.map((entry) => {
    const text = bounded(entry.content, entryBytes, tokens, options, entry.role === 'user' ? asUser : stringifyContent);
    const foreign = options.agentName !== undefined && entry.agent !== options.agentName;
    const label = entry.role === 'user' ? `[input to agent ${entry.agent}]` : `[reply of agent ${entry.agent}]`;
    return { role: entry.role, content: foreign ? `${label}\n${text}` : text };
  });
  messages.push({ role: 'user', content: bounded(input, inputBytes, tokens, options, asUser) });
  return messages;
}

/** A message's text of at most about `maxBytes`, with a note when the value had to be cut. */
function bounded(content: unknown, maxBytes: number, tokens: number, options: BuildMessagesOptions, text: (value: unknown) => string): string {
  const shown = boundValue(content, maxBytes);
  if (!shown.truncated) return text(content);
  const left = shown.entriesLeftOut ? `; ${shown.entriesLeftOut} entries (marked "…") were left out` : '';
  const results = isObject(content) && isObject(content.results) ? Object.keys(content.results).length : 0;
  const kept = isObject(shown.value) && isObject(shown.value.results) ? Object.keys(shown.value.results).filter((k) => k !== '…').length : 0;
  const children = results ? ` It holds the results of ${results} children; ${results - kept} of them are not shown here.` : '';
  const where = options.runId ? ` Each child's whole result: GET /runs/${options.runId}/branches/<childId>/result.` : '';
  return `${text(shown.value)}\n[This value is ${shown.bytes} bytes; it was cut to fit this call's budget of ${tokens} tokens${left}.${children}${where}]`;
}

/** Text of a message: strings as they are, anything else as JSON. */
export function stringifyContent(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return 'null';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A user turn; the runtime's corrective inputs become plain instructions. */
function userText(content: unknown, mode: 'text' | 'tools'): string {
  if (isObject(content) && content.error === 'InvalidAgentResponse') {
    const field = typeof content.field === 'string' && content.field ? ` (field "${content.field}")` : '';
    const again =
      mode === 'tools'
        ? 'Act again: call one protocol tool with corrected arguments.'
        : 'Answer again with exactly one JSON object in one of the forms from the system prompt, and nothing else.';
    return `Your previous reply was not accepted${field}: ${stringifyContent(content.message ?? 'invalid response')}\n${again}`;
  }
  if (isObject(content) && content.error === 'LimitExceeded') {
    const limit = typeof content.limit === 'string' ? ` (limit ${content.limit})` : '';
    return (
      `Your request to spawn branches was refused${limit}: ${stringifyContent(content.message ?? 'a limit was reached')}\n` +
      'Choose another action, for example do the work yourself and answer with final_response. A second refusal fails this branch.'
    );
  }
  return stringifyContent(content);
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

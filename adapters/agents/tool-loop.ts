/**
 * The model <-> tool loop of one step of an LLM agent that calls tools natively. The model is
 * offered the protocol tools (core/protocol-tools) and the agent's user tools; user tool calls
 * are run and their results sent back, until the model calls a protocol tool (the step's reply)
 * or answers in text (read with the text protocol). The wire format of each API (OpenAI chat
 * completions, Bedrock Converse) is its invoker's business, behind ChatSession.
 */
import type { LlmAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, ToolsRefusedError } from '../../core/errors';
import { DEFAULT_LIMITS } from '../../core/limits';
import type { AgentInvocation, AgentReply } from '../../core/ports';
import { buildMessages, buildSystemPrompt, type ChatMessage } from '../../core/prompt';
import { isProtocolTool, protocolTools, responseOfToolCall, type ToolSpec } from '../../core/protocol-tools';
import { branchedCallOf, branchedCallsResponse, toolCallingOf, type ToolCallRecord, type ToolLoopCheckpoint, type ToolTurn } from '../../core/tools';
import { callTool, ToolCallAborted, tracedValues, type ToolBox, type ToolCallContext, type UserTool } from '../tools/tool-box';

export interface ToolCallRequest {
  id: string;
  name: string;
  /** Parsed arguments; a string when the model sent text that is not JSON. */
  args: unknown;
}

export interface ModelTurn {
  text?: string;
  calls: ToolCallRequest[];
  usage?: { inputTokens: number; outputTokens: number };
}

export interface ToolResult {
  call: ToolCallRequest;
  text: string;
  isError: boolean;
}

export interface ChatSession<M> {
  /** One model call (with the invoker's retries) offering these tools; `required`: a tool must be called. */
  turn(messages: M[], tools: ToolSpec[], choice: 'auto' | 'required'): Promise<ModelTurn>;
  /** The model's turn as it goes back into the conversation. */
  assistant(turn: ModelTurn): M;
  /** The messages that give the model its tool calls' results. */
  toolResults(results: ToolResult[]): M[];
}

export interface ToolLoopOptions<M> {
  agent: string;
  messages: M[];
  protocol: ToolSpec[];
  tools: UserTool[];
  /** `required` makes the model call a tool every turn (`toolCalling: on`). */
  choice: 'auto' | 'required';
  maxToolCalls: number;
  context: ToolCallContext;
  onToolCall?: (record: ToolCallRecord) => void;
  checkpoint?: AgentInvocation['checkpoint'];
  /** The step (checkpoints name it). */
  step: number;
  /** `parallel_tool_calls: branch`: a turn with several user tool calls becomes a spawn of copies, one call each. */
  branchCalls?: boolean;
  /** This step is a branched copy's first: it runs this call, then goes on reasoning. */
  branchedCall?: ToolCallRequest;
}

export async function runToolLoop<M>(session: ChatSession<M>, options: ToolLoopOptions<M>): Promise<AgentReply> {
  const spent = { inputTokens: 0, outputTokens: 0 };
  try {
    return await loop(session, options, spent);
  } catch (error) {
    // The tokens of the turns before the failure were spent all the same: they go with the error.
    if (!(error instanceof AgentInvocationError) || error.usage || spent.inputTokens + spent.outputTokens === 0) throw error;
    const Failure = error.constructor as typeof AgentInvocationError;
    throw new Failure(error.agent, error.message, { cause: error.cause, usage: { ...spent } });
  }
}

async function loop<M>(session: ChatSession<M>, options: ToolLoopOptions<M>, spent: AgentReply['usage'] & object): Promise<AgentReply> {
  const { agent, protocol, tools, maxToolCalls, context } = options;
  const byName = new Map(tools.map((t) => [t.spec.name, t]));
  const messages = [...options.messages];
  const resumed = options.checkpoint?.resumeFrom;
  const state: ToolLoopCheckpoint = resumed
    ? structuredClone(resumed)
    : { step: options.step, turns: [], usage: spent, records: [] };
  if (resumed) Object.assign(spent, state.usage);
  state.usage = spent;
  const save = () => options.checkpoint?.save(structuredClone(state)) ?? Promise.resolve();
  if (!resumed && options.branchedCall) {
    // A branched copy starts where its parent's turn left off, with its one call to run.
    state.turns.push({ calls: [{ ...options.branchedCall }], results: {} });
    await save();
  }
  let called = state.turns.reduce((n, t) => n + t.calls.length, 0);

  const tell = (record: ToolCallRecord) => {
    state.records.push(record);
    options.onToolCall?.(record);
  };
  /** Runs the calls of a turn that have no result yet; each result is checkpointed as it comes. */
  const runCalls = async (turn: ToolTurn, interrupted: boolean): Promise<void> => {
    let saving = Promise.resolve();
    const outcomes = await Promise.allSettled(
      turn.calls
        .filter((call) => !Object.hasOwn(turn.results, call.id))
        .map(async (call) => {
          const tool = byName.get(call.name);
          let outcome: { text: string; isError: boolean; record: ToolCallRecord };
          if (interrupted && tool && !tool.idempotent) {
            const text = `not run again: this call was in flight when the step was interrupted, and ${call.name} is not idempotent; its outcome is unknown`;
            outcome = await refusal(call, tool, text, 'interrupted', context);
          } else if (!tool) outcome = await refusal(call, tool, `there is no tool named "${call.name}"`, 'error', context);
          else if (call.refused) outcome = await refusal(call, tool, call.refused, 'refused', context);
          else if (typeof call.args === 'string') {
            outcome = await refusal(call, tool, `the arguments of ${call.name} must be a JSON object: ${call.args.slice(0, 200)}`, 'error', context);
          } else outcome = await callTool(tool, call.args ?? {}, context);
          tell(outcome.record);
          turn.results[call.id] = { text: outcome.text, isError: outcome.isError };
          // One write at a time: each checkpoint is conditional on the branch version the last one left.
          saving = saving.then(save);
          await saving;
        }),
    );
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') continue;
      if (outcome.reason instanceof ToolCallAborted) {
        tell(outcome.reason.outcome.record);
        throw new AgentInvocationError(agent, 'aborted: the branch ended', { cause: outcome.reason });
      }
      throw outcome.reason;
    }
  };
  const results = (turn: ToolTurn): ToolResult[] =>
    turn.calls.map((call) => ({ call, ...(turn.results[call.id] ?? { text: '(no result)', isError: true }) }));

  // A redelivered step: the conversation as checkpointed; a turn whose calls did not all end runs the rest.
  // A redelivery claims the loop first (a conditional write): of two concurrent deliveries of one
  // step, the second stops here instead of running the interrupted calls a second time.
  if (resumed) await save();
  for (const [i, turn] of state.turns.entries()) {
    messages.push(session.assistant(turn));
    if (i === state.turns.length - 1) await runCalls(turn, Boolean(resumed));
    messages.push(...session.toolResults(results(turn)));
  }

  for (;;) {
    const used = called >= maxToolCalls;
    // Past the limit only the protocol tools are offered, and one of them must be called.
    const offered = used ? protocol : [...protocol, ...tools.map((t) => t.spec)];
    const turn = await session.turn(messages, offered, used ? 'required' : options.choice);
    state.usage.inputTokens += turn.usage?.inputTokens ?? 0;
    state.usage.outputTokens += turn.usage?.outputTokens ?? 0;
    const usage = { ...state.usage };

    const actions = turn.calls.filter((c) => isProtocolTool(c.name));
    if (actions.length > 1) {
      const names = actions.map((c) => c.name).join(', ');
      return { response: turn.text ?? '', usage, invalid: { field: '(root)', message: `call exactly one protocol tool per reply; got ${names}` } };
    }
    if (actions.length === 1) {
      // User tool calls next to the action are not run: the action ends the step.
      const action = actions[0];
      const read = responseOfToolCall(action.name as Parameters<typeof responseOfToolCall>[0], action.args);
      return read.ok ? { response: read.response, usage } : { response: { next_action: action.name }, usage, invalid: read };
    }
    if (turn.calls.length === 0) return { response: turn.text ?? '', usage };
    if (options.branchCalls && turn.calls.length > 1 && !used) {
      // Parallel actions: each call runs in a copy of the agent, which goes on reasoning; this branch waits for them.
      return { response: branchedCallsResponse(agent, turn.calls), usage };
    }
    if (used) {
      throw new AgentInvocationError(
        agent,
        `LimitExceeded maxToolCallsPerStep: ${agent} called tools again after its ${maxToolCalls} tool calls of this step`,
      );
    }

    // Calls past the limit are refused; the turn is checkpointed before any call runs.
    const refused = `refused: the ${maxToolCalls} tool calls of this step (maxToolCallsPerStep) are used; act now with a protocol tool`;
    const recorded: ToolTurn = {
      ...(turn.text !== undefined ? { text: turn.text } : {}),
      calls: turn.calls.map((c) => (called++ < maxToolCalls ? { ...c } : { ...c, refused })),
      results: {},
    };
    state.turns.push(recorded);
    await save();
    messages.push(session.assistant(turn));
    await runCalls(recorded, false);
    messages.push(...session.toolResults(results(recorded)));
  }
}

/** A call answered without running it (no such tool, bad arguments, past the limit, not run again): traced as calls are. */
async function refusal(call: ToolCallRequest, tool: UserTool | undefined, text: string, status: ToolCallRecord['status'], context: ToolCallContext) {
  const record: ToolCallRecord = {
    tool: call.name,
    kind: tool?.kind ?? 'unknown',
    status,
    durationMs: 0,
    ...(await tracedValues(call.args, '', context)),
    // Nothing ran: no output.
    outputBytes: 0,
    error: text,
  };
  return { text, isError: true, record };
}

export interface LlmStep<M> {
  call: AgentInvocation<LlmAgentDefinition>;
  toolBox: ToolBox;
  /** Models whose server refused tools: `auto` goes straight to the text protocol for them. */
  refused: Set<string>;
  modelKey: string;
  /** One call in the text protocol (the fallback, and `toolCalling: off`). */
  text(system: string, messages: ChatMessage[]): Promise<AgentReply>;
  /** The API's tool-calling session, with this system prompt. */
  session(system: string): ChatSession<M>;
  /** The history and the step's input in the API's message shape. */
  initial(messages: ChatMessage[]): M[];
}

/**
 * One step of an LLM agent, by its `toolCalling` (core/tools.ts): `off` answers in text; `on`
 * runs the tool loop; `auto` runs it and, when the server refuses a request with tools, answers
 * in text instead (and keeps doing so for that model in this process).
 */
export async function invokeLlm<M>(step: LlmStep<M>): Promise<AgentReply> {
  const { call } = step;
  const agent = call.agentName;
  const mode = toolCallingOf(call.definition);
  const base = { agentName: agent, definition: call.definition, allowed: call.allowed, isCopyAllowed: true, pauses: call.definition.pauses === true };
  // The messages' token budget (core/prompt.ts): the agent's `promptTokens`, validated with the scenario.
  const { promptTokens } = call.definition;
  const messagesOf = (mode: 'text' | 'tools') => buildMessages(call.memory, call.input, { agentName: agent, mode, promptTokens, runId: call.runId });
  const inText = () => step.text(buildSystemPrompt(base), messagesOf('text'));
  if (mode === 'off' || (mode === 'auto' && step.refused.has(step.modelKey))) return inText();

  const tools = await step.toolBox.toolsFor(agent, call.definition.tools ?? []);
  const maxToolCalls = call.maxToolCalls ?? DEFAULT_LIMITS.maxToolCallsPerStep;
  const branchCalls = call.definition.parallel_tool_calls === 'branch';
  const system = buildSystemPrompt({ ...base, mode: 'tools', userTools: tools.map((t) => t.spec.name), maxToolCalls, branchCalls });
  const branchedCall = branchedCallOf(call.input);
  try {
    return await runToolLoop(step.session(system), {
      agent,
      messages: step.initial(branchedCall ? branchedHistory(messagesOf('tools')) : messagesOf('tools')),
      branchCalls,
      ...(branchedCall ? { branchedCall } : {}),
      protocol: protocolTools(base),
      tools,
      choice: mode === 'on' ? 'required' : 'auto',
      maxToolCalls,
      context: { agent, team: call.team, branchId: call.branchId, runId: call.runId, signal: call.signal, trace: step.toolBox.trace },
      onToolCall: call.onToolCall,
      checkpoint: call.checkpoint,
      step: call.step,
    });
  } catch (error) {
    if (mode !== 'auto' || !(error instanceof ToolsRefusedError)) throw error;
    step.refused.add(step.modelKey);
    return inText();
  }
}

/**
 * A branched copy's conversation: its parent's up to the turn that asked for the calls, without
 * the step's own input (the marker of its call) and the parent's spawn reply that stands for that
 * turn (the copy's one call replaces it).
 */
function branchedHistory(messages: ChatMessage[]): ChatMessage[] {
  const history = messages.slice(0, -1);
  while (history.at(-1)?.role === 'assistant') history.pop();
  return history;
}

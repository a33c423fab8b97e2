/**
 * `bedrock` agents: Bedrock Converse calls. With `toolCalling` off, one call per step: the system
 * prompt teaches the protocol (core/prompt) and the reply's text goes back raw for the runtime to
 * parse. Otherwise the protocol and the agent's tools are offered in `toolConfig` and the step
 * runs the tool loop (tool-loop.ts). Transient Bedrock errors are retried with backoff; each call
 * has its own timeout (transport-call.ts).
 */
import { isTransientAwsError } from '../aws-errors';
import { abortableSleep, type Sleep } from '../retry';
import type { BedrockRuntimeClient, ContentBlock, ConverseCommandInput, ConverseCommandOutput, Message, Tool } from '@aws-sdk/client-bedrock-runtime';
import type { BedrockAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, AgentTransportError, ToolsRefusedError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';
import type { ChatMessage } from '../../core/prompt';
import type { ToolSpec } from '../../core/protocol-tools';
import { ToolBox } from '../tools/tool-box';
import { invokeLlm, type ChatSession } from './tool-loop';
import { callWithin, withTransportRetries } from './transport-call';

export type { Sleep } from '../retry';

export interface BedrockInvokerOptions {
  /** Client for agents that name no `region` (default: a client for the environment's region). */
  client?: BedrockRuntimeClient;
  /** Makes the client of an agent that names a `region` (one per region, kept). */
  clientForRegion?: (region: string) => BedrockRuntimeClient;
  /** Waits between attempts (injected by tests). */
  sleep?: Sleep;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Attempts per step when the definition gives no `retries` (default 3). */
  maxAttempts?: number;
  /** Base delay of the exponential backoff, ms (default 500). */
  backoffMs?: number;
  /** Largest delay between attempts, ms (default 20 000). */
  maxBackoffMs?: number;
  /** Per-call timeout when the definition gives no `timeoutMs` (default 60 000). */
  timeoutMs?: number;
  /** Runs the agents' user tools (default: a ToolBox of its own). */
  toolBox?: ToolBox;
}

/** Bedrock's own retryable errors, beside every AWS service's (adapters/aws-errors.ts). */
const MODEL_RETRYABLE_NAMES = ['ModelNotReadyException', 'InternalServerException', 'ModelTimeoutException'];

type BedrockSdk = typeof import('@aws-sdk/client-bedrock-runtime');
let sdk: Promise<BedrockSdk> | undefined;
/**
 * The Bedrock client's modules, loaded by the first bedrock step: a process whose runs have no
 * bedrock agent never loads them (with the AWS SDK core they bring, some 4 MB of heap and 18 MB
 * of resident memory for a local run).
 */
const loadSdk = (): Promise<BedrockSdk> => (sdk ??= import('@aws-sdk/client-bedrock-runtime'));

export class BedrockInvoker implements AgentInvoker<BedrockAgentDefinition> {
  private defaultClient: BedrockRuntimeClient | undefined;
  private readonly regional = new Map<string, BedrockRuntimeClient>();
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly timeoutMs: number;
  private readonly toolBox: ToolBox;
  private readonly refused = new Set<string>();

  constructor(private readonly options: BedrockInvokerOptions = {}) {
    this.defaultClient = options.client;
    this.sleep = options.sleep ?? abortableSleep;
    this.random = options.random ?? Math.random;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 20_000;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.toolBox = options.toolBox ?? new ToolBox();
  }

  /** Closes what the tools opened (MCP servers). */
  close(): Promise<void> {
    return this.toolBox.close();
  }

  async invoke(call: AgentInvocation<BedrockAgentDefinition>): Promise<AgentReply> {
    const def = call.definition;
    const agent = call.agentName;
    const { modelId } = def;
    const timeoutMs = def.timeoutMs ?? this.timeoutMs;
    const attempts = def.retries !== undefined ? def.retries + 1 : this.maxAttempts;
    const { BedrockRuntimeClient, ConverseCommand } = await loadSdk();
    const client = this.clientFor(def.region, BedrockRuntimeClient);
    const inferenceConfig = {
      ...(def.temperature !== undefined ? { temperature: def.temperature } : {}),
      ...(def.maxTokens !== undefined ? { maxTokens: def.maxTokens } : {}),
    };
    const converse = (input: ConverseCommandInput): Promise<ConverseCommandOutput> => {
      const policy = { attempts, baseMs: this.backoffMs, maxMs: this.maxBackoffMs, random: this.random, sleep: this.sleep, signal: call.signal };
      return withTransportRetries(policy, () =>
        callWithin(call, timeoutMs, `Bedrock model ${modelId}`, async (signal) => {
          try {
            return await client.send(new ConverseCommand(input), { abortSignal: signal as never });
          } catch (error) {
            if (signal.aborted) throw error;
            // Throttling, 5xx and the model's own retryable errors are tried again (transport-call.ts).
            const Failure = isTransientAwsError(error, MODEL_RETRYABLE_NAMES) ? AgentTransportError : AgentInvocationError;
            throw new Failure(agent, `Bedrock model ${modelId} failed: ${describeError(error)}`, { cause: error });
          }
        }),
      );
    };
    const base = (system: string, messages: Message[]): ConverseCommandInput => ({
      modelId,
      system: [{ text: system }],
      messages,
      ...(Object.keys(inferenceConfig).length ? { inferenceConfig } : {}),
    });

    return invokeLlm<Message>({
      call,
      toolBox: this.toolBox,
      refused: this.refused,
      modelKey: `${def.region ?? ''} ${modelId}`,
      text: async (system, messages) => toReply(agent, modelId, await converse(base(system, toConverseMessages(messages)))),
      initial: toConverseMessages,
      session: (system): ChatSession<Message> => ({
        turn: async (messages, tools, choice) => {
          const input = {
            ...base(system, messages),
            toolConfig: { tools: tools.map(converseTool), toolChoice: choice === 'required' ? { any: {} } : { auto: {} } },
          };
          let output: ConverseCommandOutput;
          try {
            output = await converse(input);
          } catch (error) {
            throw refusedTools(error) ?? error;
          }
          return toTurn(agent, modelId, output);
        },
        assistant: (turn) => ({
          role: 'assistant',
          content: [
            ...(turn.text?.trim() ? [{ text: turn.text }] : []),
            ...turn.calls.map((c) => ({ toolUse: { toolUseId: c.id, name: c.name, input: c.args as never } })),
          ],
        }),
        // Converse takes every result of one turn in one user message.
        toolResults: (results) => [
          {
            role: 'user',
            content: results.map((r) => ({
              toolResult: { toolUseId: r.call.id, content: [{ text: r.text || '(empty)' }], status: r.isError ? 'error' : 'success' },
            })),
          },
        ],
      }),
    });
  }

  private clientFor(region: string | undefined, Client: BedrockSdk['BedrockRuntimeClient']): BedrockRuntimeClient {
    if (region) {
      let client = this.regional.get(region);
      if (!client) {
        client = this.options.clientForRegion?.(region) ?? newClient(Client, region);
        this.regional.set(region, client);
      }
      return client;
    }
    this.defaultClient ??= newClient(Client, undefined);
    return this.defaultClient;
  }
}

/** Converse wants alternating roles starting with a user turn: merge runs, lead with a user turn. */
export function toConverseMessages(messages: readonly ChatMessage[]): Message[] {
  const turns: { role: ChatMessage['role']; texts: string[] }[] = [];
  for (const message of messages) {
    // Converse rejects blank text blocks.
    const text = message.content.trim() === '' ? '(empty)' : message.content;
    const last = turns.at(-1);
    if (last?.role === message.role) last.texts.push(text);
    else turns.push({ role: message.role, texts: [text] });
  }
  if (turns[0]?.role === 'assistant') turns.unshift({ role: 'user', texts: ['(the conversation so far)'] });
  return turns.map((turn) => ({ role: turn.role, content: [{ text: turn.texts.join('\n\n') }] }));
}

function toReply(agent: string, modelId: string, output: ConverseCommandOutput): AgentReply {
  const blocks = output.output?.message?.content ?? [];
  const texts = blocks.map((block) => block.text).filter((text): text is string => typeof text === 'string');
  if (texts.length === 0) {
    throw new AgentInvocationError(agent, `Bedrock model ${modelId} returned no text (stopReason ${output.stopReason ?? 'unknown'})`);
  }
  return {
    response: texts.join('\n'),
    usage: { inputTokens: output.usage?.inputTokens ?? 0, outputTokens: output.usage?.outputTokens ?? 0 },
  };
}

function converseTool(tool: ToolSpec): Tool {
  return { toolSpec: { name: tool.name, description: tool.description, inputSchema: { json: tool.parameters as never } } };
}

/** One model turn of the tool loop: its text, its toolUse blocks and usage. */
function toTurn(agent: string, modelId: string, output: ConverseCommandOutput) {
  const message = output.output?.message;
  if (!message) throw new AgentInvocationError(agent, `Bedrock model ${modelId} returned no message (stopReason ${output.stopReason ?? 'unknown'})`);
  const blocks: ContentBlock[] = message.content ?? [];
  const texts = blocks.map((b) => b.text).filter((t): t is string => typeof t === 'string');
  const calls = blocks
    .filter((b) => b.toolUse)
    .map((b, i) => ({ id: b.toolUse!.toolUseId ?? `tooluse_${i}`, name: b.toolUse!.name ?? '', args: b.toolUse!.input ?? {} }));
  return {
    ...(texts.length ? { text: texts.join('\n') } : {}),
    calls,
    usage: { inputTokens: output.usage?.inputTokens ?? 0, outputTokens: output.usage?.outputTokens ?? 0 },
  };
}

/** A ValidationException about tools: the model does not do tool calling (or not this way). */
function refusedTools(error: unknown): ToolsRefusedError | undefined {
  if (!(error instanceof AgentInvocationError) || !/ValidationException/.test(error.message) || !/tool/i.test(error.message)) return undefined;
  return new ToolsRefusedError(error.agent, error.message, { cause: error });
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function newClient(Client: BedrockSdk['BedrockRuntimeClient'], region: string | undefined): BedrockRuntimeClient {
  // One attempt per send: this invoker's own loop does the retrying (and its backoff).
  return new Client({ ...(region ? { region } : {}), maxAttempts: 1 });
}


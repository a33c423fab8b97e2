/**
 * `openai` agents: calls to any OpenAI-compatible `/chat/completions` endpoint (OpenAI, Ollama,
 * llama.cpp server, vLLM, ...). With `toolCalling` off, one call per step: the system prompt
 * teaches the protocol (core/prompt) and the reply's text goes back raw for the runtime to parse.
 * Otherwise the protocol and the agent's tools are offered as `tools` and the step runs the tool
 * loop (tool-loop.ts). 429, 5xx and network errors are retried with backoff; each call has its
 * own timeout (transport-call.ts).
 */
import { abortableSleep, type Sleep } from '../retry';
import type { OpenAiAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, AgentTransportError, ToolsRefusedError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';
import type { ChatMessage } from '../../core/prompt';
import type { ToolSpec } from '../../core/protocol-tools';
import { ToolBox } from '../tools/tool-box';
import { invokeLlm, type ChatSession, type ToolCallRequest } from './tool-loop';
import { DEFAULT_MAX_RESPONSE_BYTES, readCappedText } from './http-invoker';
import { callWithin, DEFAULT_MAX_RETRY_AFTER_MS, isTransientStatus, retryAfterMs, withTransportRetries } from './transport-call';

export type { Sleep } from '../retry';

export interface OpenAiInvokerOptions {
  fetch?: typeof fetch;
  /** Waits between attempts (injected by tests). */
  sleep?: Sleep;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Where `apiKeyEnv` is looked up (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Base URL for agents that give no `baseUrl` (default https://api.openai.com/v1). */
  defaultBaseUrl?: string;
  /** Attempts per step when the definition gives no `retries` (default 3). */
  maxAttempts?: number;
  /** Base delay of the exponential backoff, ms (default 500). */
  backoffMs?: number;
  /** Largest delay between attempts, ms (default 20 000). */
  maxBackoffMs?: number;
  /** Cap on a server's `retry-after`, ms (default 30 000). */
  maxRetryAfterMs?: number;
  /** Per-call timeout when the definition gives no `timeoutMs` (default 60 000). */
  timeoutMs?: number;
  /** Runs the agents' user tools (default: a ToolBox of its own). */
  toolBox?: ToolBox;
  /** Largest response body read (default 4 MiB, as the http agent's): a larger one fails the call. */
  maxResponseBytes?: number;
}

/** A chat completions message as the API takes it. */
type OpenAiMessage = Record<string, unknown>;

interface ChatCompletion {
  choices?: {
    message?: { role?: string; content?: unknown; tool_calls?: { id?: string; type?: string; function?: { name?: string; arguments?: unknown } }[] };
    finish_reason?: string;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

export class OpenAiInvoker implements AgentInvoker<OpenAiAgentDefinition> {
  private readonly fetch: typeof fetch;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly env: Record<string, string | undefined>;
  private readonly defaultBaseUrl: string;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly toolBox: ToolBox;
  private readonly refused = new Set<string>();

  constructor(options: OpenAiInvokerOptions = {}) {
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.sleep = options.sleep ?? abortableSleep;
    this.random = options.random ?? Math.random;
    this.env = options.env ?? process.env;
    this.defaultBaseUrl = options.defaultBaseUrl ?? 'https://api.openai.com/v1';
    this.maxAttempts = options.maxAttempts ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 20_000;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.toolBox = options.toolBox ?? new ToolBox();
  }

  /** Closes what the tools opened (MCP servers). */
  close(): Promise<void> {
    return this.toolBox.close();
  }

  async invoke(call: AgentInvocation<OpenAiAgentDefinition>): Promise<AgentReply> {
    const def = call.definition;
    const agent = call.agentName;
    const url = chatCompletionsUrl(def.baseUrl ?? this.defaultBaseUrl);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (def.apiKeyEnv) {
      const key = this.env[def.apiKeyEnv];
      if (!key) {
        throw new AgentInvocationError(
          agent,
          `openai agent ${agent}: the environment variable ${def.apiKeyEnv} (apiKeyEnv) is not set; set it to the API key`,
        );
      }
      headers.authorization = `Bearer ${key}`;
    }
    const timeoutMs = def.timeoutMs ?? this.timeoutMs;
    const attempts = def.retries !== undefined ? def.retries + 1 : this.maxAttempts;
    const sampling = {
      ...(def.temperature !== undefined ? { temperature: def.temperature } : {}),
      ...(def.maxTokens !== undefined ? { max_tokens: def.maxTokens } : {}),
    };
    const post = <T>(body: Record<string, unknown>, read: (text: string) => T): Promise<T> => {
      const text = JSON.stringify({ model: def.model, ...body, ...sampling, stream: false });
      const policy = { attempts, baseMs: this.backoffMs, maxMs: this.maxBackoffMs, random: this.random, sleep: this.sleep, signal: call.signal };
      return withTransportRetries(policy, async () => read(await this.attempt(call, url, headers, text, timeoutMs, def.maxResponseBytes ?? this.maxResponseBytes)));
    };
    const system = (content: string): OpenAiMessage => ({ role: 'system', content });

    return invokeLlm<OpenAiMessage>({
      call,
      toolBox: this.toolBox,
      refused: this.refused,
      modelKey: `${url} ${def.model}`,
      text: (prompt, messages) => post({ messages: [system(prompt), ...messages] }, (text) => toReply(agent, url, text)),
      initial: (messages: ChatMessage[]) => messages.map((m) => ({ role: m.role, content: m.content })),
      session: (prompt): ChatSession<OpenAiMessage> => ({
        turn: async (messages, tools, choice) => {
          const body = { messages: [system(prompt), ...messages], tools: tools.map(openAiTool), tool_choice: choice };
          try {
            return await post(body, (text) => toTurn(agent, url, text));
          } catch (error) {
            throw refusedTools(error) ?? error;
          }
        },
        assistant: (turn) => ({
          role: 'assistant',
          // Some servers reject a null content next to tool calls: an empty string instead.
          content: turn.text ?? '',
          tool_calls: turn.calls.map((c) => ({
            id: c.id,
            type: 'function',
            function: { name: c.name, arguments: typeof c.args === 'string' ? c.args : JSON.stringify(c.args ?? {}) },
          })),
        }),
        toolResults: (results) => results.map((r) => ({ role: 'tool', tool_call_id: r.call.id, content: r.text })),
      }),
    });
  }

  /** One HTTP call: the answer's body, or the failure (a transport one is retried, see transport-call.ts). */
  private async attempt(
    call: AgentInvocation<OpenAiAgentDefinition>,
    url: string,
    headers: Record<string, string>,
    body: string,
    timeoutMs: number,
    maxBytes: number,
  ): Promise<string> {
    const agent = call.agentName;
    const { status, retryAfter, text } = await callWithin(call, timeoutMs, url, async (signal) => {
      try {
        const response = await this.fetch(url, { method: 'POST', headers, body, signal });
        // Capped as the http agent's body is: a huge answer is refused, never held whole.
        const text = await readCappedText(response, maxBytes, () => `the response of ${url} is over maxResponseBytes (${maxBytes} bytes)`, agent);
        return { status: response.status, retryAfter: response.headers.get('retry-after'), text };
      } catch (error) {
        if (error instanceof AgentInvocationError || signal.aborted) throw error;
        const reason = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
        throw new AgentTransportError(agent, `request to ${url} failed: ${reason}`, { cause: error });
      }
    });
    if (isTransientStatus(status)) {
      throw new AgentTransportError(agent, `HTTP ${status} from ${url}: ${errorDetail(text)}`, { retryAfterMs: retryAfterMs(retryAfter, this.maxRetryAfterMs) });
    }
    if (status < 200 || status >= 300) throw new AgentInvocationError(agent, `HTTP ${status} from ${url}: ${errorDetail(text)}`);
    return text;
  }
}

/** `…/v1` → `…/v1/chat/completions`; a base URL that already ends with the path is kept. */
export function chatCompletionsUrl(baseUrl: string): string {
  const trimmed = baseUrl.replace(/\/+$/, '');
  return trimmed.endsWith('/chat/completions') ? trimmed : `${trimmed}/chat/completions`;
}

function toReply(agent: string, url: string, text: string): AgentReply {
  const body = parseBody(agent, url, text);
  const choice = body.choices?.[0];
  const content = contentText(choice?.message?.content);
  if (content === undefined) {
    throw new AgentInvocationError(
      agent,
      `${url} returned no message content (finish_reason ${choice?.finish_reason ?? 'unknown'})`,
    );
  }
  const usage = body.usage
    ? { inputTokens: body.usage.prompt_tokens ?? 0, outputTokens: body.usage.completion_tokens ?? 0 }
    : undefined;
  return usage ? { response: content, usage } : { response: content };
}

function openAiTool(tool: ToolSpec) {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

/** One model turn of the tool loop: its text, its tool calls (arguments parsed) and usage. */
function toTurn(agent: string, url: string, text: string) {
  const body = parseBody(agent, url, text);
  const message = body.choices?.[0]?.message;
  if (!message) throw new AgentInvocationError(agent, `${url} returned no message (finish_reason ${body.choices?.[0]?.finish_reason ?? 'unknown'})`);
  const calls: ToolCallRequest[] = (message.tool_calls ?? []).map((c, i) => ({
    id: c.id ?? `call_${i}`,
    name: c.function?.name ?? '',
    args: parseArguments(c.function?.arguments),
  }));
  const content = contentText(message.content);
  return {
    ...(content !== undefined ? { text: content } : {}),
    calls,
    ...(body.usage ? { usage: { inputTokens: body.usage.prompt_tokens ?? 0, outputTokens: body.usage.completion_tokens ?? 0 } } : {}),
  };
}

/** Arguments come as a JSON string; an object is taken as it is, text that is not JSON stays text (and is refused). */
function parseArguments(raw: unknown): unknown {
  if (typeof raw !== 'string') return raw ?? {};
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** A 400/404/422 that names tools: the server (or model) does not do tool calling. */
function refusedTools(error: unknown): ToolsRefusedError | undefined {
  if (!(error instanceof AgentInvocationError) || error instanceof ToolsRefusedError) return undefined;
  if (!/^HTTP (400|404|422|501) /.test(error.message) || !/tool/i.test(error.message)) return undefined;
  return new ToolsRefusedError(error.agent, error.message, { cause: error });
}

function parseBody(agent: string, url: string, text: string): ChatCompletion {
  try {
    return JSON.parse(text) as ChatCompletion;
  } catch {
    throw new AgentInvocationError(agent, `${url} answered with something that is not JSON: ${text.slice(0, 200)}`);
  }
}

/** A string, or the text parts of a content array (some servers answer with parts). */
function contentText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts = content
      .map((part) => (part && typeof part === 'object' && typeof part.text === 'string' ? (part.text as string) : undefined))
      .filter((t): t is string => t !== undefined);
    return texts.length ? texts.join('\n') : undefined;
  }
  return undefined;
}

/** The server's error message when it sent the OpenAI error shape, else the start of the body. */
function errorDetail(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string };
    const message = typeof body.error === 'string' ? body.error : body.error?.message;
    if (typeof message === 'string') return message.slice(0, 300);
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 300) || '(empty body)';
}


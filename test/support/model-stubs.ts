/**
 * Loopback model servers that speak the tool-calling wire formats: OpenAI chat completions
 * (`tools` in, `tool_calls` out, `role: tool` results) and Bedrock Converse (`toolConfig` in,
 * `toolUse` blocks out, `toolResult` blocks back). Each hands a "brain" a plain view of the
 * conversation and turns what it decides into the API's answer, so one script drives both.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createH2Server, type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface ConversationView {
  /** The agent, read from the system prompt. */
  agent: string;
  system: string;
  /** The user turns' texts, in order (the step input is the last). */
  users: string[];
  /** The tool results of the current step, in order. */
  results: { name: string; text: string; isError: boolean }[];
  /** The names of the tools offered in this request. */
  offered: string[];
  /** `required` (OpenAI) / `any` (Bedrock) when a tool must be called. */
  choice: string | undefined;
  /** The raw request body. */
  body: Record<string, unknown>;
}

export type Decision =
  | { calls: { name: string; args: unknown; rawArgs?: string }[] }
  | { text: string }
  /** An error answer; `errorType`: Bedrock's error name (default ValidationException), as `x-amzn-ErrorType` tells it. */
  | { status: number; error: string; errorType?: string };

export type Brain = (view: ConversationView) => Decision | Promise<Decision>;

export interface ModelStub {
  url: string;
  requests: ConversationView[];
  brain: Brain;
  close(): Promise<void>;
}

const USAGE = { input: 100, output: 20 };

/**
 * An OpenAI-compatible `/v1/chat/completions` server; `url` is its base URL (…/v1). `port`: the
 * port to take if it is free (else any), for a URL that goes into a synthesized stack's registry.
 */
export function startOpenAiStub(brain: Brain, options: { port?: number } = {}): Promise<ModelStub> {
  let n = 0;
  return start(brain, '/v1', options.port ?? 0, async (req, body, stub) => {
    if (req.url !== '/v1/chat/completions') return { status: 404, body: { error: { message: `no route ${req.url}` } } };
    const messages = (body.messages ?? []) as { role: string; content?: unknown; tool_calls?: { id: string; function: { name: string } }[]; tool_call_id?: string }[];
    const names = new Map<string, string>();
    for (const m of messages) for (const c of m.tool_calls ?? []) names.set(c.id, c.function.name);
    const lastUser = messages.map((m) => m.role).lastIndexOf('user');
    const view: ConversationView = {
      agent: agentOf(String(messages[0]?.content ?? '')),
      system: String(messages[0]?.content ?? ''),
      users: messages.filter((m) => m.role === 'user').map((m) => String(m.content)),
      results: messages
        .slice(lastUser + 1)
        .filter((m) => m.role === 'tool')
        .map((m) => ({ name: names.get(m.tool_call_id ?? '') ?? '?', text: String(m.content), isError: false })),
      offered: ((body.tools ?? []) as { function: { name: string } }[]).map((t) => t.function.name),
      choice: typeof body.tool_choice === 'string' ? body.tool_choice : undefined,
      body,
    };
    stub.requests.push(view);
    const decision = await stub.brain(view);
    if ('status' in decision) return { status: decision.status, body: { error: { message: decision.error } } };
    const message =
      'text' in decision
        ? { role: 'assistant', content: decision.text }
        : {
            role: 'assistant',
            content: null,
            tool_calls: decision.calls.map((c) => ({
              id: `call_${++n}`,
              type: 'function',
              function: { name: c.name, arguments: c.rawArgs ?? JSON.stringify(c.args) },
            })),
          };
    return {
      status: 200,
      body: {
        id: `chatcmpl-${n}`,
        object: 'chat.completion',
        model: String(body.model),
        choices: [{ index: 0, message, finish_reason: 'text' in decision ? 'stop' : 'tool_calls' }],
        usage: { prompt_tokens: USAGE.input, completion_tokens: USAGE.output, total_tokens: USAGE.input + USAGE.output },
      },
    };
  });
}

/**
 * A Bedrock Converse server (`POST /model/{modelId}/converse`); point a client's `endpoint` at `url`.
 * HTTP/2 without TLS: the Bedrock runtime client speaks HTTP/2 only.
 */
export function startConverseStub(brain: Brain): Promise<ModelStub> {
  let n = 0;
  return start(brain, '', 0, async (req, body, stub) => {
    if (!/^\/model\/[^/]+\/converse$/.test(req.url ?? '')) return { status: 404, body: { message: `no route ${req.url}` } };
    type Block = { text?: string; toolUse?: { toolUseId: string; name: string }; toolResult?: { toolUseId: string; content: { text?: string }[]; status?: string } };
    const messages = (body.messages ?? []) as { role: string; content: Block[] }[];
    const names = new Map<string, string>();
    for (const m of messages) for (const b of m.content) if (b.toolUse) names.set(b.toolUse.toolUseId, b.toolUse.name);
    const system = ((body.system ?? []) as { text: string }[]).map((s) => s.text).join('\n');
    const userTexts = messages.filter((m) => m.role === 'user' && m.content.some((b) => b.text !== undefined));
    const lastUserText = messages.lastIndexOf(userTexts.at(-1)!);
    const toolConfig = body.toolConfig as { tools?: { toolSpec: { name: string } }[]; toolChoice?: Record<string, unknown> } | undefined;
    const view: ConversationView = {
      agent: agentOf(system),
      system,
      users: userTexts.map((m) => m.content.map((b) => b.text ?? '').join('\n\n')),
      results: messages
        .slice(lastUserText + 1)
        .flatMap((m) => m.content.filter((b) => b.toolResult))
        .map((b) => ({
          name: names.get(b.toolResult!.toolUseId) ?? '?',
          text: b.toolResult!.content.map((c) => c.text ?? '').join(''),
          isError: b.toolResult!.status === 'error',
        })),
      offered: (toolConfig?.tools ?? []).map((t) => t.toolSpec.name),
      choice: toolConfig?.toolChoice ? Object.keys(toolConfig.toolChoice)[0] : undefined,
      body,
    };
    stub.requests.push(view);
    const decision = await stub.brain(view);
    if ('status' in decision) {
      // As the service answers: the error's name in x-amzn-ErrorType (with its namespace after a
      // colon), the message in the body.
      const errorType = `${decision.errorType ?? 'ValidationException'}:http://internal.amazon.com/coral/com.amazon.bedrock/`;
      return { status: decision.status, body: { message: decision.error }, headers: { 'x-amzn-errortype': errorType, 'x-amzn-requestid': `stub-${++n}` } };
    }
    const content =
      'text' in decision
        ? [{ text: decision.text }]
        : decision.calls.map((c) => ({ toolUse: { toolUseId: `tooluse_${++n}`, name: c.name, input: c.args } }));
    return {
      status: 200,
      body: {
        output: { message: { role: 'assistant', content } },
        stopReason: 'text' in decision ? 'end_turn' : 'tool_use',
        usage: { inputTokens: USAGE.input, outputTokens: USAGE.output, totalTokens: USAGE.input + USAGE.output },
        metrics: { latencyMs: 1 },
      },
    };
  });
}

export const STUB_USAGE = USAGE;

function agentOf(system: string): string {
  return /You are the agent "([^"]+)"/.exec(system)?.[1] ?? '(unknown)';
}

type Handler = (
  req: IncomingMessage | Http2ServerRequest,
  body: Record<string, unknown>,
  stub: ModelStub,
) => Promise<{ status: number; body: unknown; headers?: Record<string, string> }>;

async function start(brain: Brain, base: string, port: number, handle: Handler, http2 = base === ''): Promise<ModelStub> {
  const stub = { requests: [] as ConversationView[], brain } as ModelStub;
  const onRequest = (req: IncomingMessage | Http2ServerRequest, res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      void (async () => {
        let answer: { status: number; body: unknown; headers?: Record<string, string> };
        try {
          answer = await handle(req, JSON.parse(raw || '{}') as Record<string, unknown>, stub);
        } catch (error) {
          answer = { status: 500, body: { error: { message: String(error) } } };
        }
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end(JSON.stringify(answer.body));
      })();
    });
  };
  const sessions = new Set<Http2Session>();
  const server = http2 ? createH2Server(onRequest) : createServer(onRequest);
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  const listen = (on: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(on, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(port).catch((error: NodeJS.ErrnoException) => {
    if (port === 0 || error.code !== 'EADDRINUSE') throw error;
    return listen(0);
  });
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${base}`;
  stub.close = async () => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return stub;
}

/**
 * `http` agents: POST the step as JSON to the agent's URL; the response body is the agent
 * response. A per-call timeout, and retries with backoff on 429, 5xx and network errors (transport-call.ts).
 *
 * What a URL or a server can do to us is bounded: the body is read as a stream and the call
 * fails once it passes `maxResponseBytes` (default 4 MiB), so a huge body never sits in memory;
 * redirects are followed only within the agent URL's origin (scheme, host and port); and every
 * error shows the URL without its credentials and query string (where keys tend to live), so
 * neither the branch error, the run error nor the lifecycle events can leak them.
 */
import { callWithin, isTransientStatus, requestBody, retryAfterMs, withTransportRetries } from './transport-call';
import type { HttpAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, AgentTransportError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply, ValueLinks } from '../../core/ports';

export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Same-origin redirects followed per call, at most. */
export const MAX_REDIRECTS = 5;

export interface HttpInvokerOptions {
  fetch?: typeof fetch;
  /** Base delay of the exponential backoff (ms). */
  backoffMs?: number;
  /** Default body cap for agents that set no `maxResponseBytes`. */
  maxResponseBytes?: number;
  /** Where a large request's values are passed by URL (core/agent-request.ts); without it every value goes inline. */
  links?: ValueLinks;
}

export class HttpInvoker implements AgentInvoker<HttpAgentDefinition> {
  private readonly fetch: typeof fetch;
  private readonly backoffMs: number;
  private readonly maxResponseBytes: number;
  private readonly links: ValueLinks | undefined;

  constructor(options: HttpInvokerOptions = {}) {
    this.links = options.links;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.backoffMs = options.backoffMs ?? 200;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  async invoke(call: AgentInvocation<HttpAgentDefinition>): Promise<AgentReply> {
    const def = call.definition;
    const shown = redactUrl(def.url);
    const redact = (text: string) => redactText(text, def.url);
    const timeoutMs = def.timeoutMs ?? 30_000;
    const retries = def.retries ?? 2;
    const maxBytes = def.maxResponseBytes ?? this.maxResponseBytes;
    const body = await requestBody(call, this.links);
    return withTransportRetries({ attempts: retries + 1, baseMs: this.backoffMs, maxMs: 10_000, signal: call.signal }, async () => {
      const { status, retryAfter, text } = await callWithin(call, timeoutMs, shown, async (signal) => {
        try {
          const { url, headers } = withBasicAuth(def.url, { 'content-type': 'application/json', ...def.headers });
          const response = await this.post(call.agentName, url, headers, body, signal);
          const text = await readCappedText(response, maxBytes, () => `the response of ${shown} is over maxResponseBytes (${maxBytes} bytes)`, call.agentName);
          return { status: response.status, retryAfter: response.headers.get('retry-after'), text };
        } catch (error) {
          if (error instanceof AgentInvocationError || signal.aborted) throw error;
          // No `cause`: a fetch error can carry the full URL.
          throw new AgentTransportError(call.agentName, `request to ${shown} failed: ${redact(describeFetchError(error))}`);
        }
      });
      if (isTransientStatus(status)) {
        throw new AgentTransportError(call.agentName, `HTTP ${status} from ${shown}: ${redact(text.slice(0, 200))}`, { retryAfterMs: retryAfterMs(retryAfter) });
      }
      if (status < 200 || status >= 300) throw new AgentInvocationError(call.agentName, `HTTP ${status} from ${shown}: ${redact(text.slice(0, 200))}`);
      return { response: parseBody(text) };
    });
  }

  /** POST, following redirects only within the URL's origin (a 307/308 keeps the method and body). */
  private async post(agent: string, url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<Response> {
    const origin = new URL(url).origin;
    let target = url;
    let method = 'POST';
    for (let hop = 0; ; hop++) {
      const response = await this.fetch(target, {
        method,
        headers,
        ...(method === 'POST' ? { body } : {}),
        signal,
        redirect: 'manual',
      });
      if (response.status < 300 || response.status >= 400 || response.status === 304) return response;
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) {
        throw new AgentInvocationError(agent, `HTTP ${response.status} from ${redactUrl(target)} without a Location to follow`);
      }
      const next = new URL(location, target);
      if (next.origin !== origin) {
        throw new AgentInvocationError(
          agent,
          `${redactUrl(target)} redirected to another origin (${next.origin}); http agents follow redirects only within ${origin}`,
        );
      }
      if (hop + 1 > MAX_REDIRECTS) throw new AgentInvocationError(agent, `more than ${MAX_REDIRECTS} redirects from ${redactUrl(url)}`);
      // As fetch does: 303 (and 301/302 after a POST) continue as GET without the body.
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) method = 'GET';
      target = next.href;
    }
  }
}

/** fetch refuses URLs with credentials: `user:password@` becomes an Authorization: Basic header. */
function withBasicAuth(url: string, headers: Record<string, string>): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url, headers };
  const credentials = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = '';
  u.password = '';
  const hasAuth = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  return { url: u.href, headers: hasAuth ? headers : { ...headers, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } };
}

/**
 * Reads a body as text, failing once more than `maxBytes` arrived (or a Content-Length says it
 * will): the stream is cancelled there, so at most `maxBytes` plus one chunk is ever held.
 */
export async function readCappedText(response: Response, maxBytes: number, overMessage: () => string, agent: string): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new AgentInvocationError(agent, `${overMessage()}: Content-Length ${declared}`);
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let received = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
    if (received > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new AgentInvocationError(agent, overMessage());
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

/** The URL as it may be shown: no user, password, query string or fragment. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const hidden = u.username || u.password ? '***@' : '';
    const query = u.search ? '?…' : '';
    return `${u.protocol}//${hidden}${u.host}${u.pathname}${query}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** Replaces the URL (as written and as parsed) and its query values in `text` with the redacted form. */
export function redactText(text: string, url: string): string {
  let out = text;
  const secrets = new Set<string>([url]);
  try {
    const u = new URL(url);
    secrets.add(u.href);
    if (u.search.length > 1) secrets.add(u.search.slice(1));
    for (const value of u.searchParams.values()) if (value.length >= 4) secrets.add(value);
    if (u.password) secrets.add(u.password);
    if (u.username) secrets.add(u.username);
  } catch {
    // an invalid URL has nothing more to hide than itself
  }
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret) out = out.split(secret).join(secret === url || secret.includes('://') ? redactUrl(url) : '***');
  }
  return out;
}

function describeFetchError(error: unknown): string {
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e.message ?? 'fetch failed'} (${cause})` : (e?.message ?? String(error));
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // the protocol parser reads fenced or embedded JSON out of text
  }
}

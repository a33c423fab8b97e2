/**
 * `http` agents: POST the step as JSON to the agent's URL; the response body is the agent
 * response. A per-call timeout, and retries with backoff on 5xx and network errors.
 */
import { again, withRetries } from '../retry';
import { AgentInvocationError, AgentTimeoutError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

export interface HttpInvokerOptions {
  fetch?: typeof fetch;
  /** Base delay of the exponential backoff (ms). */
  backoffMs?: number;
}

export class HttpInvoker implements AgentInvoker {
  private readonly fetch: typeof fetch;
  private readonly backoffMs: number;

  constructor(options: HttpInvokerOptions = {}) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.backoffMs = options.backoffMs ?? 200;
  }

  async invoke(call: AgentInvocation): Promise<AgentReply> {
    const def = call.definition as { url?: string; timeoutMs?: number; retries?: number; headers?: Record<string, string> };
    if (!def.url) throw new AgentInvocationError(call.agentName, `http agent ${call.agentName} has no url`);
    const timeoutMs = def.timeoutMs ?? 30_000;
    const retries = def.retries ?? 2;
    const body = JSON.stringify({
      agent: call.agentName,
      input: call.input ?? null,
      memory: call.memory,
      allowed: call.allowed,
      branchId: call.branchId,
      runId: call.runId,
      team: call.team,
      step: call.step,
    });
    return withRetries({ attempts: retries + 1, baseMs: this.backoffMs, maxMs: 10_000, signal: call.signal }, async (_attempt, last) => {
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
      let failure: AgentInvocationError;
      try {
        const response = await this.fetch(def.url!, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...def.headers },
          body,
          signal,
        });
        const text = await response.text();
        if (response.status >= 500) {
          failure = new AgentInvocationError(call.agentName, `HTTP ${response.status} from ${def.url}: ${text.slice(0, 200)}`);
        } else if (!response.ok) {
          throw new AgentInvocationError(call.agentName, `HTTP ${response.status} from ${def.url}: ${text.slice(0, 200)}`);
        } else {
          return { response: parseBody(text) };
        }
      } catch (error) {
        if (error instanceof AgentInvocationError) throw error;
        if (call.signal?.aborted) throw new AgentInvocationError(call.agentName, 'aborted: the branch ended', { cause: error });
        failure = timeout.aborted
          ? new AgentTimeoutError(call.agentName, `no answer from ${def.url} within ${timeoutMs} ms`, { cause: error })
          : new AgentInvocationError(call.agentName, `request to ${def.url} failed: ${(error as Error).message}`, { cause: error });
      }
      if (last) throw failure;
      return again();
    });
  }
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // the protocol parser reads fenced or embedded JSON out of text
  }
}

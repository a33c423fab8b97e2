/**
 * `http` agents: POST the step as JSON to the agent's URL; the response body is the agent
 * response. A per-call timeout, and retries with backoff on 5xx and network errors.
 */
import { abortableSleep, backoffDelay } from './backoff';
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
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await abortableSleep(backoffDelay(attempt, this.backoffMs, 10_000), call.signal);
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
      try {
        const response = await this.fetch(def.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...def.headers },
          body,
          signal,
        });
        const text = await response.text();
        if (response.status >= 500) {
          lastError = new AgentInvocationError(call.agentName, `HTTP ${response.status} from ${def.url}: ${text.slice(0, 200)}`);
          continue;
        }
        if (!response.ok) {
          throw new AgentInvocationError(call.agentName, `HTTP ${response.status} from ${def.url}: ${text.slice(0, 200)}`);
        }
        return { response: parseBody(text) };
      } catch (error) {
        if (error instanceof AgentInvocationError) throw error;
        if (call.signal?.aborted) throw new AgentInvocationError(call.agentName, 'aborted: the branch ended', { cause: error });
        if (timeout.aborted) {
          lastError = new AgentTimeoutError(call.agentName, `no answer from ${def.url} within ${timeoutMs} ms`, { cause: error });
        } else {
          lastError = new AgentInvocationError(call.agentName, `request to ${def.url} failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
    }
    throw lastError;
  }
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // the protocol parser reads fenced or embedded JSON out of text
  }
}

/**
 * `lambda` agents: invoke a function by name or ARN with the step as its JSON payload, within a
 * timeout (the definition's `timeoutMs`, 60 s by default; the run's agentTimeoutSeconds bounds both).
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { LambdaAgentDefinition } from '../../core/agent-kinds';
import { AgentInvocationError, AgentTransportError, TransientError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply, ValueLinks } from '../../core/ports';
import { isTransientAwsError, sdkError } from '../aws-errors';
import { callWithin, requestBody } from './transport-call';

/** A lambda agent's timeout when its definition gives none. */
export const DEFAULT_LAMBDA_AGENT_TIMEOUT_MS = 60_000;

export class LambdaInvoker implements AgentInvoker<LambdaAgentDefinition> {
  /** `links`: where a large request's values are passed by URL (core/agent-request.ts: Lambda takes at most 6 MB). */
  constructor(private readonly options: { client: LambdaClient; timeoutMs?: number; links?: ValueLinks }) {}

  async invoke(call: AgentInvocation<LambdaAgentDefinition>): Promise<AgentReply> {
    const { functionName } = call.definition;
    const payload = await requestBody(call, this.options.links);
    const timeoutMs = call.definition.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_LAMBDA_AGENT_TIMEOUT_MS;
    // One attempt: a transient failure is the step's to retry (its message comes back with a backoff).
    const result = await callWithin(call, timeoutMs, `lambda agent ${functionName}`, async (signal) => {
      try {
        return await this.options.client.send(new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(payload) }), {
          abortSignal: signal as never,
        });
      } catch (error) {
        if (signal.aborted) throw error;
        const e = sdkError(error);
        if (isTransientAwsError(error)) throw new TransientError(`lambda agent ${functionName} could not be invoked: ${e.name}`, { cause: error });
        throw new AgentTransportError(call.agentName, `invoking ${functionName} failed: ${e.name ?? error}`, { cause: error });
      }
    });
    const text = result.Payload ? new TextDecoder().decode(result.Payload) : 'null';
    if (result.FunctionError) {
      throw new AgentInvocationError(call.agentName, `${functionName} raised ${result.FunctionError}: ${text.slice(0, 300)}`);
    }
    try {
      return { response: JSON.parse(text) };
    } catch {
      return { response: text };
    }
  }
}

/** `lambda` agents: invoke a function by name or ARN with the step as its JSON payload. */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { AgentInvocationError, TransientError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

export class LambdaInvoker implements AgentInvoker {
  constructor(private readonly options: { client: LambdaClient }) {}

  async invoke(call: AgentInvocation): Promise<AgentReply> {
    const functionName = call.definition.functionName as string | undefined;
    if (!functionName) throw new AgentInvocationError(call.agentName, `lambda agent ${call.agentName} has no functionName`);
    const payload = {
      agent: call.agentName,
      input: call.input ?? null,
      memory: call.memory,
      allowed: call.allowed,
      branchId: call.branchId,
      runId: call.runId,
      team: call.team,
      step: call.step,
    };
    let result;
    try {
      result = await this.options.client.send(
        new InvokeCommand({ FunctionName: functionName, Payload: new TextEncoder().encode(JSON.stringify(payload)) }),
        { abortSignal: call.signal as never },
      );
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode ?? 0;
      if (e.name === 'TooManyRequestsException' || status >= 500) {
        throw new TransientError(`lambda agent ${functionName} could not be invoked: ${e.name}`, { cause: error });
      }
      throw new AgentInvocationError(call.agentName, `invoking ${functionName} failed: ${e.name ?? error}`, { cause: error });
    }
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

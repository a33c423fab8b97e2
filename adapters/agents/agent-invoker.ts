/** Routes each agent call to the invoker of its `kind` (script, http, lambda, bedrock, openai). */
import { AgentInvocationError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

export class KindRouter implements AgentInvoker {
  constructor(private readonly kinds: Record<string, AgentInvoker>) {}

  invoke(call: AgentInvocation): Promise<AgentReply> {
    const invoker = this.kinds[call.definition.kind];
    if (!invoker) {
      const known = Object.keys(this.kinds).join(', ');
      return Promise.reject(
        new AgentInvocationError(call.agentName, `agent kind "${call.definition.kind}" is not available here (known: ${known})`),
      );
    }
    return invoker.invoke(call);
  }
}

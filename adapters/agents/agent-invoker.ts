/** Routes each agent call to the invoker of its `kind` (script, http, lambda, bedrock, openai, module). */
import type { AgentKind, AgentOfKind } from '../../core/agent-kinds';
import { AgentInvocationError } from '../../core/errors';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';

/** The invokers of a runtime, each taking the definitions of its own kind. */
export type KindInvokers = { [K in AgentKind]?: AgentInvoker<AgentOfKind<K>> };

export class KindRouter implements AgentInvoker {
  constructor(private readonly kinds: KindInvokers) {}

  invoke(call: AgentInvocation): Promise<AgentReply> {
    // Each kind's invoker gets only calls whose definition is of its kind (the key it is under).
    const invoker: AgentInvoker | undefined = this.kinds[call.definition.kind];
    if (!invoker) {
      const known = Object.keys(this.kinds).join(', ');
      return Promise.reject(
        new AgentInvocationError(call.agentName, `agent kind "${call.definition.kind}" is not available here (known: ${known})`),
      );
    }
    return invoker.invoke(call);
  }
}

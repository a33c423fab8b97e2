/**
 * Module agents for examples/module-agents.yaml. Each export is an async function that gets
 * `{ agent, input, memory, branch, signal, reportUsage }` and returns an agent response (an
 * object or a string), exactly what an http or LLM agent would answer.
 */
import type { ModuleAgentContext } from '../adapters/agents/module-invoker';

const PARTS = ['transport', 'lodging', 'sights'];

/** First call: spawn one Worker per part. Second call (resumed with their results): answer. */
export async function planner({ input, memory }: ModuleAgentContext) {
  const calledBefore = memory.some((m) => m.role === 'assistant' && m.agent === 'Planner');
  if (!calledBefore) {
    return {
      next_action: 'parallel_invoke',
      branches: PARTS.map((part) => ({ agent: 'Worker', input: { part, goal: input } })),
    };
  }
  // Resumed: the input is the fan-in of the workers' results (default aggregator).
  return { next_action: 'final_response', content: { plan: input } };
}

/** Works one part; honours `signal` (cancel, timeout) and reports what it "spent". */
export async function worker({ input, branch, signal, reportUsage }: ModuleAgentContext) {
  const { part, goal } = input as { part: string; goal: string };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, 50);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    });
  });
  reportUsage({ inputTokens: goal.length, outputTokens: part.length });
  return { next_action: 'final_response', content: `${part}: done (branch ${branch.id}, depth ${branch.depth})` };
}

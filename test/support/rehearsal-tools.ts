/**
 * A module tool of the rehearsal tools test's registry: bundled into the step worker at synth
 * (the team config's agents name it), it runs inside the deployed function.
 */
import type { ModuleToolContext } from '../../adapters/tools/tool-box';

/** A string found in the step worker's bundle, and only there. */
export const BUNDLE_MARK = 'rehearsal-bundled-fact-3f9c';

export function lookupFact(args: unknown, { agent, branch }: ModuleToolContext): { fact: string; agent: string; runId: string } {
  const { topic } = args as { topic: string };
  return { fact: `${BUNDLE_MARK}: ${topic}`, agent, runId: branch.runId };
}

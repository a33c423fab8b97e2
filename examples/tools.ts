/**
 * Module tools for examples/tools.yaml. A module tool is an async function exported by a file;
 * it gets the arguments the model sent and `{ agent, branch, signal }`, and what it returns (an
 * object or a string) is what the model reads back.
 */
import type { ModuleToolContext } from '../adapters/tools/tool-box';

/** Running costs and lifetimes by heat source (illustrative figures, not advice). */
const FACTS: Record<string, { topic: string; fact: string }> = {
  'running cost': { topic: 'running cost', fact: 'A heat pump delivers about 3 kWh of heat per kWh of electricity; a gas boiler about 0.9 kWh per kWh of gas.' },
  installation: { topic: 'installation', fact: 'Installing a heat pump costs about 2 to 3 times as much as a new gas boiler.' },
  lifetime: { topic: 'lifetime', fact: 'Heat pumps last about 15 to 20 years; gas boilers about 10 to 15.' },
};

export async function lookupFact(args: unknown, { signal }: ModuleToolContext) {
  const topic = String((args as { topic?: unknown } | null)?.topic ?? '').toLowerCase();
  signal.throwIfAborted();
  const hit = Object.values(FACTS).find((f) => topic.includes(f.topic));
  return hit ?? { topic, fact: 'no figure on file for this topic', known: Object.keys(FACTS) };
}

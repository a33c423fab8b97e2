/**
 * Module tools for the tool tests. They run in the module host's worker thread, like any module
 * tool: they tell the test what happens over HTTP, not through shared memory.
 */
import type { ModuleToolContext } from '../../adapters/tools/tool-box';

/** Tells `url` that it started, then waits until its signal aborts and tells `url` that too. */
export function slow(args: unknown, { signal }: ModuleToolContext): Promise<never> {
  const { url } = args as { url: string };
  // Listening before telling: the abort may come before the answer to the first request does.
  const aborted = new Promise<never>((_resolve, reject) => {
    signal.addEventListener('abort', () => void fetch(`${url}?event=aborted`).finally(() => reject(new Error('aborted'))), { once: true });
  });
  void fetch(`${url}?event=started`);
  return aborted;
}

export function add(args: unknown): { sum: number } {
  const { a, b } = args as { a: number; b: number };
  return { sum: a + b };
}

/**
 * `record` (idempotent) and `charge` (not) write a line per call to $TOOL_LOG. With
 * $TOOL_HANG=1, a call with `n: 2` tells $TOOL_SIGNAL_URL that it started and never ends (the
 * test then kills the process).
 */
async function logged(kind: string, args: unknown, runId: string): Promise<{ done: string }> {
  const { appendFileSync } = await import('node:fs');
  const n = (args as { n?: number } | null)?.n;
  appendFileSync(process.env.TOOL_LOG!, `${kind} ${n}\n`);
  if (n === 2 && process.env.TOOL_HANG === '1') {
    await fetch(`${process.env.TOOL_SIGNAL_URL}?run=${runId}&tool=${kind}`);
    await new Promise(() => {});
  }
  return { done: `${kind} ${n}` };
}

export const record = (args: unknown, { branch }: ModuleToolContext) => logged('record', args, branch.runId);
export const charge = (args: unknown, { branch }: ModuleToolContext) => logged('charge', args, branch.runId);

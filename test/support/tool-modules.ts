/**
 * Module tools for the tool tests. `slow` waits until its signal aborts, telling the test
 * through `globalThis.toolTest` (the tool is loaded by the runtime's own import).
 */
import type { ModuleToolContext } from '../../adapters/tools/tool-box';

interface ToolTestState {
  started: number;
  aborted: number;
  onStart?: () => void;
}

export function slow(_args: unknown, { signal }: ModuleToolContext): Promise<never> {
  const state = (globalThis as { toolTest?: ToolTestState }).toolTest!;
  state.started++;
  state.onStart?.();
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => {
      state.aborted++;
      reject(new Error('aborted'));
    });
  });
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

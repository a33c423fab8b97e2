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

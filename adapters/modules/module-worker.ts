/**
 * The worker thread side of adapters/modules/module-host.ts: loads one user module (an agent's,
 * the hooks', a tool's file) and runs its exports when asked. Everything in and out crosses a
 * structured clone. What the user's code does on its own — a rejection nobody handles, a timer
 * that throws, `process.exit` — is caught here and told to the host, naming the call it came
 * from (an AsyncLocalStorage follows each call through its timers and promises).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describeThrown } from '../../core/errors';
import type { HostMessage, WorkerMessage } from './module-host';

const port = parentPort!;
const file = (workerData as { file: string }).file;
const calls = new AsyncLocalStorage<number>();
const controllers = new Map<number, AbortController>();

const post = (message: WorkerMessage) => port.postMessage(message);

process.on('uncaughtException', (error) => post({ type: 'stray', id: calls.getStore(), kind: 'uncaught exception', error: describeThrown(error) }));
process.on('unhandledRejection', (reason) => post({ type: 'stray', id: calls.getStore(), kind: 'unhandled rejection', error: describeThrown(reason) }));
// process.exit in a worker ends this thread only; the host is told which call did it first.
const exit = process.exit.bind(process);
process.exit = ((code?: number | string | null) => {
  post({ type: 'exit', id: calls.getStore(), code: Number(code ?? process.exitCode ?? 0) || 0 });
  return exit(code as number);
}) as typeof process.exit;

let loaded: Promise<Record<string, unknown>> | undefined;
function load(): Promise<Record<string, unknown>> {
  loaded ??= (import(pathToFileURL(file).href) as Promise<Record<string, unknown>>).catch((error) => {
    throw new Error(`cannot load module ${file}: ${loadFailure(error)}`, { cause: error });
  });
  return loaded;
}

/**
 * Why the file did not load, in the user's terms: a missing file is "no such file", and Node's
 * "imported from <this file>" (the spawner's own path, not the user's) is left out.
 */
function loadFailure(error: unknown): string {
  const message = describeThrown(error);
  if ((error as NodeJS.ErrnoException)?.code === 'ERR_MODULE_NOT_FOUND' && message.includes(pathToFileURL(file).href)) return 'no such file';
  return message.replace(` imported from ${fileURLToPath(import.meta.url)}`, '');
}

/** The named export; a CommonJS-compiled file's exports sit under `default`. */
function exported(module: Record<string, unknown>, name: string): unknown {
  const direct = module[name];
  if (typeof direct === 'function') return direct;
  const inner = module.default as Record<string, unknown> | null | undefined;
  if (inner && typeof inner === 'object' && typeof inner[name] === 'function') return inner[name];
  if (name === 'default' && direct && typeof direct === 'object' && typeof (direct as Record<string, unknown>).default === 'function') {
    return (direct as Record<string, unknown>).default;
  }
  return direct;
}

function functionNames(module: Record<string, unknown>): string[] {
  const names = Object.keys(module).filter((k) => typeof module[k] === 'function');
  const inner = module.default;
  if (inner && typeof inner === 'object') names.push(...Object.keys(inner).filter((k) => typeof (inner as Record<string, unknown>)[k] === 'function'));
  return [...new Set(names)];
}

port.on('message', (message: HostMessage) => {
  switch (message.type) {
    case 'load':
      load().then(
        (module) => post({ type: 'loaded', id: message.id, functions: functionNames(module) }),
        (error) => post({ type: 'error', id: message.id, error: describeThrown(error) }),
      );
      return;
    case 'abort':
      controllers.get(message.id)?.abort();
      // Answered from the event loop: a thread stuck in a loop never answers (the host ends it).
      post({ type: 'aborted', id: message.id });
      return;
    case 'call':
      void calls.run(message.id, () => call(message));
  }
});

async function call(message: Extract<HostMessage, { type: 'call' }>): Promise<void> {
  const controller = new AbortController();
  controllers.set(message.id, controller);
  try {
    const module = await load();
    const fn = exported(module, message.export);
    if (typeof fn !== 'function') {
      throw new Error(`module ${file} has no function export "${message.export}" (function exports: ${functionNames(module).join(', ') || 'none'})`);
    }
    // Arguments come back to life: a signal where the caller gave one, callbacks that post back.
    const args = message.args.map((arg, i) => {
      const marks = message.marks[i];
      if (!marks) return arg;
      const out = { ...(arg as Record<string, unknown>) };
      for (const key of marks.signals) out[key] = controller.signal;
      for (const key of marks.callbacks) out[key] = (...values: unknown[]) => post({ type: 'callback', id: message.id, key, args: values });
      return out;
    });
    const value = await fn(...args);
    try {
      post({ type: 'result', id: message.id, value });
    } catch (error) {
      post({ type: 'error', id: message.id, error: `its answer cannot be passed on (${describeThrown(error)})` });
    }
  } catch (error) {
    post({ type: 'error', id: message.id, error: describeThrown(error), name: errorName(error) });
  } finally {
    controllers.delete(message.id);
  }
}

/** The thrown Error's name (a reporter may show it), if it is one. */
function errorName(error: unknown): string | undefined {
  try {
    return error instanceof Error && typeof error.name === 'string' ? error.name : undefined;
  } catch {
    return undefined;
  }
}

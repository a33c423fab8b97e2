/**
 * Runs the code a user brings (module agents, the hooks module, module tools) away from the
 * runtime: each module file gets a worker thread of its own, and every call crosses a structured
 * clone, so what the code does cannot reach the runtime or what it holds:
 * - it cannot change the runtime's objects (it gets copies, and so do we of its answers);
 * - a rejection nobody handles, or a timer that throws, fails the call it came from (the worker
 *   says which; one that belongs to no call is reported) instead of killing the process;
 * - `process.exit` ends the worker only: the call that made it fails, calls of other runs that
 *   were in the same worker fail as transient (their step is retried) and the next call starts
 *   a fresh worker;
 * - a call is abandoned the moment its signal aborts (cancel, deadline) or its timeout passes; a
 *   worker that does not take the abort within a grace period (stuck in a loop) is terminated.
 * The cost is a worker's start per file (tsx loads in it) and a clone each way per call
 * (docs/agents.md has the numbers).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describeThrown, ModuleCodeError, TransientError } from '../../core/errors';

/** Host → worker. */
export type HostMessage =
  | { type: 'load'; id: number }
  | { type: 'call'; id: number; export: string; args: unknown[]; marks: (ArgMarks | null)[] }
  | { type: 'abort'; id: number };

/** Worker → host. */
export type WorkerMessage =
  | { type: 'loaded'; id: number; functions: string[] }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: string; name?: string }
  | { type: 'callback'; id: number; key: string; args: unknown[] }
  | { type: 'aborted'; id: number }
  | { type: 'stray'; id: number | undefined; kind: string; error: string }
  | { type: 'exit'; id: number | undefined; code: number };

/** Keys of an object argument that are re-made in the worker: an AbortSignal, callbacks. */
interface ArgMarks {
  signals: string[];
  callbacks: string[];
}

export interface ModuleCallOptions {
  /** Aborts the call: it rejects with the signal's reason at once, and the worker is told. */
  signal?: AbortSignal;
  /** The call fails past this many milliseconds. */
  timeoutMs?: number;
}

export interface ModuleHostOptions {
  /** How long a worker may take to acknowledge an abort before it is terminated (default 1,000 ms). */
  abortGraceMs?: number;
  /** A misbehaviour that belongs to no call in flight (a stray rejection after its call answered). */
  onStray?(file: string, message: string): void;
}

const WORKER_ENTRY = pathToFileURL(join(dirname(new URL(import.meta.url).pathname), 'module-worker.ts')).href;
const TSX_API = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
// The worker registers tsx (TypeScript, like the CLI) and then loads its side of the protocol.
const BOOTSTRAP = `const { workerData } = require('node:worker_threads');
import(workerData.tsx).then((m) => { m.register(); return import(workerData.entry); });`;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  callbacks: Record<string, (...args: unknown[]) => void>;
  /** Set when the worker has not acknowledged this call's abort yet. */
  graceTimer?: NodeJS.Timeout;
}

class ModuleWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  /** Aborted calls still running in the worker, waiting for its acknowledgement. */
  private readonly aborting = new Map<number, NodeJS.Timeout>();
  private exitedBy?: { id: number | undefined; code: number };
  private nextId = 1;
  ended = false;

  constructor(
    readonly file: string,
    private readonly options: Required<Pick<ModuleHostOptions, 'abortGraceMs'>> & ModuleHostOptions,
    private readonly onEnd: () => void,
  ) {
    this.worker = new Worker(BOOTSTRAP, { eval: true, workerData: { file, entry: WORKER_ENTRY, tsx: TSX_API }, stdout: false, stderr: false });
    this.worker.unref();
    this.worker.on('message', (message: WorkerMessage) => this.onMessage(message));
    this.worker.on('error', (error) => this.end(`its worker failed: ${describeThrown(error)}`));
    this.worker.on('exit', (code) => this.end(`its worker ended (exit code ${code})`));
  }

  request(message: Omit<Extract<HostMessage, { type: 'load' | 'call' }>, 'id'>, callbacks: Pending['callbacks'], options: ModuleCallOptions): Promise<unknown> {
    if (this.ended) return Promise.reject(new TransientError(`the worker of ${this.file} has ended`));
    const id = this.nextId++;
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => this.abandon(id, signal!.reason);
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.pending.set(id, {
        resolve: (value) => (settle(), resolve(value)),
        reject: (error) => (settle(), reject(error)),
        callbacks,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => this.abandon(id, new ModuleCodeError(`did not return within ${timeoutMs} ms`)), timeoutMs);
      try {
        this.worker.postMessage({ ...message, id } as HostMessage);
      } catch (error) {
        // Not structured-clonable (a function deep inside, a class with private state): the caller's bad input.
        this.pending.get(id)?.reject(new ModuleCodeError(`its arguments cannot be passed on (${describeThrown(error)})`));
        this.pending.delete(id);
        return;
      }
      this.worker.ref();
    });
  }

  /** Stops waiting for a call; the worker must acknowledge the abort within the grace, or it is ended. */
  private abandon(id: number, reason: unknown): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    call.reject(reason);
    this.aborting.set(
      id,
      setTimeout(() => void this.terminate(), this.options.abortGraceMs),
    );
    this.worker.postMessage({ type: 'abort', id } satisfies HostMessage);
    this.idle();
  }

  private onMessage(message: WorkerMessage): void {
    if (message.type === 'aborted') {
      clearTimeout(this.aborting.get(message.id));
      this.aborting.delete(message.id);
      this.idle();
      return;
    }
    if (message.type === 'exit') {
      this.exitedBy = { id: message.id, code: message.code };
      return;
    }
    const call = message.id === undefined ? undefined : this.pending.get(message.id);
    switch (message.type) {
      case 'callback':
        try {
          call?.callbacks[message.key]?.(...message.args);
        } catch {
          // a callback's own failure is the caller's to report; the call goes on
        }
        return;
      case 'stray':
        if (!call) {
          this.options.onStray?.(this.file, `${message.kind}: ${message.error}`);
          return;
        }
        this.finish(message.id!, () => call.reject(new ModuleCodeError(`left an ${message.kind}: ${message.error}`)));
        return;
      case 'loaded':
        if (call) this.finish(message.id, () => call.resolve(message.functions));
        return;
      case 'result':
        if (call) this.finish(message.id, () => call.resolve(message.value));
        return;
      case 'error':
        if (call) this.finish(message.id, () => call.reject(new ModuleCodeError(message.error, { thrownName: message.name })));
        return;
    }
  }

  private finish(id: number, settle: () => void): void {
    this.pending.delete(id);
    settle();
    this.idle();
  }

  /** The worker keeps the process alive only while a call waits on it. */
  private idle(): void {
    if (this.pending.size === 0 && this.aborting.size === 0 && !this.ended) this.worker.unref();
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    for (const timer of this.aborting.values()) clearTimeout(timer);
    this.aborting.clear();
    const exit = this.exitedBy;
    for (const [id, call] of this.pending) {
      if (exit && exit.id === id) call.reject(new ModuleCodeError(`called process.exit(${exit.code})`));
      else call.reject(new TransientError(`the call was cut short: ${this.file}: ${exit ? `another call made process.exit(${exit.code})` : why}`));
    }
    this.pending.clear();
  }

  async terminate(): Promise<void> {
    this.end('its worker was stopped (stuck: it did not take an abort)');
    await this.worker.terminate();
  }
}

export class ModuleHost {
  private readonly workers = new Map<string, ModuleWorker>();
  private readonly options: Required<Pick<ModuleHostOptions, 'abortGraceMs'>> & ModuleHostOptions;

  constructor(options: ModuleHostOptions = {}) {
    this.options = {
      abortGraceMs: 1000,
      onStray: (file, message) => process.emitWarning(`${file}: ${message}`, 'ModuleWarning'),
      ...options,
    };
  }

  private workerFor(file: string): ModuleWorker {
    let worker = this.workers.get(file);
    if (!worker || worker.ended) {
      const started: ModuleWorker = new ModuleWorker(file, this.options, () => {
        if (this.workers.get(file) === started) this.workers.delete(file);
      });
      worker = started;
      this.workers.set(file, worker);
    }
    return worker;
  }

  /** Loads the file in its worker; resolves with the names of its function exports. */
  async functions(file: string): Promise<string[]> {
    return (await this.workerFor(file).request({ type: 'load' }, {}, {})) as string[];
  }

  /**
   * Calls an export of the file in its worker. Arguments and the answer are cloned; an object
   * argument's AbortSignal and function properties are re-made on the other side (a signal
   * aborted with this call's, callbacks that come back here).
   */
  call(file: string, exportName: string, args: unknown[], options: ModuleCallOptions = {}): Promise<unknown> {
    const marks: (ArgMarks | null)[] = [];
    const callbacks: Pending['callbacks'] = {};
    const sent = args.map((arg, i) => {
      if (!arg || typeof arg !== 'object' || Array.isArray(arg)) {
        marks.push(null);
        return arg;
      }
      const mark: ArgMarks = { signals: [], callbacks: [] };
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(arg)) {
        if (value instanceof AbortSignal) mark.signals.push(key);
        else if (typeof value === 'function') {
          mark.callbacks.push(key);
          callbacks[`${i}.${key}`] = value as (...a: unknown[]) => void;
        } else out[key] = value;
      }
      marks.push(mark.signals.length || mark.callbacks.length ? mark : null);
      return out;
    });
    const signal = options.signal ?? args.map((a) => Object.values((a as object) ?? {}).find((v) => v instanceof AbortSignal)).find(Boolean);
    const message = { type: 'call' as const, export: exportName, args: sent, marks };
    return this.workerFor(file).request(message, prefixed(callbacks, marks), { ...options, signal: signal as AbortSignal | undefined });
  }

  /** Ends every worker (a runtime closing). */
  async close(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The worker names a callback by its key; two arguments' callbacks of one name are told apart by index. */
function prefixed(callbacks: Pending['callbacks'], marks: (ArgMarks | null)[]): Pending['callbacks'] {
  const out: Pending['callbacks'] = {};
  marks.forEach((mark, i) => mark?.callbacks.forEach((key) => (out[key] = callbacks[`${i}.${key}`])));
  return out;
}

/** The process's one host: module agents, hooks and tools share its workers (one per file). */
export const moduleHost = new ModuleHost();

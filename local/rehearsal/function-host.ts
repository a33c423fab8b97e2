/**
 * A Lambda-like host for the template's functions: each function runs from its bundled asset
 * (cdk.out/asset.<hash>/index.mjs, what `cdk deploy` uploads) in warm containers — worker
 * threads with the function's own environment (from the template) and module state kept between
 * invocations — one invocation per container at a time, the function's Timeout enforced by
 * discarding the container, as Lambda does.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { jsonBytes } from '../../core/bounded-value';
import { AWS_QUOTAS } from './aws-quotas';
import { newTraceHeader } from './recursion';

export interface HostedFunction {
  logicalId: string;
  /** The function's physical name (what its ARN ends with). */
  name: string;
  arn: string;
  handlerFile: string;
  handlerName: string;
  environment: Record<string, string>;
  timeoutSeconds: number;
  memorySize: number;
  roleLogicalId: string;
  /** Containers at most (Lambda scales further; the rehearsal bounds it for one machine). */
  maxContainers: number;
  /**
   * The function's ReservedConcurrentExecutions: invocations in progress at most, the rest
   * throttled. Without it the function shares the account's unreserved concurrency (the pool).
   */
  reservedConcurrency?: number;
}

/**
 * The account's concurrency that no function reserved: the functions without reserved
 * concurrency share it; an invocation beyond it is throttled, as Lambda does.
 */
export class ConcurrencyPool {
  inUse = 0;
  /** Set once every function's reservation is known (the account's less what they reserve). */
  constructor(public limit: number) {}
}

/** Lambda refused the invocation: the function's or the account's concurrency is in use (TooManyRequestsException). */
export const THROTTLED = 'TooManyRequestsException';

/** What an invocation that failed looks like to the caller (Lambda's function error shape). */
export class FunctionError extends Error {
  constructor(
    readonly functionName: string,
    readonly errorType: string,
    errorMessage: string,
    readonly trace: string[] = [],
  ) {
    super(errorMessage);
    this.name = errorType;
  }
}

interface Container {
  worker: Worker;
  busy: boolean;
  dead: boolean;
  invocations: number;
}

interface ContainerUsage {
  busyMs: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

const CONTAINER_SCRIPT = fileURLToPath(new URL('./lambda-container.mjs', import.meta.url));
const LOG_LINES_KEPT = 200;

export class FunctionHost {
  private readonly containers: Container[] = [];
  private readonly waiting: { resolve: (c: Container) => void; reject: (error: Error) => void }[] = [];
  private closed = false;
  private nextId = 0;
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  /** The last lines each container wrote (Powertools logs); never printed unless asked. */
  readonly logs: string[] = [];
  readonly stats = { invocations: 0, errors: 0, timeouts: 0, coldStarts: 0, throttles: 0 };
  /**
   * What the invocations used of their containers (lambda-container.mjs): the most heap and
   * off-heap memory one container held after an invocation, and event loop busy time (CPU work)
   * against wall time, summed.
   */
  readonly usage = { peakHeapBytes: 0, peakExternalBytes: 0, busyMs: 0, wallMs: 0 };

  constructor(
    readonly fn: HostedFunction,
    private readonly options: { region: string; account: string; onLog?(fn: string, line: string): void; pool?: ConcurrencyPool },
  ) {}

  /**
   * A synchronous invocation. `traceHeader` is the invocation's `_X_AMZN_TRACE_ID` (an SQS event
   * source passes the chain's: recursion.ts); without one, a new chain starts.
   */
  async invoke(event: unknown, options: { traceHeader?: string } = {}): Promise<unknown> {
    if (this.closed) throw new FunctionError(this.fn.name, 'Lambda.ServiceException', 'the rehearsal is closing');
    const size = jsonBytes(event);
    if (size > AWS_QUOTAS.lambdaSyncPayloadBytes) {
      throw new FunctionError(this.fn.name, 'RequestEntityTooLargeException', `Request must be smaller than ${AWS_QUOTAS.lambdaSyncPayloadBytes} bytes for the InvokeFunction operation (got ${size})`);
    }
    // Concurrency is the invocations in progress (those waiting for one of the rehearsal's
    // containers too): past the reserved concurrency, or the account's unreserved pool, Lambda
    // throttles instead of running it.
    const reserved = this.fn.reservedConcurrency;
    const pool = reserved === undefined ? this.options.pool : undefined;
    if (reserved !== undefined && this.inFlight >= reserved) {
      this.stats.throttles++;
      throw new FunctionError(this.fn.name, THROTTLED, `Rate Exceeded. (ReservedFunctionConcurrentInvocationLimitExceeded: ${this.fn.name} reserves ${reserved})`);
    }
    if (pool && pool.inUse >= pool.limit) {
      this.stats.throttles++;
      throw new FunctionError(this.fn.name, THROTTLED, `Rate Exceeded. (ConcurrentInvocationLimitExceeded: the account's unreserved concurrency is ${pool.limit})`);
    }
    this.inFlight++;
    if (pool) pool.inUse++;
    try {
      return await this.invokeIn(event, options.traceHeader ?? newTraceHeader());
    } finally {
      if (pool) pool.inUse--;
      if (--this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Resolves when no invocation is running or waiting for a container. */
  idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Invocations running or waiting for a container now. */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  private async invokeIn(event: unknown, traceHeader: string): Promise<unknown> {
    const container = await this.acquire();
    this.stats.invocations++;
    container.invocations++;
    const id = ++this.nextId;
    const startedAt = Date.now();
    const deadline = startedAt + this.fn.timeoutSeconds * 1000;
    try {
      return await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.stats.timeouts++;
          container.dead = true;
          void container.worker.terminate();
          reject(new FunctionError(this.fn.name, 'Sandbox.Timedout', `Task timed out after ${this.fn.timeoutSeconds.toFixed(2)} seconds`));
        }, this.fn.timeoutSeconds * 1000);
        const onMessage = (message: { id: number; ok: boolean; result?: unknown; error?: { errorType: string; errorMessage: string; trace: string[] }; usage?: ContainerUsage }) => {
          if (message.id !== id) return;
          cleanup();
          if (message.usage) this.record(message.usage, Date.now() - startedAt);
          const bytes = message.ok ? jsonBytes(message.result) : 0;
          if (bytes > AWS_QUOTAS.lambdaSyncPayloadBytes) {
            this.stats.errors++;
            reject(new FunctionError(this.fn.name, 'Function.ResponseSizeTooLarge', `Response payload size (${bytes} bytes) exceeded maximum allowed payload size (${AWS_QUOTAS.lambdaSyncPayloadBytes} bytes).`));
          } else if (message.ok) resolve(message.result);
          else {
            this.stats.errors++;
            reject(new FunctionError(this.fn.name, message.error!.errorType, message.error!.errorMessage, message.error!.trace));
          }
        };
        const onExit = (code: number) => {
          cleanup();
          container.dead = true;
          reject(new FunctionError(this.fn.name, 'Runtime.ExitError', `the container exited (code ${code}) during the invocation`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          container.worker.off('message', onMessage);
          container.worker.off('exit', onExit);
        };
        container.worker.on('message', onMessage);
        container.worker.on('exit', onExit);
        container.worker.postMessage({ id, event, deadline, requestId: randomUUID(), traceHeader });
      });
    } finally {
      this.release(container);
    }
  }

  private record(usage: ContainerUsage, wallMs: number): void {
    this.usage.peakHeapBytes = Math.max(this.usage.peakHeapBytes, usage.heapTotal);
    this.usage.peakExternalBytes = Math.max(this.usage.peakExternalBytes, usage.external + usage.arrayBuffers);
    this.usage.busyMs += usage.busyMs;
    this.usage.wallMs += wallMs;
  }

  /**
   * Kills every container running an invocation now, as an out-of-memory kill or a crashed
   * runtime does: each of those invocations fails with Runtime.ExitError (an SQS event source
   * then leaves its whole batch to the visibility timeout). Answers how many were killed.
   */
  killBusyContainers(): number {
    const busy = this.containers.filter((c) => c.busy && !c.dead);
    for (const container of busy) void container.worker.terminate();
    return busy.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) {
      waiter.reject(new FunctionError(this.fn.name, 'Lambda.ServiceException', 'the rehearsal is closing'));
    }
    await Promise.all(this.containers.map((c) => c.worker.terminate()));
    this.containers.length = 0;
  }

  private async acquire(): Promise<Container> {
    const idle = this.containers.find((c) => !c.busy && !c.dead);
    if (idle) {
      idle.busy = true;
      return idle;
    }
    if (this.containers.filter((c) => !c.dead).length < this.fn.maxContainers) {
      const container = this.start();
      container.busy = true;
      return container;
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(container: Container): void {
    if (container.dead) {
      const index = this.containers.indexOf(container);
      if (index >= 0) this.containers.splice(index, 1);
      const next = this.closed ? undefined : this.waiting.shift();
      if (next) {
        const fresh = this.start();
        fresh.busy = true;
        next.resolve(fresh);
      }
      return;
    }
    const next = this.waiting.shift();
    if (next) next.resolve(container);
    else container.busy = false;
  }

  private start(): Container {
    this.stats.coldStarts++;
    const { fn } = this;
    const worker = new Worker(CONTAINER_SCRIPT, {
      env: fn.environment,
      workerData: {
        handlerFile: fn.handlerFile,
        handlerName: fn.handlerName,
        functionName: fn.name,
        memorySize: fn.memorySize,
        region: this.options.region,
        account: this.options.account,
      },
      stdout: true,
      stderr: true,
      execArgv: fn.environment.NODE_OPTIONS?.includes('--enable-source-maps') ? ['--enable-source-maps'] : [],
    });
    const container: Container = { worker, busy: false, dead: false, invocations: 0 };
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        this.logs.push(line);
        if (this.logs.length > LOG_LINES_KEPT) this.logs.shift();
        this.options.onLog?.(fn.name, line);
      }
    };
    worker.stdout.on('data', keep);
    worker.stderr.on('data', keep);
    worker.on('error', () => {
      container.dead = true;
    });
    worker.on('exit', () => {
      container.dead = true;
    });
    this.containers.push(container);
    return container;
  }
}

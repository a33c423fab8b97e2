/**
 * The embedded runtime: the real handlers (step-worker, fan-out tasks, api) wired to the
 * embedded engines (dynalite, fauxqs, aws-local-stepfunctions) in one process.
 */
import type { SQSEvent } from 'aws-lambda';
import { KindRouter } from '../adapters/agents/agent-invoker';
import { llmInvokers } from '../adapters/agents';
import { HttpInvoker } from '../adapters/agents/http-invoker';
import { ScriptInvoker } from '../adapters/agents/script-invoker';
import { LocalEventBus } from '../adapters/events/local-event-bus';
import { BranchAborts } from '../adapters/memory/branch-aborts';
import { AggregatorRegistry, type AggregatorFn } from '../core/aggregators';
import type { LifecycleEvent } from '../core/events';
import type { RunRecord } from '../core/model';
import type { AgentInvoker, StepMessage, StepQueue } from '../core/ports';
import type { AgentPolicy } from '../core/run-request';
import { cancelRun, startRun, type SpawnerDeps, type StartRunInput } from '../core/use-cases';
import { describeRun } from '../core/use-cases/queries';
import { createApiHandler } from '../functions/handlers/api';
import { createFanOutTaskHandlers } from '../functions/handlers/fan-out-tasks';
import { createStepWorkerHandler } from '../functions/handlers/step-worker';
import { createFaults, type ChaosOptions } from './chaos';
import { startEmbeddedEngines, type EmbeddedEngines } from './embedded-engines';

export interface LocalRuntimeOptions {
  team?: string;
  /** Keep the store and queues on disk here (resume after a crash); in memory otherwise. */
  dataDir?: string;
  chaos?: ChaosOptions;
  /** Extra agent kinds (e.g. bedrock, openai) next to script and http. */
  invokers?: Record<string, AgentInvoker>;
  aggregators?: Record<string, AggregatorFn>;
  /** Parallel queue pollers (each takes up to 10 messages at a time). */
  pollers?: number;
  /** Seconds before a message that was not acknowledged comes back. */
  visibilityTimeoutSeconds?: number;
  policy?: AgentPolicy;
}

export class LocalRuntime {
  readonly errors: unknown[] = [];
  private stopped = false;
  private readonly pollers: Promise<void>[] = [];
  private readonly waiters = new Map<string, ((run: RunRecord) => void)[]>();

  private constructor(
    readonly engines: EmbeddedEngines,
    readonly deps: SpawnerDeps,
    readonly bus: LocalEventBus,
    readonly team: string,
    readonly api: ReturnType<typeof createApiHandler>,
    private readonly worker: (event: SQSEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>,
    private readonly fanOut: { idle(): Promise<void>; activeExecutions(): number },
  ) {}

  static async start(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    const team = options.team ?? 'local';
    const engines = await startEmbeddedEngines({
      dataDir: options.dataDir,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 5,
    });
    const faults = createFaults(options.chaos);
    const aborts = new BranchAborts();
    const bus = new LocalEventBus();
    let queue: StepQueue = engines.queue;
    if (options.chaos?.duplicateDelivery) queue = duplicatingQueue(queue);
    const invoker = faults.wrapInvoker(
      new KindRouter({ script: new ScriptInvoker(), http: new HttpInvoker(), ...llmInvokers(), ...options.invokers }),
    );
    const deps: SpawnerDeps = {
      store: engines.store,
      queue,
      fanOut: undefined as never,
      events: bus,
      invoker,
      clock: { now: () => Date.now() },
      aggregators: new AggregatorRegistry(options.aggregators),
      faults,
      signalFor: (scope, branchId) => aborts.signalFor(scope, branchId),
      runCache: new Map(),
    };
    const tasks = createFanOutTaskHandlers(deps);
    const fanOut = engines.createFanOut(queue, tasks, (error) => runtime.errors.push(error));
    deps.fanOut = fanOut;
    const api = createApiHandler(deps, {
      policy: options.policy ?? { registry: {}, inline: 'any' },
      teamOf: (event) => event.headers?.['x-team'] ?? team,
    });
    const worker = createStepWorkerHandler(deps);
    const runtime = new LocalRuntime(engines, deps, bus, team, api, worker, fanOut);
    bus.subscribe((event) => {
      aborts.handle([event]);
      runtime.onEvent(event);
    });
    runtime.startPolling(options.pollers ?? 4);
    return runtime;
  }

  async startRun(input: Omit<StartRunInput, 'team'> & { team?: string }): Promise<string> {
    const { runId } = await startRun(this.deps, { ...input, team: input.team ?? this.team });
    return runId;
  }

  /** Resolves with the run once it is terminal (awaits its end event; no polling). */
  async waitForRun(runId: string, team = this.team): Promise<RunRecord> {
    const key = `${team}/${runId}`;
    const ended = new Promise<RunRecord>((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
    const current = await this.deps.store.getRun({ team, runId });
    if (current && current.status !== 'RUNNING') return current;
    return ended;
  }

  async describe(runId: string, team = this.team) {
    return describeRun(this.deps, { team, runId });
  }

  async cancel(runId: string, team = this.team): Promise<void> {
    await cancelRun(this.deps, { team, runId });
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.pollers);
    await this.engines.close();
  }

  /** True when no message is being handled and no fan-out execution is running. */
  async settle(): Promise<void> {
    await this.fanOut.idle();
  }

  private onEvent(event: LifecycleEvent): void {
    if (event.type !== 'RunCompleted' && event.type !== 'RunFailed' && event.type !== 'RunCancelled') return;
    const key = `${event.team}/${event.runId}`;
    const waiters = this.waiters.get(key);
    if (!waiters) return;
    this.waiters.delete(key);
    void this.deps.store.getRun({ team: event.team, runId: event.runId }).then((run) => {
      for (const resolve of waiters) resolve(run!);
    });
  }

  private startPolling(count: number): void {
    for (let i = 0; i < count; i++) this.pollers.push(this.poll());
  }

  /** Feeds step-worker with SQS-shaped events, as the Lambda event source mapping does. */
  private async poll(): Promise<void> {
    const consumer = this.engines.consumer;
    while (!this.stopped) {
      let records;
      try {
        records = await consumer.receive({ max: 10, waitSeconds: 1 });
      } catch (error) {
        if (!this.stopped) this.errors.push(error);
        continue;
      }
      if (records.length === 0 || this.stopped) continue;
      const response = await this.worker({ Records: records }).catch((error) => {
        this.errors.push(error);
        return { batchItemFailures: records.map((r) => ({ itemIdentifier: r.messageId })) };
      });
      const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
      const done = records.filter((r) => !failed.has(r.messageId)).map((r) => r.receiptHandle);
      if (done.length) await consumer.delete(done).catch((error) => this.errors.push(error));
    }
  }
}

/** Chaos: every message is sent twice (two SQS messages, as a duplicate delivery would be). */
function duplicatingQueue(queue: StepQueue): StepQueue {
  return {
    send: async (messages: StepMessage[]) => {
      await queue.send(messages);
      await queue.send(messages);
    },
  };
}

/**
 * The embedded runtime: the real handlers (step-worker, fan-out tasks, api) wired to local
 * engines in one process: the memory tier by default, the journal tier with a data folder, the
 * AWS-API engines (dynalite, fauxqs) when asked for; the fan-out's ASL in
 * aws-local-stepfunctions on the journal and engines tiers, the in-memory fan-out
 * (adapters/memory/memory-fan-out.ts) on the memory tier (see local/embedded-engines).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context, SQSEvent } from 'aws-lambda';
import { recordedEvents } from '../core/use-cases/run-events';
import { KindRouter } from '../adapters/agents/agent-invoker';
import { llmInvokers } from '../adapters/agents';
import { HttpInvoker } from '../adapters/agents/http-invoker';
import { ModuleInvoker, type ModuleInvokerOptions } from '../adapters/agents/module-invoker';
import { ScriptInvoker } from '../adapters/agents/script-invoker';
import { ToolBox } from '../adapters/tools/tool-box';
import { LocalEventBus } from '../adapters/events/local-event-bus';
import { BranchAborts } from '../adapters/memory/branch-aborts';
import { AggregatorRegistry, type AggregatorFn } from '../core/aggregators';
import type { RunRecord, Scope } from '../core/model';
import { errorMessage, type DataFolderError } from '../core/errors';
import { systemClock, type AgentInvoker, type StepQueue } from '../core/ports';
import type { AgentPolicy } from '../core/run-request';
import type { CostCounters } from '../core/cost';
import { meteredPublisher, meteredQueue } from '../core/cost-meter';
import type { FanOutDispatch } from '../core/fan-out-plan';
import { cancelRun, lateBoundTasks, resumeRun, startRun, type ResumeReport, type SpawnerDeps, type StartRunInput } from '../core/use-cases';
import { describeRun } from '../core/use-cases/queries';
import { createFanOutTaskHandlers } from '../functions/handlers/fan-out-tasks';
import { createStepWorkerHandler } from '../functions/handlers/step-worker';
import { createFaults, duplicatingQueue, type ChaosOptions, type RuntimeFaults } from './chaos';
import { startLocalEngines, type EngineOptions, type EngineTier, type LocalFanOut, type TieredEngines } from './embedded-engines';
import { MAX_RECEIVE_COUNT } from '../core/step-lanes';
import type { StepConsumer } from './engines/step-consumer';
import { DEFAULT_POLLERS, StepPollers } from './sqs/step-pollers';
import { DeadLetters, type DeadLetterCounts } from './sqs/dead-letter-consumer';
import { RuntimeFailures } from './runtime-failures';
import { RunEndWaiters } from './run-end-waiters';
import { InvocationMeter } from './invocation-meter';
import type { EventPolicy } from '../core/event-policy';
import { watchInbox } from './callback-inbox';
import { answerCallback } from '../core/use-cases/suspend';
import { LocalValueLinks } from './value-links';
import { describePendingWork } from './pending-work';

/** The team of local runs unless told otherwise. */
export const LOCAL_TEAM = 'local';

export interface LocalRuntimeOptions {
  team?: string;
  /**
   * Which engines: `memory` (the default without a data folder: fastest, nothing kept),
   * `journal` (the memory tier plus a journal in the data folder; the default with one) or
   * `engines` (dynalite and fauxqs). See local/embedded-engines.
   */
  tier?: EngineTier;
  /** Keep the store and queues on disk here (resume after a crash); in memory otherwise. */
  dataDir?: string;
  /** The journal tier: flush each journal write to the disk (survives an OS crash as well). */
  fsync?: boolean;
  /** The journal tier's compaction thresholds (tests make it compact often). */
  compaction?: EngineOptions['compaction'];
  /** The journal's write(2) (tests simulate a full disk with it). */
  journalWrite?: EngineOptions['journalWrite'];
  chaos?: ChaosOptions;
  /** How fan-outs dispatch children: in batches (the default) or one Map iteration each (core/fan-out-plan.ts). */
  fanOutDispatch?: FanOutDispatch;
  /** Extra agent kinds (e.g. bedrock, openai) next to script and http. */
  invokers?: Record<string, AgentInvoker>;
  aggregators?: Record<string, AggregatorFn>;
  /**
   * Parallel pollers of the start lane's queue (each receives up to 10 messages at a time and
   * keeps up to 64 steps in flight on the memory and journal tiers, 10 on the engines tier); the
   * continue lane gets half as many, at least two. The default (DEFAULT_POLLERS) lets 1,024 first
   * steps run at once on the memory tier, as an event source scales out in AWS: agents mostly
   * wait on models.
   */
  pollers?: number;
  /** Seconds before a message that was not acknowledged comes back. */
  visibilityTimeoutSeconds?: number;
  /**
   * Seconds before a message whose step failed (reported, not a dead process) is offered again,
   * in place of the step worker's backoff (tests that want every retry at once).
   */
  retryFailedAfterSeconds?: number;
  /** Receives before a step message goes to the dead-letter queue (default 5). */
  maxReceiveCount?: number;
  /**
   * What happens to a dead-lettered step: `fail` its branch (the DLQ consumer runs; the run ends
   * instead of hanging) or `keep` it in the DLQ for `branch-spawner redrive` after a fix.
   */
  poison?: 'fail' | 'keep';
  /**
   * With `poison: 'keep'`: told when steps are parked in the DLQ (checked each second, told again
   * only when more are parked), so a command waiting on a run can say what it waits for.
   */
  onParked?(parked: number): void;
  policy?: AgentPolicy;
  /** Where `module` agents' relative paths resolve, and which folders they may load from. */
  modules?: ModuleInvokerOptions;
  /** The step-worker's memory the cost meter prices local steps at (the stack's default otherwise). */
  workerMemoryMb?: number;
  /**
   * The team's event setting: which events the meter counts as sent to EventBridge and the run's
   * stored stream keeps (all by default). The local bus (trace, hooks) gets every event.
   */
  events?: EventPolicy;
}

export class LocalRuntime {
  /** The runtimes of this process not closed yet (see describeLive). */
  private static readonly live = new Set<LocalRuntime>();
  private stopped = false;
  private readonly failures = new RuntimeFailures();
  /** The lanes' pollers, feeding the step worker. */
  private readonly steps: StepPollers;
  /** The step DLQ's consumer (poison: 'fail') or watcher (see LocalRuntimeOptions.onParked). */
  private readonly dlq: DeadLetters;
  private readonly waiters: RunEndWaiters;
  /** The runs started or resumed here, by `team/runId` (what pendingWork describes). */
  private readonly runs = new Map<string, Scope>();
  /** Flushes the cost meter once a second (a write per run with usage, not per request). */
  private readonly costTimer = setInterval(() => void this.flushCost().catch((error) => this.report(error)), 1000).unref();
  /** Stops taking callback answers left in the data folder (see local/callback-inbox.ts). */
  private stopInbox: (() => Promise<void>) | undefined;
  /** The HTTP API's handler, made at the first request (see api). */
  private apiHandler: Promise<(event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>> | undefined;

  private constructor(
    readonly engines: TieredEngines,
    readonly deps: SpawnerDeps,
    readonly bus: LocalEventBus,
    readonly team: string,
    worker: (event: SQSEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>,
    private readonly fanOut: Pick<LocalFanOut, 'idle' | 'activeExecutions' | 'describeRunning'>,
    /** The faults injected so far (`injected`) when chaos is on. */
    readonly faults: RuntimeFaults,
    private readonly options: LocalRuntimeOptions,
    private readonly toolBox: ToolBox,
    private readonly invocations: InvocationMeter,
    private readonly links: LocalValueLinks,
  ) {
    this.waiters = new RunEndWaiters(deps.store);
    this.steps = new StepPollers({
      consumers: engines.consumers,
      tier: engines.tier,
      worker,
      invocations,
      stopped: () => this.halted,
      report: (error) => this.report(error),
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 5,
      retryFailedAfterSeconds: options.retryFailedAfterSeconds,
    });
    this.dlq = new DeadLetters({
      poison: options.poison ?? 'fail',
      consumer: engines.dlqConsumer,
      deps,
      invocations,
      maxReceiveCount: options.maxReceiveCount ?? MAX_RECEIVE_COUNT,
      ...(options.onParked ? { onParked: options.onParked } : {}),
      halted: () => this.halted,
      closing: () => this.stopped,
      report: (error) => this.report(error),
    });
  }

  /** What the DLQ consumer did, by outcome. */
  get deadLetters(): DeadLetterCounts {
    return this.dlq.counts;
  }

  /** Kept errors, each once (see report). */
  get errors(): unknown[] {
    return this.failures.errors;
  }

  /** Step messages handed to the worker, how many of those it reported as failed, and late deliveries of succeeded steps deleted (StepPollers). */
  get deliveries(): { handled: number; failed: number; repeated: number } {
    return this.steps.deliveries;
  }

  /** True once the pollers must stop: closing, or the data folder failed. */
  private get halted(): boolean {
    return this.stopped || this.failures.fatal !== undefined;
  }

  static async start(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    const team = options.team ?? LOCAL_TEAM;
    const self: { runtime?: LocalRuntime } = {};
    const engines = await startLocalEngines({
      tier: options.tier,
      dataDir: options.dataDir,
      fsync: options.fsync,
      compaction: options.compaction,
      journalWrite: options.journalWrite,
      // The first write the disk refuses stops the work at once (not when a retry trips on it).
      onDataFolderFailure: (error) => self.runtime?.report(error),
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 5,
      maxReceiveCount: options.maxReceiveCount,
    });
    const faults = createFaults(options.chaos);
    const aborts = new BranchAborts();
    const bus = new LocalEventBus();
    let sent: StepQueue = engines.queue;
    if (options.chaos?.duplicateDelivery) sent = duplicatingQueue(sent);
    // The fan-out's own sends (DispatchChild) are counted with its transitions, as Step Functions
    // makes them in AWS: only the handlers' sends go through the metered queue.
    const queue = meteredQueue(sent, engines.meter);
    const late = lateBoundTasks();
    const fanOut = engines.createFanOut(sent, late.tasks, (error) => runtime.report(error));
    // LLM agents' tools: module tools load like module agents; MCP servers are closed with the runtime.
    // The trace shows calls' arguments and outputs inline (it is the developer's own), those past the
    // preview kept whole in the run's blobs, by reference.
    const toolBox = new ToolBox({ ...options.modules, trace: { mode: 'inline', blobs: engines.blobs } });
    // http agents get values past 256 KB by URL (core/agent-request.ts), served from the run's blobs.
    const links = new LocalValueLinks(engines.blobs);
    // Each handler call where AWS invokes a function is metered as its invocation; agent calls
    // count as its waits (see local/invocation-meter.ts).
    const invocations = new InvocationMeter(engines.meter, { workerMemoryMb: options.workerMemoryMb });
    const invoker = invocations.agents(faults.wrapInvoker(agentKinds(options, { toolBox, links })));
    const deps: SpawnerDeps = {
      store: engines.store,
      queue,
      fanOut,
      // Every event reaches the local bus (trace, hooks); the run's stored stream keeps, and the
      // meter counts, those the team's event setting would send on the stack.
      events: recordedEvents(engines.store, meteredPublisher(bus, engines.meter, options.events), options.events),
      meter: engines.meter,
      invoker,
      clock: systemClock,
      aggregators: new AggregatorRegistry(options.aggregators),
      faults,
      signalFor: (scope, branchId) => aborts.signalFor(scope, branchId),
      runCache: new Map(),
      ...(options.fanOutDispatch ? { fanOutDispatch: options.fanOutDispatch } : {}),
    };
    late.bind(invocations.tasks(createFanOutTaskHandlers(deps)));
    const worker = createStepWorkerHandler(deps);
    const runtime = new LocalRuntime(engines, deps, bus, team, worker, fanOut, faults, options, toolBox, invocations, links);
    self.runtime = runtime;
    LocalRuntime.live.add(runtime);
    bus.subscribe((event) => {
      aborts.handle([event]);
      runtime.waiters.onEvent(event);
    });
    runtime.steps.start(options.pollers ?? DEFAULT_POLLERS);
    // `callback --data` cannot open a folder this process holds: it leaves answers here instead.
    if (options.dataDir) {
      runtime.stopInbox = watchInbox(
        options.dataDir,
        (runId, token, answer) => answerCallback(deps, { team, runId }, token, answer),
        (runId) => runtime.runs.has(`${team}/${runId}`),
        (error) => runtime.report(error),
      );
    }
    return runtime;
  }

  /**
   * The HTTP API: the same handler as behind API Gateway, fed its proxy events (the dev server
   * does). Its modules load at the first request: `run` never needs them.
   */
  async api(event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> {
    this.apiHandler ??= import('../functions/handlers/api').then(({ createApiHandler }) =>
      createApiHandler(this.deps, {
        policy: this.options.policy ?? { registry: {}, inline: 'any' },
        teamOf: (event) => event.headers?.['x-team'] ?? this.team,
      }),
    );
    const handler = await this.apiHandler;
    return handler(event, context);
  }

  async startRun(input: Omit<StartRunInput, 'team'> & { team?: string }): Promise<string> {
    const team = input.team ?? this.team;
    // What the api function (or the trigger) does in AWS: one invocation, charged once the run has an id.
    const scopes: { team: string; runId: string }[] = [];
    await this.invocations.invoke('api', scopes, async () => {
      const { runId } = await startRun(this.deps, { ...input, team });
      scopes.push({ team, runId });
      this.runs.set(`${team}/${runId}`, { team, runId });
    });
    return scopes[0].runId;
  }

  /**
   * Resolves with the run once it is over: terminal (its end event) and its work quiescent —
   * nothing queued or in flight, no step being handled, no fan-out running. A run's end is not
   * the end of its work: a crashed delivery's retry, a duplicate, a cancelled child winding down
   * may still count, publish or end something, and a reader must see their effects.
   */
  async waitForRun(runId: string, team = this.team): Promise<RunRecord> {
    const ended = this.waiters.ended({ team, runId });
    await this.failures.watching(async (failed) => {
      const current = await this.deps.store.getRun({ team, runId });
      // The data folder failing ends the wait: the run cannot move on until it is fixed.
      if (!current || current.status === 'RUNNING') await Promise.race([ended, failed]);
    });
    await this.settle();
    // A run that is over reads with its whole cost, whoever reads it next (the API, the CLI).
    await this.flushCost();
    return (await this.deps.store.getRun({ team, runId }))!;
  }

  async describe(runId: string, team = this.team) {
    await this.flushCost();
    return describeRun(this.deps, { team, runId });
  }

  /** The run's cost so far (the meter flushed first). */
  async costOf(runId: string, team = this.team): Promise<CostCounters> {
    await this.flushCost();
    return this.engines.store.getCost({ team, runId });
  }

  /** Writes what the meter summed up to the runs' cost records. */
  async flushCost(): Promise<void> {
    await this.engines.meter.flush(this.engines.store);
  }

  async cancel(runId: string, team = this.team): Promise<void> {
    await cancelRun(this.deps, { team, runId });
  }

  /** Drives a run again after the process that ran it died (see resumeRun). */
  async resume(runId: string, team = this.team): Promise<ResumeReport> {
    this.runs.set(`${team}/${runId}`, { team, runId });
    return resumeRun(this.deps, { team, runId });
  }

  /**
   * What the runtime's work is waiting on now, in a few lines (local/pending-work.ts): steps
   * being handled, queued messages, fan-out executions still running and what they wait for,
   * and the runs' branches not ended and sync points not settled. For a run that does not finish.
   */
  async pendingWork(): Promise<string> {
    return describePendingWork({
      store: this.deps.store,
      runs: [...this.runs.values()],
      handling: this.steps.handling.size,
      queues: [...Object.entries(this.engines.consumers), ['dead letters', this.engines.dlqConsumer] as const].map(([name, q]) => ({
        name: `${name} lane`,
        pending: () => q.pending(),
        ...(q.describe ? { describe: () => q.describe!() } : {}),
      })),
      executions: this.fanOut.describeRunning(),
      errors: this.errors,
    });
  }

  /** pendingWork of every runtime of this process not closed yet (a test's hang guard: the CLI's `main` runs one). */
  static async describeLive(): Promise<string> {
    const all = [...LocalRuntime.live];
    if (!all.length) return 'no local runtime is open';
    const described = await Promise.all(all.map((r, i) => r.pendingWork().then((text) => `runtime ${i + 1} of ${all.length} (${r.tier} tier):\n${text}`, (error: unknown) => `runtime ${i + 1}: ${errorMessage(error)}`)));
    return described.join('\n');
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    LocalRuntime.live.delete(this);
    // Before the folder is let go: an answer taken gets its outcome, the rest are left to withdraw.
    await this.stopInbox?.();
    clearInterval(this.costTimer);
    await Promise.all([this.steps.closed(), this.dlq.close()]);
    await this.flushCost().catch((error) => this.report(error));
    await this.toolBox.close();
    await this.links.close();
    await this.engines.close();
  }

  /**
   * Resolves when the runtime's work is quiescent: no step message queued or in flight in any lane
   * (nor in the dead-letter queue when its consumer runs), none being handled, no fan-out
   * execution running. Checked on both sides of the queue count, so work that moved between the
   * parts meanwhile is not missed.
   */
  async settle(): Promise<void> {
    for (;;) {
      if (this.failures.fatal) throw this.failures.fatal;
      const { handling } = this.steps;
      while (handling.size) await Promise.all([...handling]);
      await this.fanOut.idle();
      const before = this.steps.activity;
      if ((await this.queuedMessages()) === 0 && handling.size === 0 && this.fanOut.activeExecutions() === 0 && this.steps.activity === before) return;
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Step messages queued or in flight in every lane, plus the DLQ's when failed steps are consumed. */
  private async queuedMessages(): Promise<number> {
    const consumers: StepConsumer[] = Object.values(this.engines.consumers);
    if (this.dlq.consuming) consumers.push(this.engines.dlqConsumer);
    const counts = await Promise.all(consumers.map((c) => c.pending()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Keeps an error in `errors`, once per message (a failure that repeats is one error, and the
   * list stays bounded). A data folder that fails stops the runtime's work and ends every wait
   * for a run with that error (see waitForRun): retrying cannot fix a full disk.
   */
  report(error: unknown): void {
    this.failures.report(error);
  }

  /** The data folder's failure, if it failed (the runtime does no more work then). */
  get failure(): DataFolderError | undefined {
    return this.failures.fatal;
  }

  /** The engine tier this runtime runs on. */
  get tier(): EngineTier {
    return this.engines.tier;
  }
}

/** The agent kinds a local runtime calls: script, http, module, the LLM kinds, and the caller's own. */
function agentKinds(options: LocalRuntimeOptions, { toolBox, links }: { toolBox: ToolBox; links: LocalValueLinks }): AgentInvoker {
  return new KindRouter({
    script: new ScriptInvoker(),
    http: new HttpInvoker({ links }),
    module: new ModuleInvoker(options.modules),
    ...llmInvokers({ toolBox }),
    ...options.invokers,
  });
}

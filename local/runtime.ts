/**
 * The embedded runtime: the real handlers (step-worker, fan-out tasks, api) wired to local
 * engines in one process: the memory tier by default, the journal tier with a data folder, the
 * AWS-API engines (dynalite, fauxqs) when asked for; the fan-out's ASL in
 * aws-local-stepfunctions on the journal and engines tiers, the in-memory fan-out
 * (adapters/memory/memory-fan-out.ts) on the memory tier (see local/embedded-engines).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context, SQSEvent, SQSRecord } from 'aws-lambda';
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
import { isRunEnd, type LifecycleEvent } from '../core/events';
import type { RunRecord, Scope } from '../core/model';
import { DataFolderError, describeThrown, diskRefusal, errorMessage } from '../core/errors';
import { systemClock, type AgentInvoker, type SendOptions, type StepMessage, type StepQueue } from '../core/ports';
import type { AgentPolicy } from '../core/run-request';
import { meteredPublisher, meteredQueue, type CostCounters } from '../core/cost';
import type { FanOutDispatch } from '../core/fan-out-plan';
import { cancelRun, lateBoundTasks, resumeRun, startRun, type PoisonOutcome, type ResumeReport, type SpawnerDeps, type StartRunInput } from '../core/use-cases';
import { describeRun } from '../core/use-cases/queries';
import { createDlqHandler } from '../functions/handlers/dlq-handler';
import { createFanOutTaskHandlers } from '../functions/handlers/fan-out-tasks';
import { createStepWorkerHandler } from '../functions/handlers/step-worker';
import { isNotInFlight } from '../adapters/sqs/sqs-step-queue';
import { createFaults, type ChaosOptions, type RuntimeFaults } from './chaos';
import { startLocalEngines, type EngineOptions, type EngineTier, type LocalFanOut, type TieredEngines } from './embedded-engines';
import { continueLaneConcurrency, MAX_RECEIVE_COUNT, STEP_LANES } from '../core/step-lanes';
import type { StepConsumer } from './engines/step-consumer';
import { VisibilityHeartbeat } from './sqs/visibility-heartbeat';
import { deliver, poll } from './sqs/event-source';
import { InvocationMeter } from './invocation-meter';
import type { EventPolicy } from '../core/event-policy';
import { parseStepMessage } from '../functions/messages';
import { watchInbox } from './callback-inbox';
import { answerCallback } from '../core/use-cases/suspend';
import { LocalValueLinks } from './value-links';
import { describePendingWork } from './pending-work';

/**
 * Pollers of the start lane by default. With 4 (the earlier default) at most 40 steps ran at
 * once, and a tree whose 1,000 leaves are ready together (10×10×10, 100 ms agents) took 3.6 s
 * where 16 take 1.7 s (LangGraph.js: 1.2 s).
 */
export const DEFAULT_POLLERS = 16;

/**
 * Steps each poller keeps in flight, by tier. A receive on the in-memory queues costs next to
 * nothing, so each poller there keeps up to 64 steps going (1,024 on the start lane, about what
 * an SQS event source scales out to in AWS), and a burst of ready leaves runs at once instead of
 * in waves of 160. On the engines tier each receive is a request to an engine and each step
 * costs tens of milliseconds of CPU: 10 at a time, as a Lambda batch.
 */
const STEPS_PER_POLLER: Record<EngineTier, number> = { memory: 64, journal: 64, engines: 10 };

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

/** What the DLQ consumer did, by outcome (see failPoisonedStep). */
export type DeadLetterCounts = Record<PoisonOutcome | 'malformed', number>;

export class LocalRuntime {
  /** The runtimes of this process not closed yet (see describeLive). */
  private static readonly live = new Set<LocalRuntime>();
  readonly errors: unknown[] = [];
  readonly deadLetters: DeadLetterCounts = { failed: 0, told: 0, dropped: 0, malformed: 0 };
  /** Step messages handed to the worker, and how many of those it reported as failed. */
  readonly deliveries = { handled: 0, failed: 0 };
  private stopped = false;
  /** Set when the data folder fails (a full or read-only disk, a damaged journal): nothing more can be kept. */
  private fatal: DataFolderError | undefined;
  private readonly onFatal = new Set<(error: DataFolderError) => void>();
  /** Messages of the errors kept so far: each is kept once (a failure that repeats is one error). */
  private readonly reported = new Set<string>();
  private readonly pollers: Promise<void>[] = [];
  private readonly waiters = new Map<string, ((run: RunRecord) => void)[]>();
  /** The runs started or resumed here, by `team/runId` (what pendingWork describes). */
  private readonly runs = new Map<string, Scope>();
  /** Step messages being handled now (received, not yet acknowledged or released). */
  private readonly handling = new Set<Promise<void>>();
  /** Counts every start of work (see settle). */
  private activity = 0;
  /** Flushes the cost meter once a second (a write per run with usage, not per request). */
  private readonly costTimer = setInterval(() => void this.flushCost().catch((error) => this.report(error)), 1000).unref();
  /** Keeps messages in progress invisible (see handle); made at first use, from the options. */
  private heartbeatOf: VisibilityHeartbeat | undefined;
  /** Stops taking callback answers left in the data folder (see local/callback-inbox.ts). */
  private stopInbox: (() => Promise<void>) | undefined;
  /** Watches the DLQ when steps are kept there (see LocalRuntimeOptions.onParked). */
  private parkedTimer: NodeJS.Timeout | undefined;
  /** The HTTP API's handler, made at the first request (see api). */
  private apiHandler: Promise<(event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>> | undefined;

  private constructor(
    readonly engines: TieredEngines,
    readonly deps: SpawnerDeps,
    readonly bus: LocalEventBus,
    readonly team: string,
    private readonly worker: (event: SQSEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>,
    private readonly fanOut: Pick<LocalFanOut, 'idle' | 'activeExecutions' | 'describeRunning'>,
    /** The faults injected so far (`injected`) when chaos is on. */
    readonly faults: RuntimeFaults,
    private readonly options: LocalRuntimeOptions,
    private readonly toolBox: ToolBox,
    private readonly invocations: InvocationMeter,
    private readonly links: LocalValueLinks,
  ) {}

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
    const invoker = invocations.agents(
      faults.wrapInvoker(
        new KindRouter({
          script: new ScriptInvoker(),
          http: new HttpInvoker({ links }),
          module: new ModuleInvoker(options.modules),
          ...llmInvokers({ toolBox }),
          ...options.invokers,
        }),
      ),
    );
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
      runtime.onEvent(event);
    });
    runtime.startPolling(options.pollers ?? DEFAULT_POLLERS);
    // `callback --data` cannot open a folder this process holds: it leaves answers here instead.
    if (options.dataDir) {
      runtime.stopInbox = watchInbox(
        options.dataDir,
        (runId, token, answer) => answerCallback(deps, { team, runId }, token, answer),
        (runId) => runtime.runs.has(`${team}/${runId}`),
        (error) => runtime.report(error),
      );
    }
    if ((options.poison ?? 'fail') === 'fail') runtime.pollers.push(runtime.pollDeadLetters());
    else if (options.onParked) runtime.watchParked(options.onParked);
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
    const key = `${team}/${runId}`;
    const ended = new Promise<RunRecord>((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
    let listener: ((error: DataFolderError) => void) | undefined;
    const failed = new Promise<never>((_resolve, reject) => {
      listener = reject;
      if (this.fatal) reject(this.fatal);
      else this.onFatal.add(reject);
    });
    failed.catch(() => undefined);
    try {
      const current = await this.deps.store.getRun({ team, runId });
      // The data folder failing ends the wait: the run cannot move on until it is fixed.
      if (!current || current.status === 'RUNNING') await Promise.race([ended, failed]);
    } finally {
      this.onFatal.delete(listener!);
    }
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
      handling: this.handling.size,
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
    clearInterval(this.parkedTimer);
    await Promise.all(this.pollers);
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
      if (this.fatal) throw this.fatal;
      while (this.handling.size) await Promise.all([...this.handling]);
      await this.fanOut.idle();
      const before = this.activity;
      if ((await this.queuedMessages()) === 0 && this.handling.size === 0 && this.fanOut.activeExecutions() === 0 && this.activity === before) return;
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Step messages queued or in flight in every lane, plus the DLQ's when failed steps are consumed. */
  private async queuedMessages(): Promise<number> {
    const consumers: StepConsumer[] = Object.values(this.engines.consumers);
    if ((this.options.poison ?? 'fail') === 'fail') consumers.push(this.engines.dlqConsumer);
    const counts = await Promise.all(consumers.map((c) => c.pending()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Keeps an error in `errors`, once per message (a failure that repeats is one error, and the
   * list stays bounded). A data folder that fails stops the runtime's work and ends every wait
   * for a run with that error (see waitForRun): retrying cannot fix a full disk.
   */
  report(error: unknown): void {
    const folder = dataFolderErrorOf(error);
    if (folder) {
      if (this.fatal) return; // told already
      this.fatal = folder;
      for (const reject of this.onFatal) reject(folder);
      this.onFatal.clear();
    }
    const message = errorMessage(error);
    if (this.reported.has(message) || this.reported.size >= MAX_KEPT_ERRORS) return;
    this.reported.add(message);
    this.errors.push(error);
  }

  private watchParked(onParked: (parked: number) => void): void {
    let told = 0;
    this.parkedTimer = setInterval(() => {
      void this.engines.dlqConsumer.pending().then((parked) => {
        if (parked <= told || this.stopped) return;
        told = parked;
        onParked(parked);
      }, (error) => this.report(error));
    }, 1000).unref();
  }

  /** The data folder's failure, if it failed (the runtime does no more work then). */
  get failure(): DataFolderError | undefined {
    return this.fatal;
  }

  private onEvent(event: LifecycleEvent): void {
    if (!isRunEnd(event)) return;
    const key = `${event.team}/${event.runId}`;
    const waiters = this.waiters.get(key);
    if (!waiters) return;
    this.waiters.delete(key);
    void this.deps.store.getRun({ team: event.team, runId: event.runId }).then((run) => {
      for (const resolve of waiters) resolve(run!);
    });
  }

  /** The engine tier this runtime runs on. */
  get tier(): EngineTier {
    return this.engines.tier;
  }

  private startPolling(count: number): void {
    for (const lane of STEP_LANES) {
      const pollers = lane === 'start' ? count : continueLaneConcurrency(count);
      for (let i = 0; i < pollers; i++) this.pollers.push(this.poll(this.engines.consumers[lane], STEPS_PER_POLLER[this.tier]));
    }
  }

  /**
   * Feeds step-worker as the Lambda event source mapping does (local/sqs/event-source.ts), with
   * differences that suit one process: each received message is its own invocation, and a poller
   * keeps up to `maxInFlight` in flight, receiving more as any ends (a slow step holds back neither the
   * acknowledgement or retry of the messages received with it, nor the next receive); and a
   * message is kept invisible while its step runs (see handle).
   */
  private async poll(consumer: StepConsumer, maxInFlight: number): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    await poll({
      stopped: () => this.stopped || this.fatal !== undefined,
      ready: async () => {
        while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
        // Each receive waits for the next turn of the event loop, as a receive over the network
        // does. With agents that answer at once, steps would otherwise follow one another on
        // promises alone for a whole run: no timer would fire (heartbeats, the cost flush, a dev
        // server's requests), and Node keeps every object a WeakRef points to until the promises
        // run out (AbortSignal.any and the fan-out engine make such references for every child).
        const turn = Date.now();
        await new Promise((resolve) => setImmediate(resolve));
        this.heartbeat.lag.observe(Date.now() - turn);
      },
      receive: () => consumer.receive({ max: Math.min(10, maxInFlight - inFlight.size), waitSeconds: 1, visibilityTimeout: this.heartbeat.extension() }),
      // Reported once (see report), retried later and later.
      onReceiveError: (error) => this.report(error),
      handle: (records) => {
        for (const record of records) {
          const handled: Promise<void> = this.handle(consumer, record).finally(() => {
            inFlight.delete(handled);
            this.handling.delete(handled);
          });
          inFlight.add(handled);
          this.handling.add(handled);
          this.activity++;
        }
      },
    });
    await Promise.all(inFlight);
  }

  private get heartbeat(): VisibilityHeartbeat {
    return (this.heartbeatOf ??= new VisibilityHeartbeat(this.options.visibilityTimeoutSeconds ?? 5));
  }

  private async handle(consumer: StepConsumer, record: SQSRecord): Promise<void> {
    // While the worker runs, the message stays ours: a step may outlast the visibility timeout
    // (a slow agent, a starved machine), and it must not come back to a second worker while the
    // first still runs (nor reach the DLQ for being slow). Lambda gets this from its function
    // timeout; here the heartbeat extends the visibility, until the message is deleted.
    const held = this.heartbeat.hold((seconds) => consumer.changeVisibility(record.receiptHandle, seconds));
    const message = parseStepMessage(record.body);
    const [failed] = await deliver({
      records: [record],
      invoke: (event) => this.invocations.invoke('step-worker', message ? [message] : [], () => this.worker(event)),
      onInvokeError: (error) => this.report(error),
      hold: { release: () => held.release() },
      delete: (handles) => consumer.delete(handles),
      onDeleteError: (error) => this.report(error),
    });
    this.deliveries.handled++;
    if (!failed) return;
    this.deliveries.failed++;
    const retry = this.options.retryFailedAfterSeconds;
    if (retry === undefined) return; // back after the step worker's backoff (or the visibility timeout)
    await consumer.changeVisibility(record.receiptHandle, retry).catch((error) => {
      // Already visible again (its timeout ran out meanwhile): what the retry wanted anyway.
      if (!isNotInFlight(error)) this.report(error);
    });
  }

  /** The DLQ consumer: the dlq-handler Lambda, fed batches as its event source mapping does. */
  private async pollDeadLetters(): Promise<void> {
    const consumer = this.engines.dlqConsumer;
    const handler = createDlqHandler(this.deps, undefined, {
      onHandled: (outcome) => void this.deadLetters[outcome]++,
      maxReceiveCount: this.options.maxReceiveCount ?? MAX_RECEIVE_COUNT,
    });
    await poll({
      stopped: () => this.stopped || this.fatal !== undefined,
      receive: () => consumer.receive({ max: 10, waitSeconds: 1 }),
      onReceiveError: (error) => this.report(error),
      handle: async (records) => {
        const scopes = records.flatMap((r) => parseStepMessage(r.body) ?? []);
        await deliver({
          records,
          invoke: (event) => this.invocations.invoke('dlq-handler', scopes, () => handler(event)),
          onInvokeError: (error) => this.report(error),
          delete: (handles) => consumer.delete(handles),
          onDeleteError: (error) => this.report(error),
        });
      },
    });
  }
}

/** Different errors kept at most (each message once). */
const MAX_KEPT_ERRORS = 1000;

/** The data folder's failure this error is, or comes from (a disk refusing a write counts). */
function dataFolderErrorOf(error: unknown): DataFolderError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DataFolderError) return e;
    const code = diskRefusal(e);
    if (code) return new DataFolderError(`the data folder refused a write: ${describeThrown(e)}`, code, { cause: e });
  }
  return undefined;
}

/** Chaos: every message is sent twice (two SQS messages, as a duplicate delivery would be). */
function duplicatingQueue(queue: StepQueue): StepQueue {
  return {
    send: async (messages: StepMessage[], options?: SendOptions) => {
      await queue.send(messages, options);
      await queue.send(messages, options);
    },
    redeliverAfter: (receipt, seconds) => queue.redeliverAfter(receipt, seconds),
  };
}

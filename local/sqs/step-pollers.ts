/**
 * The step-worker's event sources in one process: pollers on each lane (core/step-lanes.ts) feed
 * the worker as Lambda's event source mapping does (local/sqs/event-source.ts), with differences
 * that suit one process: each received message is its own invocation, and a poller keeps several
 * in flight, receiving more as any ends (a slow step holds back neither the acknowledgement or
 * retry of the messages received with it, nor the next receive); a message is kept invisible
 * while its step runs (see handle); and a message is never run twice at once, nor again once its
 * step succeeded (see repeat).
 */
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { isNotInFlight } from '../../adapters/sqs/sqs-step-queue';
import { continueLaneConcurrency, STEP_LANES, type StepLane } from '../../core/step-lanes';
import { parseStepMessage } from '../../functions/messages';
import type { EngineTier } from '../embedded-engines';
import type { StepConsumer } from '../engines/step-consumer';
import type { InvocationMeter } from '../invocation-meter';
import { deliver, poll } from './event-source';
import { VisibilityHeartbeat, type AskedVisibility } from './visibility-heartbeat';

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

export interface StepPollersOptions {
  consumers: Record<StepLane, StepConsumer>;
  tier: EngineTier;
  worker: (event: SQSEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
  /** Meters each delivery as a step-worker invocation. */
  invocations: InvocationMeter;
  /** True once the pollers should stop (closing, or a failure nothing can fix). */
  stopped(): boolean;
  report(error: unknown): void;
  /** The queues' visibility timeout, which the heartbeat keeps renewing while a step runs. */
  visibilityTimeoutSeconds: number;
  /** Seconds before a failed step's message is offered again, in place of the worker's backoff. */
  retryFailedAfterSeconds?: number;
}

/**
 * Ids of messages whose step succeeded here that are remembered, to delete rather than run a
 * late delivery of one (see repeat): the newest, far more than are ever in flight at once.
 */
const SUCCEEDED_REMEMBERED = 50_000;

export class StepPollers {
  /**
   * Step messages handed to the worker, how many of those it reported as failed, and deliveries
   * of a message back while (or after) this process ran its step, deleted without running again.
   */
  readonly deliveries = { handled: 0, failed: 0, repeated: 0 };
  /** Step messages being handled now (received, not yet acknowledged or released). */
  readonly handling = new Set<Promise<void>>();
  private started = 0;
  private readonly pollers: Promise<void>[] = [];
  /** Keeps messages in progress invisible (see handle). */
  private readonly heartbeat: VisibilityHeartbeat;
  /** Messages whose step runs here now, by id: whether it succeeded, once it ended. */
  private readonly running = new Map<string, Promise<boolean>>();
  /** Ids of messages whose step succeeded here, the newest (SUCCEEDED_REMEMBERED), oldest first. */
  private readonly succeeded = new Set<string>();

  constructor(private readonly options: StepPollersOptions) {
    this.heartbeat = new VisibilityHeartbeat(options.visibilityTimeoutSeconds);
  }

  /** Counts every step handed to the worker: a reader that sees it unchanged knows none started meanwhile. */
  get activity(): number {
    return this.started;
  }

  /** `count` pollers on the start lane; the continue lane gets half as many, at least two. */
  start(count: number): void {
    for (const lane of STEP_LANES) {
      const pollers = lane === 'start' ? count : continueLaneConcurrency(count);
      for (let i = 0; i < pollers; i++) this.pollers.push(this.poll(this.options.consumers[lane], STEPS_PER_POLLER[this.options.tier]));
    }
  }

  /** Resolves once every poller has stopped (see StepPollersOptions.stopped) and its steps ended. */
  async closed(): Promise<void> {
    await Promise.all(this.pollers);
  }

  /** One poller: keeps up to `maxInFlight` steps going, receiving more as any ends. */
  private async poll(consumer: StepConsumer, maxInFlight: number): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    // The visibility the last receive asked for, and when: its messages' heartbeats count from it.
    let received: AskedVisibility = { at: Date.now(), seconds: this.heartbeat.extension() };
    await poll({
      stopped: () => this.options.stopped(),
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
      receive: () => {
        received = { at: Date.now(), seconds: this.heartbeat.extension() };
        return consumer.receive({ max: Math.min(10, maxInFlight - inFlight.size), waitSeconds: 1, visibilityTimeout: received.seconds });
      },
      // Reported once (see LocalRuntime.report), retried later and later.
      onReceiveError: (error) => this.options.report(error),
      handle: (records) => {
        for (const record of records) {
          const handled: Promise<void> = this.handle(consumer, record, received).finally(() => {
            inFlight.delete(handled);
            this.handling.delete(handled);
          });
          inFlight.add(handled);
          this.handling.add(handled);
          this.started++;
        }
      },
    });
    await Promise.all(inFlight);
  }

  private async handle(consumer: StepConsumer, record: SQSRecord, received: AskedVisibility): Promise<void> {
    const id = record.messageId;
    for (let earlier = this.running.get(id); earlier; earlier = this.running.get(id)) {
      if (await this.repeat(consumer, record, received, earlier)) return;
    }
    // (Checked and marked with no await between: of two deliveries waiting on a failed run, one runs.)
    if (this.succeeded.has(id)) return void (await this.repeat(consumer, record, received));
    const outcome = this.run(consumer, record, received).then((ok) => {
      if (ok) this.remember(id);
      return ok;
    });
    this.running.set(id, outcome);
    try {
      await outcome;
    } finally {
      this.running.delete(id);
    }
  }

  /**
   * A message back while this process runs its step (`earlier`), or after its step succeeded
   * here: its visibility lapsed — the process was starved past its heartbeat (fauxqs, in this
   * process, expires the message before a late heartbeat renews it), or the step's delete came
   * too late. Lambda never runs one message twice at once (its timeout is below the visibility
   * timeout), and a second run would tell the step's lifecycle events again, as the retry of a
   * run that died. So the delivery waits, kept invisible, for the run in progress; once the step
   * succeeded it is deleted (true). After a failure it is the step's retry (false: run it).
   */
  private async repeat(consumer: StepConsumer, record: SQSRecord, received: AskedVisibility, earlier?: Promise<boolean>): Promise<boolean> {
    if (earlier) {
      const held = this.heartbeat.hold((seconds) => consumer.changeVisibility(record.receiptHandle, seconds), received);
      const ok = await earlier;
      held.release();
      if (!ok) return false;
    }
    this.deliveries.repeated++;
    await consumer.delete([record.receiptHandle]).catch((error) => this.options.report(error));
    return true;
  }

  private remember(id: string): void {
    this.succeeded.add(id);
    if (this.succeeded.size > SUCCEEDED_REMEMBERED) this.succeeded.delete(this.succeeded.values().next().value!);
  }

  /** Runs the message's step; answers whether it succeeded. */
  private async run(consumer: StepConsumer, record: SQSRecord, received: AskedVisibility): Promise<boolean> {
    // While the worker runs, the message stays ours: a step may outlast the visibility timeout
    // (a slow agent, a starved machine), and it must not come back to a second worker while the
    // first still runs (nor reach the DLQ for being slow). Lambda gets this from its function
    // timeout; here the heartbeat extends the visibility, until the message is deleted.
    const held = this.heartbeat.hold((seconds) => consumer.changeVisibility(record.receiptHandle, seconds), received);
    const message = parseStepMessage(record.body);
    const { report, invocations, worker } = this.options;
    const [failed] = await deliver({
      records: [record],
      invoke: (event) => invocations.invoke('step-worker', message ? [message] : [], () => worker(event)),
      onInvokeError: report,
      hold: { release: () => held.release() },
      delete: (handles) => consumer.delete(handles),
      onDeleteError: report,
    });
    this.deliveries.handled++;
    if (!failed) return true;
    this.deliveries.failed++;
    const retry = this.options.retryFailedAfterSeconds;
    if (retry === undefined) return false; // back after the step worker's backoff (or the visibility timeout)
    await consumer.changeVisibility(record.receiptHandle, retry).catch((error) => {
      // Already visible again (its timeout ran out meanwhile): what the retry wanted anyway.
      if (!isNotInFlight(error)) report(error);
    });
    return false;
  }
}

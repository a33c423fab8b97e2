/**
 * What becomes of dead-lettered steps in one process: either the dlq-handler runs on them, fed
 * batches as its event source mapping does (each fails its branch, so the run ends instead of
 * hanging), or they are kept in the DLQ for `branch-spawner redrive` and a watcher says so.
 */
import type { PoisonOutcome, SpawnerDeps } from '../../core/use-cases';
import { createDlqHandler } from '../../functions/handlers/dlq-handler';
import { parseStepMessage } from '../../functions/messages';
import type { StepConsumer } from '../engines/step-consumer';
import type { InvocationMeter } from '../invocation-meter';
import { deliver, poll } from './event-source';

/** What the DLQ consumer did, by outcome (see failPoisonedStep). */
export type DeadLetterCounts = Record<PoisonOutcome | 'malformed', number>;

export interface DeadLettersOptions {
  /** `fail` each dead-lettered step's branch (the dlq-handler runs), or `keep` them for a redrive. */
  poison: 'fail' | 'keep';
  consumer: StepConsumer;
  deps: SpawnerDeps;
  /** Meters each batch as a dlq-handler invocation. */
  invocations: InvocationMeter;
  /** The receives after which a step was dead-lettered (what the handler tells its branch). */
  maxReceiveCount: number;
  /** With `keep`: told when steps are parked (see watchParked). */
  onParked?(parked: number): void;
  /** True once the consumer should stop (closing, or a failure nothing can fix). */
  halted(): boolean;
  /** True once closing (the parked watcher stops telling). */
  closing(): boolean;
  report(error: unknown): void;
}

/** The step DLQ's side of a local runtime: its consumer or its watcher, started at once. */
export class DeadLetters {
  /** What the DLQ consumer did, by outcome. */
  readonly counts: DeadLetterCounts = { failed: 0, told: 0, dropped: 0, malformed: 0 };
  private readonly consumed: Promise<void> | undefined;
  private readonly parkedTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: DeadLettersOptions) {
    if (options.poison === 'fail') this.consumed = consumeDeadLetters(options, this.counts);
    else if (options.onParked) this.parkedTimer = watchParked(options.consumer, options.onParked, { stopped: options.closing, report: options.report });
  }

  /** Whether dead-lettered messages are work still to do (the consumer runs on them) rather than kept. */
  get consuming(): boolean {
    return this.options.poison === 'fail';
  }

  /** Stops the watcher, and resolves once the consumer has stopped (after `halted`). */
  async close(): Promise<void> {
    clearInterval(this.parkedTimer);
    await this.consumed;
  }
}

/** The DLQ consumer: the dlq-handler Lambda, fed batches as its event source mapping does. Resolves once halted. */
async function consumeDeadLetters(options: DeadLettersOptions, counts: DeadLetterCounts): Promise<void> {
  const { consumer, invocations, report } = options;
  const handler = createDlqHandler(options.deps, undefined, {
    onHandled: (outcome) => void counts[outcome]++,
    maxReceiveCount: options.maxReceiveCount,
  });
  await poll({
    stopped: () => options.halted(),
    receive: () => consumer.receive({ max: 10, waitSeconds: 1 }),
    onReceiveError: report,
    handle: async (records) => {
      const scopes = records.flatMap((r) => parseStepMessage(r.body) ?? []);
      await deliver({
        records,
        invoke: (event) => invocations.invoke('dlq-handler', scopes, () => handler(event)),
        onInvokeError: report,
        delete: (handles) => consumer.delete(handles),
        onDeleteError: report,
      });
    },
  });
}

/**
 * With dead-lettered steps kept: tells `onParked` when steps are parked in the DLQ (checked each
 * second, told again only when more are parked). Answers the timer to clear on close.
 */
function watchParked(
  consumer: StepConsumer,
  onParked: (parked: number) => void,
  options: { stopped(): boolean; report(error: unknown): void },
): NodeJS.Timeout {
  let told = 0;
  return setInterval(() => {
    void consumer.pending().then((parked) => {
      if (parked <= told || options.stopped()) return;
      told = parked;
      onParked(parked);
    }, options.report);
  }, 1000).unref();
}

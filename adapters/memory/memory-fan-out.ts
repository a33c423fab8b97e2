/**
 * In-memory FanOutOrchestrator: the same semantics as the fan-out state machine (bounded
 * dispatch, per-child timeout → RecordChildFailure, then Aggregate), without an engine.
 */
import { fanOutUsage } from '../../core/fan-out-plan';
import { childId } from '../../core/model';
import type { ChildReport, CostSink, FanOutOrchestrator, FanOutRequest, FanOutTasks, StepQueue } from '../../core/ports';

interface Execution {
  stopped: boolean;
  waiting: Map<string, () => void>;
}

export class MemoryFanOut implements FanOutOrchestrator {
  private readonly executions = new Map<string, Execution>();
  private readonly tokens = new Map<string, { execution: Execution; release: (report?: ChildReport) => void }>();
  private readonly running = new Set<Promise<void>>();
  private tokenSeq = 0;
  /** Highest number of children in flight at once, per execution (for tests). */
  readonly peakInFlight = new Map<string, number>();

  constructor(
    private readonly queue: StepQueue,
    private readonly tasks: FanOutTasks,
    private readonly onError: (error: unknown) => void = (e) => console.error(e),
    private readonly meter?: CostSink,
  ) {}

  async start(request: FanOutRequest): Promise<void> {
    if (this.executions.has(request.executionName)) return;
    const execution: Execution = { stopped: false, waiting: new Map() };
    this.executions.set(request.executionName, execution);
    this.meter?.add(request, fanOutUsage(request.count, request.maxConcurrency));
    const run = this.run(request, execution).catch(this.onError);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  async childFinished(taskToken: string, report: ChildReport): Promise<void> {
    this.tokens.get(taskToken)?.release(report);
  }

  async stop(executionName: string): Promise<void> {
    const execution = this.executions.get(executionName);
    if (!execution || execution.stopped) return;
    execution.stopped = true;
    for (const release of execution.waiting.values()) release();
  }

  /** Resolves when no execution is running. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running]);
  }

  get activeExecutions(): number {
    return this.running.size;
  }

  private async run(request: FanOutRequest, execution: Execution): Promise<void> {
    const tasks = this.tasks;
    const { team, runId, parentId, seq } = request;
    let next = 0;
    let inFlight = 0;
    const iterate = async (): Promise<void> => {
      while (!execution.stopped && next < request.count) {
        const branchId = childId(parentId, request.firstIndex + next++);
        inFlight++;
        const peak = Math.max(this.peakInFlight.get(request.executionName) ?? 0, inFlight);
        this.peakInFlight.set(request.executionName, peak);
        const outcome = await this.dispatch(request, execution, branchId, request.timeoutSeconds);
        inFlight--;
        if (outcome !== 'done' && !execution.stopped) {
          const error = outcome === 'timeout' ? 'States.Timeout' : 'States.TaskFailed';
          await tasks.recordChildFailure({ team, runId, parentId, seq, branchId, error });
        }
      }
    };
    const slots = Math.max(1, Math.min(request.maxConcurrency, request.count));
    await Promise.all(Array.from({ length: slots }, iterate));
    if (!execution.stopped) await tasks.aggregate({ team, runId, parentId, seq });
  }

  private dispatch(request: FanOutRequest, execution: Execution, branchId: string, timeoutSeconds: number) {
    const token = `tok-${++this.tokenSeq}-${branchId}`;
    return new Promise<'done' | 'timeout' | 'failed'>((resolve) => {
      const timer = setTimeout(() => finish('timeout'), timeoutSeconds * 1000);
      const finish = (result: 'done' | 'timeout' | 'failed') => {
        clearTimeout(timer);
        this.tokens.delete(token);
        execution.waiting.delete(token);
        resolve(result);
      };
      const release = () => finish('done');
      this.tokens.set(token, { execution, release });
      execution.waiting.set(token, release);
      const { team, runId } = request;
      this.queue.send([{ team, runId, branchId, step: 0, taskToken: token }]).catch((error) => {
        this.onError(error);
        finish('failed');
      });
    });
  }
}

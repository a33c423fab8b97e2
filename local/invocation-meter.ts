/**
 * Lambda in the local tiers' cost meter: each handler call the runtime makes where AWS would
 * invoke a function (a step message, a fan-out task, a batch of dead letters, a run started) is
 * metered as that function's invocation — one request and its measured time, rounded up to 1 ms
 * as Lambda bills it, at the memory the stack gives the function (functions/function-memory.ts).
 * Locally each step message is its own invocation; in AWS a batch of up to 10 shares one.
 */
import { invocationUsage, type CostMeter } from '../core/cost';
import type { Scope } from '../core/model';
import type { FanOutTasks } from '../core/ports';
import { functionMemoryMb, type SpawnerFunctionName } from '../functions/function-memory';

export class InvocationMeter {
  constructor(
    private readonly meter: CostMeter,
    private readonly team: { workerMemoryMb?: number } = {},
  ) {}

  /** Runs `work` as one invocation of `name`, shared by the runs it serves. */
  async invoke<R>(name: SpawnerFunctionName, scopes: readonly Scope[], work: () => Promise<R>): Promise<R> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      if (scopes.length) this.meter.addShared(scopes, invocationUsage(performance.now() - started, functionMemoryMb(name, this.team)));
    }
  }

  /** The fan-out's Lambda tasks, each call an invocation of its function. */
  tasks(tasks: FanOutTasks): FanOutTasks {
    return {
      recordChildFailure: (input) => this.invoke('record-child-failure', [input], () => tasks.recordChildFailure(input)),
      aggregate: (input) => this.invoke('aggregate', [input], () => tasks.aggregate(input)),
      recordFanOutFailure: (input) => this.invoke('record-child-failure', [input], () => tasks.recordFanOutFailure(input)),
      dispatchBatch: (input) => this.invoke('record-child-failure', [input], () => tasks.dispatchBatch(input)),
      recordBatchFailure: (input) => this.invoke('record-child-failure', [input], () => tasks.recordBatchFailure(input)),
    };
  }
}

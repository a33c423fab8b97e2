/**
 * Lambda in the local tiers' cost meter: each handler call the runtime makes where AWS would
 * invoke a function (a step message, a fan-out task, a batch of dead letters, a run started) is
 * metered as that function's invocation — one request and its measured time, rounded up to 1 ms
 * as Lambda bills it, at the memory the stack gives the function (functions/function-memory.ts).
 * Locally each step message is its own invocation; in AWS a batch of up to 10 shares one.
 *
 * The time is what the call would take with a CPU of its own, as each Lambda invocation has. Its
 * agent calls count whole (wall time: in AWS the function waits on them too). The rest is the
 * call's share of the process: while the event loop is idle every call in flight is waiting and
 * counts it whole; while it computes, the busy time is shared among the calls in flight that are
 * not waiting on an agent. Wall time alone would bill each of 200 concurrent steps for the
 * others' work as well.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { invocationUsage } from '../core/cost';
import type { CostMeter } from '../core/cost-meter';
import type { Scope } from '../core/model';
import type { AgentInvoker, FanOutTasks } from '../core/ports';
import { functionMemoryMb, type SpawnerFunctionName } from '../functions/function-memory';

interface Call {
  billedMs: number;
  waiting: boolean;
  /** The clock's reading when the current phase (computing or waiting) began. */
  mark: number;
}

export class InvocationMeter {
  private readonly calls = new AsyncLocalStorage<Call>();
  private inFlight = 0;
  private waiting = 0;
  /** Milliseconds a call that computed since the meter started would have been billed. */
  private shareClock = 0;
  /** Milliseconds of wall time since the meter started (while any call was in flight). */
  private wallClock = 0;
  private last = performance.eventLoopUtilization();

  constructor(
    private readonly meter: CostMeter,
    private readonly team: { workerMemoryMb?: number } = {},
  ) {}

  /** Runs `work` as one invocation of `name`, shared by the runs it serves. */
  async invoke<R>(name: SpawnerFunctionName, scopes: readonly Scope[], work: () => Promise<R>): Promise<R> {
    this.advance();
    this.inFlight++;
    const call: Call = { billedMs: 0, waiting: false, mark: this.shareClock };
    try {
      return await this.calls.run(call, work);
    } finally {
      this.advance();
      this.endPhase(call);
      this.inFlight--;
      if (scopes.length) this.meter.addShared(scopes, invocationUsage(call.billedMs, functionMemoryMb(name, this.team)));
    }
  }

  /** An invoker whose calls count as waits of the invocation making them (their whole wall time). */
  agents(invoker: AgentInvoker): AgentInvoker {
    return {
      invoke: async (invocation) => {
        const call = this.calls.getStore();
        if (!call || call.waiting) return invoker.invoke(invocation);
        this.advance();
        this.endPhase(call);
        call.waiting = true;
        this.waiting++;
        call.mark = this.wallClock;
        try {
          return await invoker.invoke(invocation);
        } finally {
          this.advance();
          this.endPhase(call);
          call.waiting = false;
          this.waiting--;
          call.mark = this.shareClock;
        }
      },
    };
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

  private endPhase(call: Call): void {
    call.billedMs += (call.waiting ? this.wallClock : this.shareClock) - call.mark;
  }

  /** Moves both clocks over the time since the last phase change of any call. */
  private advance(): void {
    const now = performance.eventLoopUtilization();
    const { idle, active } = performance.eventLoopUtilization(now, this.last);
    this.last = now;
    if (this.inFlight === 0) return;
    this.wallClock += idle + active;
    const computing = this.inFlight - this.waiting;
    this.shareClock += idle + (computing > 0 ? active / computing : active);
  }
}

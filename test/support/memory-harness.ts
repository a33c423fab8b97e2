/** Runs the use cases on the in-memory ports, pumping the queue until a run ends. */
import { AggregatorRegistry, type AggregatorFn } from '../../core/aggregators';
import type { LifecycleEvent } from '../../core/events';
import { TransientError } from '../../core/errors';
import type { AgentRegistry, BranchRecord, RunRecord, Scope } from '../../core/model';
import type { AgentInvoker, FanOutTasks } from '../../core/ports';
import {
  executeStep,
  fanOutTasks,
  lateBoundTasks,
  resumeRun,
  startRun,
  type SpawnerDeps,
  type StartRunInput,
} from '../../core/use-cases';
import { KindRouter } from '../../adapters/agents/agent-invoker';
import { ScriptInvoker } from '../../adapters/agents/script-invoker';
import { BranchAborts } from '../../adapters/memory/branch-aborts';
import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { MemoryFanOut } from '../../adapters/memory/memory-fan-out';
import { MemoryQueue } from '../../adapters/memory/memory-queue';
import type { AgentDefinition, ScriptAgentDefinition } from '../../core/agent-kinds';

export interface HarnessOptions {
  duplicate?: boolean;
  /** The store of an earlier harness (a restarted process on the same data). */
  store?: MemoryBranchStore;
  /** Fault injection; a step that throws `HarnessCrash` is delivered again (the message came back). */
  faults?: SpawnerDeps['faults'];
  aggregators?: Record<string, AggregatorFn>;
  invoker?: AgentInvoker;
  concurrency?: number;
}

export function createMemoryHarness(options: HarnessOptions = {}) {
  const store = options.store ?? new MemoryBranchStore();
  const queue = new MemoryQueue({ duplicate: options.duplicate });
  const errors: unknown[] = [];
  const late = lateBoundTasks();
  const fanOut = new MemoryFanOut(queue, late.tasks, (e) => errors.push(e));
  const events: LifecycleEvent[] = [];
  const aborts = new BranchAborts();
  const deps: SpawnerDeps = {
    store,
    queue,
    fanOut,
    events: {
      publish: async (e) => {
        events.push(...e);
        aborts.handle(e);
      },
    },
    signalFor: (scope, branchId) => aborts.signalFor(scope, branchId),
    invoker: options.invoker ?? new KindRouter({ script: new ScriptInvoker() }),
    clock: { now: () => Date.now() },
    aggregators: new AggregatorRegistry(options.aggregators),
    faults: options.faults,
  };
  late.bind(retriedOnCrash(fanOutTasks(deps)));
  let inFlight = 0;
  let pumping = false;
  /** Deliveries of each message so far (SQS's ApproximateReceiveCount). */
  const receives = new Map<string, number>();
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    const limit = options.concurrency ?? 8;
    const active = new Set<Promise<void>>();
    while (pumping) {
      if (active.size >= limit) await Promise.race(active);
      const message = await queue.receive();
      if (!pumping) break;
      inFlight++;
      const receiveCount = (receives.get(message.messageId) ?? 0) + 1;
      receives.set(message.messageId, receiveCount);
      const p = executeStep(deps, message.body, { messageId: message.messageId, receiveCount })
        .then(() => undefined)
        .catch((e) => {
          // A simulated crash: the message was not acknowledged, so it comes back; so does a step
          // that failed transiently (the step worker's backoff, without the wait).
          if (e instanceof HarnessCrash || e instanceof TransientError) void queue.redeliver(message);
          else errors.push(e);
        })
        .finally(() => {
          inFlight--;
          active.delete(p);
        });
      active.add(p);
    }
  };

  async function run(input: Omit<StartRunInput, 'team'> & { team?: string }): Promise<{
    run: RunRecord;
    branches: BranchRecord[];
    events: LifecycleEvent[];
  }> {
    const team = input.team ?? 'team-a';
    const { runId } = await startRun(deps, { ...input, team });
    return outcome({ team, runId });
  }

  /** Drives the run again as a restarted process would (resumeRun), then to its end. */
  async function resume(scope: Scope) {
    await resumeRun(deps, scope);
    return outcome(scope);
  }

  async function outcome(scope: Scope) {
    void pump();
    const finished = await waitForEnd(scope);
    return { run: finished, branches: await store.listBranches(scope), events: events.filter((e) => e.runId === scope.runId) };
  }

  /** The run is over when it is terminal and its work is quiescent (nothing queued, running or fanning out). */
  async function waitForEnd(scope: Scope): Promise<RunRecord> {
    // Rounds with nothing queued or running while a fan-out execution is still active: an ended
    // run's fan-out that nothing will ever stop (its execution waits forever on a token).
    let idle = 0;
    for (;;) {
      if (errors.length) throw errors[0];
      await new Promise<void>((resolve) => setImmediate(resolve));
      idle = queue.depth === 0 && inFlight === 0 && fanOut.activeExecutions() > 0 ? idle + 1 : 0;
      if (idle > 1000 && (await store.getRun(scope))?.status !== 'RUNNING') {
        throw new Error(`run ${scope.runId} ended with nothing queued or running, but ${fanOut.activeExecutions()} fan-out execution(s) still running`);
      }
      if (queue.depth === 0 && inFlight === 0 && fanOut.activeExecutions() === 0) {
        const current = await store.getRun(scope);
        if (queue.depth === 0 && inFlight === 0 && fanOut.activeExecutions() === 0) {
          if (errors.length) throw errors[0];
          if (current && current.status !== 'RUNNING') return current;
          // A suspended branch's wake-up is on its way (a wait, a callback's timeout).
          if (queue.delayed > 0) {
            await new Promise<void>((resolve) => setTimeout(resolve, 10));
            continue;
          }
          throw new Error(`run ${scope.runId} stalled: nothing queued or running\n${JSON.stringify(await store.listBranches(scope), null, 1).slice(0, 4000)}`);
        }
      }
    }
  }

  return { deps, store, queue, fanOut, events, errors, run, resume, stop: () => void (pumping = false) };
}

/** Thrown by a test's fault injection: the harness delivers the message again. */
export class HarnessCrash extends Error {}

/**
 * The fan-out's tasks as its state machine runs them: a task that crashed is retried (its
 * retrier), its retry count counting these retries too.
 */
function retriedOnCrash(tasks: FanOutTasks): FanOutTasks {
  const retried = async (task: (retries: number) => Promise<void>): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await task(attempt);
      } catch (error) {
        if (!(error instanceof HarnessCrash) || attempt >= 10) throw error;
      }
    }
  };
  return {
    recordChildFailure: (input) => retried((n) => tasks.recordChildFailure({ ...input, retryCount: (input.retryCount ?? 0) + n })),
    aggregate: (input) => retried((n) => tasks.aggregate({ ...input, retryCount: (input.retryCount ?? 0) + n })),
    recordFanOutFailure: (input) => retried(() => tasks.recordFanOutFailure(input)),
    dispatchBatch: (input) => retried(() => tasks.dispatchBatch(input)),
    recordBatchFailure: (input) => retried((n) => tasks.recordBatchFailure({ ...input, retryCount: (input.retryCount ?? 0) + n })),
  };
}

export function scriptAgents(defs: Record<string, Omit<ScriptAgentDefinition, 'kind'>>): AgentRegistry {
  return Object.fromEntries(Object.entries(defs).map(([name, def]): [string, AgentDefinition] => [name, { kind: 'script', ...def }]));
}

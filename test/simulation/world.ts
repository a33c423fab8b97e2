/**
 * A deterministic simulation of the use cases on the in-memory ports. One seeded scheduler owns
 * every source of nondeterminism: which queued message, fan-out task or suspended call runs
 * next; duplicate sends and redeliveries while a step still runs; a crash at any awaited port
 * call (before or after its effect); transient agent errors; agent latency (every call yields);
 * a cancel at any moment; a process restart (in-flight work and fan-out executions lost,
 * messages back in the queue) followed by `resume`; and user code that misbehaves (an agent that
 * hangs ignoring its signal, answers only after its branch ended, throws, exits, or changes what
 * it was given), with the run's deadline ending the run when nothing else would.
 *
 * Every port call yields to the scheduler, which resumes exactly one suspended call at a time and
 * then lets the microtasks drain (nothing here uses timers or I/O), so a seed replays exactly.
 */
import { AggregatorRegistry, type ChildResult } from '../../core/aggregators';
import { AgentInvocationError, TransientError } from '../../core/errors';
import { endRunAtDeadline } from '../../core/use-cases/budget-gate';
import { BranchAborts } from '../../adapters/memory/branch-aborts';
import type { LifecycleEvent } from '../../core/events';
import { ROOT_BRANCH_ID, type BranchRecord, type Scope } from '../../core/model';
import type { WaitFor } from '../../core/protocol';
import type {
  AgentInvocation,
  AgentInvoker,
  AgentReply,
  BlobStore,
  BranchStore,
  ChildReport,
  FanOutOrchestrator,
  FanOutRequest,
  StepMessage,
  StepQueue,
} from '../../core/ports';
import {
  aggregateSyncPoint,
  cancelRun,
  dispatchBatch,
  recordBatchFailure,
  executeStep,
  recordChildFailure,
  resumeRun,
  startRun,
  type SpawnerDeps,
} from '../../core/use-cases';
import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { MemoryBlobStore } from '../../adapters/blobs/memory-blob-store';
import { stableChance } from '../../core/stable-chance';
import { readMark, type WorkMark } from '../../core/work-mark';
import { answerCallback } from '../../core/use-cases/suspend';
import { planFanOut, type FanOutDispatch, type FanOutPlan } from '../../core/fan-out-plan';

/** SIM_TRACE=1 prints every port call of a replayed seed (with SIM_SEED) and every fan-out start and stop. */
const TRACE = Boolean(process.env.SIM_TRACE);

// --- randomness ------------------------------------------------------------------------------

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed * 2654435761) >>> 0 || 1;
  }
  next(): number {
    // mulberry32
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

// --- the generated scenario ------------------------------------------------------------------

export interface Scenario {
  seed: number;
  maxDepth: number;
  maxWidth: number;
  waitFor: 'all' | 'mixed';
  maxFailedFraction: number;
  groups: boolean;
  failures: boolean;
  /** The fan-out may time children out. */
  timeouts: boolean;
  /** Some spawns name an `agent:` aggregator (an AGGREGATION branch after the children). */
  agentAggregators: boolean;
  /** Final answers carry more than the claim check's 1 KB: results, aggregates and memories go to the blob store. */
  largeValues: boolean;
  /** Spawns carry per-fan-out options (max_concurrency, tolerated_failures, on_failure, complete_when): see spawnOptionsFor. */
  fanOutOptions: boolean;
  /** Leaves pause: durable waits and callbacks (answered once, twice, late or never: see World.answerWork). */
  waits: boolean;
}

export function generateScenario(seed: number): Scenario {
  const r = new Rng(seed ^ 0x5eed);
  return {
    seed,
    maxDepth: 1 + r.int(3),
    maxWidth: 1 + r.int(4),
    waitFor: r.chance(0.6) ? 'all' : 'mixed',
    maxFailedFraction: r.pick([0.34, 0.5, 1]),
    groups: r.chance(0.4),
    failures: r.chance(0.6),
    timeouts: r.chance(0.2),
    agentAggregators: r.chance(0.3),
    // Drawn last: the earlier fields of every seed stay what they were.
    largeValues: r.chance(0.4),
    fanOutOptions: r.chance(0.5),
    waits: r.chance(0.4),
  };
}

/** The agent: what it answers is a function of the seed, the branch and the step (and its input). */
export class ScenarioAgent implements AgentInvoker {
  constructor(
    private readonly scenario: Scenario,
    private readonly world: World,
  ) {}

  async invoke(call: AgentInvocation): Promise<AgentReply> {
    await this.world.yield('agent latency');
    if (this.world.faultChance('transient')) throw new TransientError('simulated throttling');
    const misbehaviour = this.world.userCodeFault();
    if (misbehaviour) return this.misbehave(misbehaviour, call);
    await this.world.yield('agent reply');
    return { response: this.respond(call) };
  }

  /** What user code does to the runtime (see adapters/modules/module-host for the real boundary). */
  private async misbehave(kind: UserCodeFault, call: AgentInvocation): Promise<AgentReply> {
    switch (kind) {
      case 'hang':
        // Ignores its signal: only the runtime ending the branch or the run gets past it.
        this.world.hung++;
        return new Promise<AgentReply>(() => undefined);
      case 'late': {
        // Answers only once its branch or run has ended: the answer must be dropped.
        this.world.hung++;
        const signal = call.signal;
        await new Promise<void>((resolve) => (signal ? signal.addEventListener('abort', () => resolve(), { once: true }) : undefined));
        return { response: { next_action: 'final_response', content: { late: call.branchId } } };
      }
      case 'throw':
        throw new AgentInvocationError(call.agentName, 'left an unhandled rejection: simulated');
      case 'exit':
        // The call that exited fails; one that shared its worker is retried.
        if (stableChance(this.scenario.seed, `${call.branchId}|${call.step}|exit`) < 0.5) throw new AgentInvocationError(call.agentName, 'called process.exit(0)');
        throw new TransientError('the call was cut short: another call made process.exit(0)');
      case 'mutation': {
        // It gets copies (the worker's structured clone), changes them, and answers: the store must not change.
        const before = JSON.stringify((await this.world.store.getBranch(this.world.scope, call.branchId))?.input ?? null);
        const given = structuredClone({ input: call.input, memory: call.memory });
        scramble(given);
        const after = JSON.stringify((await this.world.store.getBranch(this.world.scope, call.branchId))?.input ?? null);
        if (before !== after) this.world.violations.push(`an agent's change to its input reached the store (${call.branchId})`);
        await this.world.yield('agent reply');
        return { response: this.respond(call) };
      }
    }
  }

  private respond(call: AgentInvocation): unknown {
    const s = this.scenario;
    const at = (what: string) => stableChance(s.seed, `${call.branchId}|${what}`);
    const depth = call.branchId.split('.').length - 1;
    const pad = s.largeValues ? { pad: 'v'.repeat(1_200) } : {};
    const final = { next_action: 'final_response', content: { by: call.branchId, got: call.input ?? null, ...pad } };
    if (call.agentName === 'Helper') return final;
    if (call.step > 0) return final;
    const kind = at('kind');
    if (depth < s.maxDepth && kind < 0.55) {
      const width = 1 + Math.floor(at('width') * s.maxWidth);
      let waitFor: WaitFor = 'all';
      const aggregator = s.agentAggregators && at('aggregator') < 0.5 ? { aggregator: 'agent:Helper' } : {};
      if (s.waitFor === 'mixed') waitFor = at('wait') < 0.3 ? 'all' : at('wait') < 0.65 ? 'any' : Math.max(1, Math.floor(width / 2));
      // A completion function replaces wait_for; otherwise the options go beside it.
      const options = s.fanOutOptions ? spawnOptionsFor(s, call.branchId) : {};
      const rule = 'complete_when' in options ? options : { wait_for: waitFor, ...options };
      if (s.groups && at('groups') < 0.4) {
        const inputs = Array.from({ length: width }, (_, i) => `part-${i}`);
        return { next_actions: [inputs, ['tail']], ...rule, ...aggregator };
      }
      return { next_action: 'parallel_invoke', agents: Array.from({ length: width }, () => 'Node'), ...rule, ...aggregator };
    }
    if (s.waits && at('pause') < 0.35) {
      // Woken (step 1), the leaf answers `final` with what it got: the wait's input or the callback's answer.
      if (at('pause-kind') < 0.5) return { next_action: 'wait', seconds: 1 + Math.floor(at('seconds') * 3), ...(at('wait-input') < 0.5 ? { input: 'rested' } : {}) };
      return { next_action: 'wait_for_callback', timeout_seconds: 2 + Math.floor(at('timeout') * 4), message: { approve: call.branchId } };
    }
    if (kind < 0.65) return { next_action: 'invoke_agent', action_input: { agent: 'Helper', input: 'help' } };
    if (s.failures && kind < 0.78) throw new Error(`agent failure at ${call.branchId}`);
    if (s.failures && kind < 0.83 && call.step === 0) return 'not json at all';
    return final;
  }
}

/**
 * The per-fan-out options a spawning branch gives (a function of the seed and the branch): its
 * own concurrency (checked against what reaches the fan-out), a tolerated count or fraction,
 * `on_failure: continue`, and sometimes a completion function instead of wait_for.
 */
export function spawnOptionsFor(s: Scenario, branchId: string): Record<string, unknown> {
  const at = (what: string) => stableChance(s.seed, `${branchId}|option|${what}`);
  const options: Record<string, unknown> = {};
  if (at('concurrency') < 0.6) options.max_concurrency = askedConcurrency(s, branchId)!;
  const tolerance = at('tolerance');
  if (tolerance < 0.4) options.tolerated_failures = Math.floor(at('count') * 3);
  else if (tolerance < 0.6) options.tolerated_failures = at('fraction') < 0.5 ? 0.25 : 0.5;
  if (at('on_failure') < 0.5) options.on_failure = 'continue';
  else if (at('on_failure') < 0.6) options.on_failure = 'fail';
  if (at('complete_when') < 0.25) options.complete_when = `fn:${SIM_COMPLETION_FN}`;
  return options;
}

/** The max_concurrency a branch asks for its spawns (undefined: none, the run's limit applies). */
export function askedConcurrency(s: Scenario, branchId: string): number | undefined {
  const at = (what: string) => stableChance(s.seed, `${branchId}|option|${what}`);
  return s.fanOutOptions && at('concurrency') < 0.6 ? 1 + Math.floor(at('concurrency-n') * 4) : undefined;
}

export const SIM_COMPLETION_FN = 'firstOrAllOthers';

/** The simulation's completion function: done when the first child succeeded, or every other one did. */
export function firstOrAllOthers(children: ChildResult[]): boolean {
  const ok = (c: ChildResult | undefined) => c?.status === 'COMPLETED';
  return ok(children[0]) || (children.length > 1 && children.slice(1).every(ok));
}

export type UserCodeFault = 'hang' | 'late' | 'throw' | 'exit' | 'mutation';
const USER_CODE_FAULTS: readonly UserCodeFault[] = ['hang', 'late', 'throw', 'exit', 'mutation'];

/** Changes every object and array in a value (what a careless agent does to its arguments). */
function scramble(value: unknown): void {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach(scramble);
    value.push('scrambled');
    return;
  }
  for (const key of Object.keys(value)) scramble((value as Record<string, unknown>)[key]);
  (value as Record<string, unknown>).scrambled = true;
}

// --- the world -------------------------------------------------------------------------------

/** The reference blob store, whose put may be the last thing a work does (see FaultPlan.crashAfterBlob). */
export class SimBlobStore implements BlobStore {
  private readonly inner = new MemoryBlobStore();
  constructor(private readonly world: World) {}

  async put(scope: Scope, content: string): Promise<string> {
    const ref = await this.inner.put(scope, content);
    if (this.world.crashAfterBlob()) throw new SimCrash('after a blob put, before the item that refers to it');
    return ref;
  }

  get(scope: Scope, ref: string): Promise<string> {
    return this.inner.get(scope, ref);
  }
}

export class SimCrash extends Error {
  constructor(where: string) {
    super(`simulated crash at ${where}`);
    this.name = 'SimCrash';
  }
}

export interface FaultPlan {
  crash: number;
  crashAfter: number;
  duplicate: number;
  redeliverWhileRunning: number;
  transient: number;
  cancel: boolean;
  restarts: number;
  maxCrashes: number;
  /** A crash right after a large value's blob was written, before the item referring to it (the claim check). */
  crashAfterBlob: number;
  /** An agent call misbehaves (hang, late answer, throw, exit, mutation): see ScenarioAgent. */
  userCode: number;
}

export const NO_FAULTS: FaultPlan = {
  crash: 0,
  crashAfter: 0,
  duplicate: 0,
  redeliverWhileRunning: 0,
  transient: 0,
  cancel: false,
  restarts: 0,
  maxCrashes: 0,
  crashAfterBlob: 0,
  userCode: 0,
};

export function generateFaults(seed: number): FaultPlan {
  const r = new Rng(seed ^ 0xfa17);
  return {
    crash: r.pick([0, 0.01, 0.03, 0.06]),
    crashAfter: r.pick([0, 0.01, 0.03]),
    duplicate: r.pick([0, 0.1, 0.3]),
    redeliverWhileRunning: r.pick([0, 0.02, 0.05]),
    transient: r.pick([0, 0.05, 0.15]),
    cancel: r.chance(0.25),
    restarts: r.pick([0, 0, 1, 2]),
    maxCrashes: 12,
    // Drawn last: the earlier faults of every seed stay what they were.
    crashAfterBlob: r.pick([0, 0.05, 0.2]),
    userCode: r.pick([0, 0, 0.05, 0.15]),
  };
}

interface Suspended {
  resume(): void;
  fail(error: Error): void;
  epoch: number;
  work: Work;
}

interface Work {
  id: number;
  kind: string;
  startedAt: number;
}

interface Message {
  id: string;
  body: StepMessage;
  delivering: number;
  /** A delayed message (a wake-up) is not offered before this time of the world's clock. */
  visibleAt?: number;
}

interface Startable {
  label: string;
  weight: number;
  start(): void;
}

interface Execution {
  request: FanOutRequest;
  /** The batched path: its plan (the iterations are batches, keyed `batch-<first>`). */
  batched?: FanOutPlan;
  next: number;
  inFlight: Set<string>;
  failing: Set<string>;
  stopped: boolean;
  aggregating: boolean;
  finished: boolean;
}

export interface Violation {
  seed: number;
  message: string;
}

export class World {
  readonly rng: Rng;
  readonly events: LifecycleEvent[] = [];
  readonly injected: Record<string, number> = {};
  /** Deliveries of each message id so far. */
  private readonly receives = new Map<string, number>();
  readonly violations: string[] = [];
  /** The claim check's blobs, with the crash between a blob's write and its reference's. */
  readonly blobs = new SimBlobStore(this);
  readonly store: MemoryBranchStore = new MemoryBranchStore({ blobs: this.blobs });
  /** Its own stream, so that seeds without large values schedule exactly as before. */
  private readonly blobRng: Rng;
  /** Its own stream too: seeds without user-code faults schedule exactly as before. */
  private readonly userRng: Rng;
  /** Agent calls that never return by themselves (hung, or late: waiting for their branch's end). */
  hung = 0;
  private deadlinePending = true;
  /** Aborts the agent calls of branches that ended (the runtime's BranchAborts, fed the events). */
  private readonly aborts = new BranchAborts();
  readonly scope: Scope;
  clock = 0;
  steps = 0;
  epoch = 0;
  private crashes = 0;
  private restartsLeft: number;
  private cancelPending: boolean;
  cancelDoneAt: number | undefined;
  private suspended: Suspended[] = [];
  private current: Work | undefined;
  private workSeq = 0;
  private messages: Message[] = [];
  private messageSeq = 0;
  private executions = new Map<string, Execution>();
  private pendingWork: Startable[] = [];
  private deps: SpawnerDeps;
  /** Successful resumes/next-group opens per sync point (`parent#seq`). */
  readonly syncAdvances = new Map<string, number>();
  /** Every fan-out start, restarts included (their maxConcurrency is checked against the spawn's options). */
  readonly fanOutStarts: FanOutRequest[] = [];
  private readonly terminal = new Map<string, string>();

  constructor(
    readonly scenario: Scenario,
    readonly faults: FaultPlan,
    schedulerSeed: number,
    /** How fan-outs dispatch (the use cases' choice; the state machine below runs either). */
    readonly dispatch: FanOutDispatch = 'per-child',
  ) {
    this.rng = new Rng(schedulerSeed);
    this.blobRng = new Rng(schedulerSeed ^ 0xb10b);
    this.userRng = new Rng(schedulerSeed ^ 0xc0de);
    this.restartsLeft = faults.restarts;
    this.cancelPending = faults.cancel;
    this.scope = { team: 'sim', runId: `run-${scenario.seed}` };
    this.deps = this.makeDeps();
  }

  faultChance(kind: 'transient'): boolean {
    if (this.rng.chance(this.faults.transient)) {
      this.count(kind);
      return true;
    }
    return false;
  }

  /** The misbehaviour of this agent call, if any. */
  userCodeFault(): UserCodeFault | undefined {
    if (!this.faults.userCode || !this.userRng.chance(this.faults.userCode)) return undefined;
    const kind = this.userRng.pick(USER_CODE_FAULTS);
    this.count(`user code: ${kind}`);
    return kind;
  }

  /** Whether the work that just wrote a blob dies before it writes the item that refers to it. */
  crashAfterBlob(): boolean {
    if (this.crashes >= this.faults.maxCrashes || !this.blobRng.chance(this.faults.crashAfterBlob)) return false;
    this.crashes++;
    this.count('crash between a blob write and its reference');
    return true;
  }

  private count(kind: string): void {
    this.injected[kind] = (this.injected[kind] ?? 0) + 1;
  }

  /** A suspended call: the scheduler resumes it (or crashes it) when it picks it. */
  yield(where: string): Promise<void> {
    const work = this.current;
    if (!work) throw new Error(`a port was called outside any work (${where})`);
    return new Promise<void>((resolve, reject) => {
      this.suspended.push({ resume: resolve, fail: reject, epoch: this.epoch, work });
    });
  }

  /** Wraps a port call: it yields, may crash before its effect, does it, may crash after. */
  private async portCall<T>(where: string, effect: () => Promise<T>): Promise<T> {
    await this.yield(where);
    if (this.crashes < this.faults.maxCrashes && this.rng.chance(this.faults.crash)) {
      this.crashes++;
      this.count('crash before a port call');
      if (TRACE) console.log(`[${this.steps}] epoch ${this.epoch} ${this.current?.kind} #${this.current?.id}: CRASH before ${where}`);
      throw new SimCrash(`before ${where}`);
    }
    const result = await effect();
    if (TRACE) console.log(`[${this.steps}] epoch ${this.epoch} ${this.current?.kind} #${this.current?.id}: ${where} -> ${JSON.stringify(result)?.slice(0, 160)}`);
    if (this.crashes < this.faults.maxCrashes && this.rng.chance(this.faults.crashAfter)) {
      this.crashes++;
      this.count('crash after a port call');
      if (TRACE) console.log(`[${this.steps}] epoch ${this.epoch} ${this.current?.kind} #${this.current?.id}: CRASH after ${where}`);
      throw new SimCrash(`after ${where}`);
    }
    return result;
  }

  private makeDeps(): SpawnerDeps {
    const store = this.store;
    const portCall = <T>(where: string, effect: () => Promise<T>) => this.portCall(where, effect);
    const observe = (method: string, args: unknown[], result: unknown) => this.observe(method, args, result);
    const wrapped = new Proxy(store, {
      get(target, name: string) {
        const original = (target as unknown as Record<string, unknown>)[name];
        if (typeof original !== 'function') return original;
        return (...args: unknown[]) =>
          portCall(`store.${name}`, async () => {
            const result = await (original as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            observe(name, args, result);
            return result;
          });
      },
    }) as BranchStore;
    // The simulation drives the use cases, not the step worker: nothing asks for a backoff.
    const queue: StepQueue = {
      send: (messages, options) => this.portCall('queue.send', async () => this.send(messages, options?.delaySeconds)),
      redeliverAfter: async () => {
        throw new Error('the simulation has no receipts');
      },
    };
    const fanOut: FanOutOrchestrator = {
      start: (request) => this.portCall('fanOut.start', async () => this.startExecution(request)),
      childFinished: (token, report) => this.portCall('fanOut.childFinished', async () => this.childFinished(token, report)),
      stop: (name) => this.portCall('fanOut.stop', async () => this.stopExecution(name)),
    };
    return {
      store: wrapped,
      queue,
      fanOut,
      events: {
        publish: (events) =>
          this.portCall('events.publish', async () => {
            this.events.push(...events);
            this.aborts.handle(events);
          }),
      },
      signalFor: (scope, branchId) => this.aborts.signalFor(scope, branchId),
      invoker: new ScenarioAgent(this.scenario, this),
      clock: { now: () => this.clock },
      aggregators: new AggregatorRegistry({ [SIM_COMPLETION_FN]: firstOrAllOthers }),
      runCache: new Map(),
      fanOutDispatch: this.dispatch,
    };
  }

  // --- checks made as the store changes --------------------------------------------------

  private observe(method: string, args: unknown[], result: unknown): void {
    if (method === 'createBranches') {
      const created = result as string[];
      if (created.length && this.afterCancel()) this.violations.push(`created ${created.join(',')} after the cancel completed (work ${this.current?.kind})`);
    }
    if ((method === 'updateBranch' || method === 'transitionBranch') && result) {
      const b = result as BranchRecord;
      const before = this.terminal.get(b.id);
      const now = `${b.status}|${JSON.stringify(b.result ?? null)}|${b.error ?? ''}`;
      if (before !== undefined && before !== now) this.violations.push(`branch ${b.id} changed after it ended: ${before} -> ${now}`);
      if (['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(b.status)) {
        this.terminal.set(b.id, now);
        if (b.status !== 'CANCELLED' && before === undefined && this.afterCancel()) {
          this.violations.push(`branch ${b.id} ended ${b.status} after the cancel completed (work ${this.current?.kind})`);
        }
      }
      const patch = (method === 'updateBranch' ? args[3] : args[4]) as { advancedBy?: WorkMark } | undefined;
      const mark = patch?.advancedBy === undefined ? undefined : readMark(patch.advancedBy);
      if (mark?.kind === 'sync') {
        const key = `${b.id}#${mark.seq}`;
        this.syncAdvances.set(key, (this.syncAdvances.get(key) ?? 0) + 1);
      }
      if (mark?.kind === 'callback') {
        // A write that took an answer (whether or not its client heard so: a crash may cut the reply).
        const key = `${b.id}@${mark.step}`;
        this.answerWrites.set(key, (this.answerWrites.get(key) ?? 0) + 1);
      }
    }
  }

  /** True when the current work started after a cancel had completed (no grace for it). */
  private afterCancel(): boolean {
    return this.cancelDoneAt !== undefined && this.current !== undefined && this.current.startedAt > this.cancelDoneAt;
  }

  // --- the queue ---------------------------------------------------------------------------

  private send(messages: StepMessage[], delaySeconds = 0): void {
    const delayed = delaySeconds > 0 ? { visibleAt: this.clock + Math.ceil(delaySeconds) * 1000 } : {};
    for (const body of messages) {
      const id = `m${++this.messageSeq}`;
      this.messages.push({ id, body: structuredClone(body), delivering: 0, ...delayed });
      if (this.rng.chance(this.faults.duplicate)) {
        // A duplicate send (another message) or the same message delivered twice.
        const same = this.rng.chance(0.5);
        this.messages.push({ id: same ? id : `m${++this.messageSeq}`, body: structuredClone(body), delivering: 0, ...delayed });
        this.count(same ? 'duplicate delivery (redelivered)' : 'duplicate delivery');
      }
    }
  }

  private deliver(message: Message): void {
    message.delivering++;
    const epoch = this.epoch;
    // SQS's ApproximateReceiveCount: every delivery of the same message id counts.
    const receiveCount = (this.receives.get(message.id) ?? 0) + 1;
    this.receives.set(message.id, receiveCount);
    this.startWork(`step ${message.body.branchId}@${message.body.step}`, () => executeStep(this.deps, message.body, { messageId: message.id, receiveCount }), {
      done: () => {
        if (epoch === this.epoch) this.messages = this.messages.filter((m) => m !== message);
      },
      failed: () => {
        // Not acknowledged: back after its visibility timeout.
        if (epoch === this.epoch) message.delivering--;
      },
    });
  }

  // --- the fan-out (the state machine's semantics) ------------------------------------------

  private startExecution(request: FanOutRequest): void {
    this.fanOutStarts.push(structuredClone(request));
    if (TRACE) console.log(`  fan-out start ${request.executionName}${this.executions.has(request.executionName) ? ' (exists)' : ''}`);
    if (this.executions.has(request.executionName)) return;
    const plan = planFanOut(request.count, request.maxConcurrency, request.dispatch);
    this.executions.set(request.executionName, {
      request: structuredClone(request),
      ...(plan.mode === 'BATCHED' ? { batched: plan } : {}),
      next: 0,
      inFlight: new Set(),
      failing: new Set(),
      stopped: false,
      aggregating: false,
      finished: false,
    });
  }

  private childFinished(token: string, _report: ChildReport): void {
    const [name, branchId] = token.split('|');
    const execution = this.executions.get(name);
    execution?.inFlight.delete(branchId);
  }

  private stopExecution(name: string): void {
    if (TRACE) console.log(`  fan-out stop ${name}${this.executions.has(name) ? '' : ' (none)'}`);
    const execution = this.executions.get(name);
    if (execution) execution.stopped = true;
  }

  get runningExecutions(): string[] {
    return [...this.executions.entries()].filter(([, e]) => !e.stopped && !e.finished).map(([n]) => n);
  }

  private executionWork(name: string, e: Execution): Startable[] {
    if (e.stopped || e.finished || e.aggregating) return [];
    if (e.batched) return this.batchedExecutionWork(name, e, e.batched);
    const { team, runId, parentId, seq } = e.request;
    const out: Startable[] = [];
    if (e.next < e.request.count && e.inFlight.size + e.failing.size < e.request.maxConcurrency) {
      out.push({
        label: 'dispatch',
        weight: 3,
        start: () => {
          const child = { branchId: `${parentId}.${e.request.firstIndex + e.next++}` };
          e.inFlight.add(child.branchId);
          // Dispatching is the state machine's own send (no crash of ours in between).
          this.send([{ team, runId, branchId: child.branchId, step: 0, taskToken: `${name}|${child.branchId}|${this.epoch}` }]);
        },
      });
    }
    if (this.scenario.timeouts) {
      for (const branchId of e.inFlight) {
        out.push({
          label: 'timeout',
          weight: 0.05,
          start: () => {
            e.inFlight.delete(branchId);
            e.failing.add(branchId);
            this.count('child timeout');
            this.retried(`RecordChildFailure ${branchId}`, (retryCount) =>
              recordChildFailure(this.deps, { team, runId, parentId, seq, branchId, error: 'States.Timeout', retryCount }), e,
            ).then(() => e.failing.delete(branchId));
          },
        });
      }
    }
    if (e.next >= e.request.count && e.inFlight.size === 0 && e.failing.size === 0) out.push(this.aggregateWork(e));
    return out;
  }

  /** The Map is done: Aggregate (retried until it succeeds). */
  private aggregateWork(e: Execution): Startable {
    const { team, runId, parentId, seq } = e.request;
    return {
      label: 'aggregate',
      weight: 2,
      start: () => {
        e.aggregating = true;
        void this.retried(`Aggregate ${parentId}#${seq}`, (retryCount) => aggregateSyncPoint(this.deps, { team, runId, parentId, seq, retryCount }), e).then(
          () => (e.finished = true),
        );
      },
    };
  }

  /**
   * The batched path: one iteration per batch, `batchConcurrency` at once. DispatchBatch is a
   * Lambda task (it may crash: retried, with the same token here); the batch's token comes back
   * through childFinished; past its timeout, RecordBatchFailure.
   */
  private batchedExecutionWork(name: string, e: Execution, plan: FanOutPlan): Startable[] {
    const { team, runId, parentId, seq, firstIndex, count } = e.request;
    const out: Startable[] = [];
    const offset = e.next * plan.batchSize;
    if (offset < count && e.inFlight.size + e.failing.size < plan.batchConcurrency) {
      out.push({
        label: 'dispatch',
        weight: 3,
        start: () => {
          e.next++;
          const first = firstIndex + offset;
          const key = `batch-${first}`;
          e.inFlight.add(key);
          const input = { team, runId, parentId, seq, first, count: Math.min(plan.batchSize, count - offset), window: plan.window };
          void this.retried(`DispatchBatch ${parentId}#${seq} ${key}`, () => dispatchBatch(this.deps, { ...input, taskToken: `${name}|${key}|${this.epoch}` }), e);
        },
      });
    }
    if (this.scenario.timeouts) {
      for (const key of e.inFlight) {
        out.push({
          label: 'timeout',
          weight: 0.05,
          start: () => {
            e.inFlight.delete(key);
            e.failing.add(key);
            this.count('batch timeout');
            const first = Number(key.slice('batch-'.length));
            const batchCount = Math.min(plan.batchSize, firstIndex + count - first);
            this.retried(`RecordBatchFailure ${key}`, (retryCount) =>
              recordBatchFailure(this.deps, { team, runId, parentId, seq, first, count: batchCount, error: 'States.Timeout', retryCount }), e,
            ).then(() => e.failing.delete(key));
          },
        });
      }
    }
    if (offset >= count && e.inFlight.size === 0 && e.failing.size === 0) out.push(this.aggregateWork(e));
    return out;
  }

  /**
   * A task the state machine retries until it succeeds (its retrier), in this process; as Step
   * Functions does, a task of an execution that was stopped meanwhile is not retried. The task is
   * given its retry count (`$$.State.RetryCount`: 0 on the first attempt).
   */
  private retried(kind: string, task: (retryCount: number) => Promise<unknown>, execution?: Execution): Promise<void> {
    const epoch = this.epoch;
    let retryCount = 0;
    return new Promise<void>((resolve) => {
      const attempt = () => {
        if (epoch !== this.epoch) return;
        const count = retryCount++;
        this.startWork(kind, () => task(count), {
          done: resolve,
          failed: () => {
            if (TRACE) console.log(`  task ${kind} failed${execution?.stopped ? ' (retry dropped by a stop)' : ''}`);
            if (execution?.stopped) return void this.count('task retry dropped by a stop');
            this.pendingWork.push({ label: `retry ${kind}`, weight: 1, start: attempt });
          },
        });
      };
      attempt();
    });
  }

  // --- works -------------------------------------------------------------------------------

  private startWork(kind: string, body: () => Promise<unknown>, on: { done(): void; failed(error: unknown): void }): void {
    const work: Work = { id: ++this.workSeq, kind, startedAt: this.steps };
    // A client's call (start, cancel) that a restart cuts off fails on the client's side: it retries.
    if (kind === 'start' || kind === 'cancel' || kind === 'answer') this.clientCalls.set(work, () => on.failed(new SimCrash('restart')));
    this.lastStarted = work;
    const previous = this.current;
    this.current = work;
    const epoch = this.epoch;
    let promise: Promise<unknown>;
    try {
      promise = body();
    } finally {
      this.current = previous;
    }
    promise.then(
      () => {
        this.clientCalls.delete(work);
        if (epoch === this.epoch) on.done();
      },
      (error: unknown) => {
        this.clientCalls.delete(work);
        if (epoch !== this.epoch) return;
        if (!(error instanceof SimCrash) && !(error instanceof TransientError)) {
          this.violations.push(`work ${kind} threw ${(error as Error)?.stack ?? String(error)}`);
        }
        on.failed(error);
      },
    );
  }

  private restart(): void {
    this.restartsLeft--;
    this.count('process restart');
    this.epoch++;
    // Everything in memory is lost: suspended calls, fan-out executions, the run cache.
    this.suspended = [];
    this.executions.clear();
    // A client's retries (start, cancel) live outside the process.
    this.pendingWork = this.pendingWork.filter((w) => w.label === 'retry start' || w.label === 'retry cancel' || w.label === 'retry answer');
    for (const m of this.messages) {
      m.delivering = 0;
      // A journal's replay makes a delayed message visible at once (the wake-up is sent again for the time left).
      if (m.visibleAt !== undefined && this.rng.chance(0.5)) m.visibleAt = undefined;
    }
    const cut = [...this.clientCalls.values()];
    this.clientCalls.clear();
    for (const fail of cut) fail();
    this.deps.runCache?.clear();
    this.resumePending = true;
  }

  private resumePending = false;
  private lastStarted: Work | undefined;
  private readonly clientCalls = new Map<Work, () => void>();

  private startables(): Startable[] {
    const out: Startable[] = [...this.pendingWork.map((w) => ({ ...w, start: () => this.takePending(w) }))];
    for (const m of this.messages) {
      if (m.visibleAt !== undefined && m.visibleAt > this.clock) continue;
      if (m.delivering === 0) out.push({ label: 'deliver', weight: 3, start: () => this.deliver(m) });
      else if (this.faults.redeliverWhileRunning && this.rng.chance(this.faults.redeliverWhileRunning)) {
        out.push({
          label: 'redeliver',
          weight: 0.2,
          start: () => {
            // Its visibility timeout ran out while its step still runs: SQS offers it again (a new
            // receipt; the first handler's delete does not remove this delivery).
            this.count('redelivery while running');
            const copy: Message = { id: m.id, body: structuredClone(m.body), delivering: 0 };
            this.messages.push(copy);
            this.deliver(copy);
          },
        });
      }
    }
    for (const [name, e] of this.executions) out.push(...this.executionWork(name, e));
    if (this.resumePending) {
      out.push({
        label: 'resume',
        weight: 5,
        start: () => {
          this.resumePending = false;
          const attempt = () =>
            this.startWork('resume', () => resumeRun(this.deps, this.scope).catch((error: unknown) => {
              // Restarted before the run was created: there is nothing to resume (its start is retried).
              if ((error as Error)?.name !== 'NotFoundError') throw error;
            }), {
              done: () => undefined,
              failed: () => this.pendingWork.push({ label: 'retry resume', weight: 1, start: attempt }),
            });
          attempt();
        },
      });
    }
    out.push(...this.answerWork());
    if (this.cancelPending) out.push({ label: 'cancel', weight: 0.15, start: () => this.cancel() });
    if (this.restartsLeft > 0 && !this.resumePending) out.push({ label: 'restart', weight: 0.08, start: () => this.restart() });
    return out;
  }

  private takePending(w: Startable): void {
    this.pendingWork = this.pendingWork.filter((p) => p !== w);
    w.start();
  }

  private cancel(): void {
    this.cancelPending = false;
    this.count('cancel');
    let refused = false;
    const attempt = () =>
      this.startWork(
        'cancel',
        () =>
          cancelRun(this.deps, this.scope).catch((error: unknown) => {
            // The run had ended already: nothing to cancel.
            if ((error as Error)?.name !== 'ConflictError' && (error as Error)?.name !== 'NotFoundError') throw error;
            refused = true;
          }),
        {
          done: () => {
            // Refused (no run yet, or it had ended): not a cancel.
            if (!refused) this.cancelDoneAt ??= this.steps;
          },
          // The client retries until it gets an answer.
          failed: () => this.pendingWork.push({ label: 'retry cancel', weight: 1, start: attempt }),
        },
      );
    attempt();
  }

  /** Nothing else to do but delayed messages: the clock jumps to the first of them (time passes). */
  private jumpToDelayed(): boolean {
    const due = this.messages.reduce((min, m) => (m.visibleAt !== undefined && m.visibleAt > this.clock ? Math.min(min, m.visibleAt) : min), Infinity);
    if (due === Infinity) return false;
    this.count('clock jump to a delayed message');
    this.clock = due;
    return true;
  }

  /** Answers given per callback (`branch@step`) and how many were told taken (202), or refused. */
  readonly answers = new Map<string, { planned: number; given: number; taken: number; refused: string[]; late: boolean }>();
  /** Writes that took an answer, per callback: at most one may. */
  readonly answerWrites = new Map<string, number>();

  /**
   * Whoever holds a callback's token answers it: once, twice (a duplicate, or a client retrying
   * after a crash cut its call), or never (the callback times out) — at any moment, before or
   * after a cancel, a timeout or a restart. Each answer is `{ answer: "<branch>@<step>" }`.
   */
  private answerWork(): Startable[] {
    const out: Startable[] = [];
    const seen = new Set<string>();
    for (const e of this.events) {
      if (e.type !== 'BranchWaitingForCallback') continue;
      const key = `${e.branchId}@${String(e.detail.step)}`;
      // The event may be told again (a crash, a resume): one plan, one answer at a time per callback.
      if (seen.has(key)) continue;
      seen.add(key);
      let plan = this.answers.get(key);
      if (!plan) {
        const p = stableChance(this.scenario.seed, `${key}|answers`);
        // Some answers come only once the callback's timeout has passed (the clock gets there).
        plan = { planned: p < 0.15 ? 0 : p < 0.3 ? 2 : 1, given: 0, taken: 0, refused: [], late: p > 0.8 };
        this.answers.set(key, plan);
      }
      const state = plan;
      if (state.given >= state.planned) continue;
      if (state.late && this.clock < e.detail.timeoutAt) continue;
      const token = String(e.detail.token);
      out.push({
        label: 'answer',
        weight: 0.3,
        start: () => {
          state.given++;
          this.count('callback answer');
          const attempt = () =>
            this.startWork('answer', async () => {
              try {
                await answerCallback(this.deps, this.scope, token, { answer: key });
                state.taken++;
              } catch (error) {
                const name = (error as Error)?.name;
                // The documented refusals: answered already (409), cancelled or timed out (410).
                if (name !== 'ConflictError' && name !== 'GoneError') throw error;
                state.refused.push(name);
              }
            }, {
              done: () => undefined,
              // The client did not get an answer (a crash, a restart): it asks again.
              failed: () => this.pendingWork.push({ label: 'retry answer', weight: 1, start: attempt }),
            });
          attempt();
        },
      });
    }
    return out;
  }

  /** maxRunSeconds runs out (the clock jumps past it) and the run ends FAILED, as the runtime's timer does. */
  private fireDeadline(): void {
    this.count('run deadline');
    this.clock += 3_600_001;
    this.startWork(
      'deadline',
      async () => {
        const run = await this.deps.store.getRun(this.scope);
        // Again after a crash too: ending the run over budget is safe to repeat (its cascade and events).
        if (run) await endRunAtDeadline(this.deps, run);
      },
      { done: () => undefined, failed: () => this.pendingWork.push({ label: 'retry deadline', weight: 1, start: () => this.fireDeadline() }) },
    );
  }

  /** Runs the seed to quiescence. */
  async run(maxSteps = 50_000): Promise<void> {
    const attempt = (): void =>
      this.startWork(
        'start',
        () =>
          startRun(this.deps, {
            team: this.scope.team,
            runId: this.scope.runId,
            name: 'sim',
            request: 'go',
            entry: 'Node',
            agents: { Node: { kind: 'module', module: 'sim', allowed: ['Helper'] }, Helper: { kind: 'module', module: 'sim', allowed: [] } },
            limits: { maxDepth: 4, maxFanOut: 10, maxBranches: 500, maxConcurrentBranches: 1 + (this.scenario.seed % 3), maxInvalidResponses: 1 },
            failurePolicy: { maxFailedFraction: this.scenario.maxFailedFraction },
          }),
        // The caller retries until it gets an answer.
        { done: () => undefined, failed: () => this.pendingWork.push({ label: 'retry start', weight: 1, start: attempt }) },
      );
    attempt();
    for (;;) {
      const live = this.suspended.filter((s) => s.epoch === this.epoch);
      this.suspended = live;
      const startables = this.startables();
      if (live.length === 0 && startables.length === 0 && this.jumpToDelayed()) continue;
      if (live.length === 0 && startables.length === 0) {
        // Agent calls that will never return: the runtime's timer ends the run at its deadline.
        if (this.hung > 0 && this.deadlinePending) {
          this.deadlinePending = false;
          this.pendingWork.push({ label: 'run deadline', weight: 1, start: () => this.fireDeadline() });
          continue;
        }
        return;
      }
      if (++this.steps > maxSteps) {
        this.violations.push(`no quiescence after ${maxSteps} scheduler steps`);
        return;
      }
      this.clock++;
      const total = live.length * 4 + startables.reduce((n, s) => n + s.weight, 0);
      let pick = this.rng.next() * total;
      if (pick < live.length * 4) {
        const i = Math.floor(pick / 4);
        const [s] = this.suspended.splice(i, 1);
        this.current = s.work;
        s.resume();
        await drain();
        this.current = undefined;
        continue;
      }
      pick -= live.length * 4;
      for (const s of startables) {
        pick -= s.weight;
        if (pick < 0 || s === startables[startables.length - 1]) {
          this.lastStarted = undefined;
          s.start();
          // The work just started runs on until it yields: it is the current work meanwhile.
          this.current = this.lastStarted;
          await drain();
          this.current = undefined;
          break;
        }
      }
    }
  }

  async branches(): Promise<BranchRecord[]> {
    return this.store.listBranches(this.scope);
  }
}

/** Lets every microtask run (the world uses no timers and no I/O). */
function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export { ROOT_BRANCH_ID };

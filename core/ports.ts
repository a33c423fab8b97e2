/**
 * The ports the use cases run on. Adapters implement them for AWS, for the embedded engines and
 * in memory; the in-memory ones (adapters/memory) are the reference for the contracts below.
 */
import type {
  AgentDefinition,
  BranchRecord,
  BranchStatus,
  BranchType,
  ChildOutcome,
  MemoryEntry,
  RunRecord,
  RunStatus,
  Scope,
  SyncCounters,
  SyncPointRecord,
} from './model';
import type { LifecycleEvent } from './events';

export type BranchPatch = Partial<
  Omit<BranchRecord, 'team' | 'runId' | 'id' | 'version' | 'parentId' | 'depth' | 'createdAt'>
>;
export type RunPatch = Partial<Pick<RunRecord, 'status' | 'endedAt' | 'result' | 'error' | 'endedBy'>>;

export type ReserveResult = { ok: true; branchCount: number } | { ok: false; branchCount: number };

export interface RecordChildEndResult {
  /** False when this child's end had been counted before (a repeated delivery). */
  applied: boolean;
  counters: SyncCounters;
}

/**
 * Durable state. Every state change is conditional; nothing here uses transactions.
 * Unless stated, a method returns `undefined` / `false` when its condition does not hold
 * and throws only for infrastructure errors (translated to core errors).
 */
export interface BranchStore {
  /** Creates the run if absent. Returns false (and writes nothing) when it already exists. */
  createRun(run: RunRecord): Promise<boolean>;
  getRun(scope: Scope): Promise<RunRecord | undefined>;
  /** Moves a RUNNING run to a terminal status; false if it was already terminal. */
  finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean>;
  /**
   * Reserves `count` branches against `max` for the spawn named `spawnKey`, once: a repeated
   * call with the same key returns ok without counting again.
   */
  reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult>;
  /**
   * Adds `tokens` to the run's `usedTokens` (an atomic counter, whatever the run's status) and
   * returns the total after it; undefined when the run does not exist. Not idempotent: a call
   * repeated after a crash was a second agent call, whose tokens were spent too.
   */
  addRunTokens(scope: Scope, tokens: number): Promise<number | undefined>;

  /** Creates the branches that do not exist yet; returns the ids it created. */
  createBranches(branches: BranchRecord[]): Promise<string[]>;
  getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined>;
  /** Consistent reads of the given branches (missing ones are left out), in the order asked. */
  getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]>;
  /**
   * Applies `patch` if the branch is still at `expectedVersion` (and increments the version).
   * Keys whose value is `undefined` are left unchanged.
   * Returns the new record, or undefined when the version moved on (another writer won).
   */
  updateBranch(
    scope: Scope,
    branchId: string,
    expectedVersion: number,
    patch: BranchPatch,
  ): Promise<BranchRecord | undefined>;
  /**
   * Moves the branch to `to` if its status is one of `from` (whatever its version), applying
   * `patch` and incrementing the version. Returns the new record or undefined.
   */
  transitionBranch(
    scope: Scope,
    branchId: string,
    from: readonly BranchStatus[],
    to: BranchStatus,
    patch?: BranchPatch,
  ): Promise<BranchRecord | undefined>;
  listBranches(scope: Scope): Promise<BranchRecord[]>;
  listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]>;

  /** Creates the sync point if absent; false if it existed. */
  createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean>;
  getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined>;
  /** Counts one child's end exactly once and returns the counters after it. */
  recordChildEnd(
    scope: Scope,
    parentId: string,
    seq: number,
    childId: string,
    outcome: ChildOutcome,
  ): Promise<RecordChildEndResult>;
  /** Claims the sync point's aggregation; exactly one caller ever gets true. */
  claimAggregation(scope: Scope, parentId: string, seq: number, outcome: 'resume' | 'fail', at: number): Promise<boolean>;
  /** Sync points whose aggregation has not been claimed (used to stop fan-outs on cancel). */
  listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]>;
}

/** One branch step to execute. `step` is the branch's stepCount when the message was made. */
export interface StepMessage extends Scope {
  branchId: string;
  step: number;
  /** Present on a child's first step: the token its fan-out iteration waits on. */
  taskToken?: string;
}

export interface StepQueue {
  send(messages: StepMessage[]): Promise<void>;
}

export interface FanOutChild {
  branchId: string;
  timeoutSeconds: number;
}

export interface FanOutRequest extends Scope {
  parentId: string;
  seq: number;
  executionName: string;
  maxConcurrency: number;
  children: FanOutChild[];
}

export interface ChildReport {
  branchId: string;
  status: BranchStatus;
}

/** Runs one sync point's fan-out: dispatch children (bounded), wait for their tokens, aggregate. */
export interface FanOutOrchestrator {
  /** Idempotent: starting the same `executionName` twice runs it once. */
  start(request: FanOutRequest): Promise<void>;
  /** Reports a child's end to its waiting iteration; an already-closed token is not an error. */
  childFinished(taskToken: string, report: ChildReport): Promise<void>;
  /** Stops an execution (early exit, cancel); stopping a finished one is not an error. */
  stop(executionName: string, reason: string): Promise<void>;
}

export interface EventPublisher {
  publish(events: LifecycleEvent[]): Promise<void>;
}

export interface AgentInvocation extends Scope {
  agentName: string;
  definition: AgentDefinition;
  branchId: string;
  step: number;
  input: unknown;
  memory: MemoryEntry[];
  /** The agents this agent may name (the topology), for prompt building. */
  allowed: string[];
  /** The branch's depth (root 0) and type, for agents that want to know where they run. */
  depth?: number;
  branchType?: BranchType;
  /** Aborted when the branch is cancelled or the run ends. */
  signal?: AbortSignal;
}

export interface AgentReply {
  /** The raw response: a JSON value or a string holding one. */
  response: unknown;
  usage?: { inputTokens: number; outputTokens: number };
}

export interface AgentInvoker {
  invoke(call: AgentInvocation): Promise<AgentReply>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

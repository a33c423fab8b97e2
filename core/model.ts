/** The branch tree's records and the rules of their status changes. */
import type { WorkMark } from './work-mark';
import type { ToolLoopCheckpoint, ToolStats } from './tools';
import type { AggregatorRef, ChildSpec, FanOutOptions, OnFailure, WaitFor } from './protocol';

export const BRANCH_STATUSES = [
  'PENDING',
  'RUNNING',
  'WAITING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMED_OUT',
] as const;
export type BranchStatus = (typeof BRANCH_STATUSES)[number];
export type RunStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export const TERMINAL_STATUSES: readonly BranchStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
export const ACTIVE_STATUSES: readonly BranchStatus[] = ['PENDING', 'RUNNING', 'WAITING'];

export function isTerminal(status: BranchStatus | RunStatus): boolean {
  return status !== 'PENDING' && status !== 'RUNNING' && status !== 'WAITING';
}

const TRANSITIONS: Record<BranchStatus, readonly BranchStatus[]> = {
  PENDING: ['RUNNING', 'FAILED', 'CANCELLED', 'TIMED_OUT'],
  RUNNING: ['RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'],
  WAITING: ['RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
  TIMED_OUT: [],
};

/** A terminal branch never changes again. */
export function canTransition(from: BranchStatus, to: BranchStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export type BranchType = 'SIMPLE' | 'CONVERSATION' | 'NESTED' | 'AGGREGATION';

// A run's limits: one table in core/limit-table.ts (defaults, team caps, ceilings).
export { DEFAULT_LIMITS, type Limits } from './limits';
import type { Limits } from './limits';

export interface FailurePolicy {
  /** The parent fails as soon as failed children exceed this fraction of its children. */
  maxFailedFraction: number;
}

export const DEFAULT_FAILURE_POLICY: Readonly<FailurePolicy> = Object.freeze({ maxFailedFraction: 0.5 });

// How a run's agents are executed: one schema per kind, in core/agent-kinds.ts.
export type { AgentDefinition, AgentRegistry } from './agent-kinds';
import type { AgentRegistry } from './agent-kinds';

export interface Scope {
  team: string;
  runId: string;
}

export interface RunRecord extends Scope {
  /** Who started the run (an IAM principal ARN, `cognito:<sub>`), where the API knows; read and cancel check it. */
  owner?: string;
  name: string;
  status: RunStatus;
  request: unknown;
  entry: string;
  agents: AgentRegistry;
  limits: Limits;
  failurePolicy: FailurePolicy;
  /** Name of a registered aggregator module known to the runtime, if any. */
  aggregators?: string;
  createdAt: number;
  endedAt?: number;
  result?: unknown;
  error?: string;
  /** The work that ended the run (a WorkMark, core/work-mark.ts): its retries publish the end again. */
  endedBy?: WorkMark;
  /** Branches reserved so far against `limits.maxBranches` (the root counts). */
  branchCount: number;
  /** Tokens the run's agent calls reported so far (kept only when `limits.maxRunTokens` is set). */
  usedTokens?: number;
}

export interface MemoryEntry {
  role: 'user' | 'assistant';
  agent: string;
  content: unknown;
  /** True for entries a child copied from its parent (`inherit_memory`). */
  inherited?: boolean;
}

/**
 * How a sync point decides (core/fan-in-decision.ts), kept on the sync point and on each child
 * so every tier, and recovery after a crash, decides the same way.
 */
export interface FanInRule {
  waitFor: WaitFor;
  /** The parent fails (or, with `onFailure: continue`, resumes) once failures pass this fraction of the children. */
  maxFailedFraction: number;
  /** A count of tolerated failures; when set it is used instead of `maxFailedFraction`. */
  toleratedFailures?: number;
  /** Absent means `fail`. */
  onFailure?: OnFailure;
  /** A registered completion function's name (`complete_when: "fn:<name>"`); it then decides instead of `waitFor`. */
  completeFn?: string;
}

/** Where a batched child belongs: its batch's range of indices and how many of it run at once. */
export interface FanOutBatch {
  first: number;
  count: number;
  window: number;
}

/**
 * A group of children whose specs are kept out of the parent's item (BranchStore.putChildSpecs):
 * `count` specs from `offset` in the list stored under `stored`. Wide spawns use it, so that no
 * item grows with the width.
 */
export interface StoredSpecs {
  stored: string;
  offset: number;
  count: number;
}

/** One sync point's children: their specs, inline (small spawns) or stored apart (wide ones). */
export type ChildGroup = ChildSpec[] | StoredSpecs;

export function groupSize(group: ChildGroup): number {
  return Array.isArray(group) ? group.length : group.count;
}

/** How many children the spawn's current sync point has (derived from its specs, never stored). */
export function spawnWidth(spawn: Pick<SpawnState, 'childSpecs'>): number {
  return groupSize(spawn.childSpecs);
}

/** What a WAITING branch is waiting for: one sync point plus any sequential groups still to run. */
export interface SpawnState {
  /** The sync point sequence number (1, 2, ...) within this branch. */
  seq: number;
  /** The step (agent invocation number) whose response created this spawn. */
  step: number;
  /** Index of the first child of this sync point (child ids are `${parentId}.${index}`). */
  firstIndex: number;
  waitFor: WaitFor;
  aggregator: AggregatorRef;
  metadata?: Record<string, unknown>;
  inheritMemory: boolean;
  /** The per-fan-out options of the response that spawned it (each group of `next_actions` gets them). */
  options?: FanOutOptions;
  /** Sequential groups still to spawn after this one, each a sync point of its own. */
  pendingGroups: ChildGroup[];
  /** Aggregates of the groups already done (the `next_actions` dialect resumes the agent with all of them). */
  groupResults: unknown[];
  /** True when the spawn came from the `next_actions` dialect (changes how the agent is resumed). */
  grouped: boolean;
  /** The children of this sync point, kept so an interrupted spawn can be opened again. */
  childSpecs: ChildGroup;
  /** Set when this sync point runs the `agent:<Name>` aggregator over sync point `aggregationOf`. */
  aggregationOf?: number;
  /**
   * On an `agent:<Name>` aggregator's sync point: the response's own settings, which the groups
   * after it run with (this sync point has its own: wait for its one agent, tolerate nothing).
   */
  groupSettings?: Pick<SpawnState, 'waitFor' | 'inheritMemory' | 'metadata' | 'options'>;
  /** Set once BranchCreated went out for this sync point's children (claimed, so it goes out once). */
  announced?: boolean;
  /**
   * The work that tells the children's BranchCreated: the spawn's own (its step message), claimed
   * with the spawn's write. A parent's end that finds them untold leaves them to it, alive or
   * retried, instead of telling them while it does. Unset on older spawns: their ends tell them.
   */
  announcer?: WorkMark;
}

/**
 * A branch suspended by its agent's reply (`wait`, `wait_for_callback`): it stays RUNNING, holds no
 * worker, and its next agent call is step `step`, made when the wait is over or the callback is
 * answered. A delayed step message (`wake`) comes back at `until` (re-sent in pieces for long
 * waits) and checks the record: a wait is over, a callback still unanswered has timed out.
 */
export interface Suspension {
  kind: 'wait' | 'callback';
  /** The branch's stepCount when it suspended (its wake message carries the same step). */
  step: number;
  /** When it suspended (epoch ms). */
  since: number;
  /** When the wait is over, or the callback times out (epoch ms). */
  until: number;
  /** A callback's token: who has it may answer (POST /runs/{id}/callbacks/{token}). */
  token?: string;
  /** What the agent said the answerer should know (a callback's `message`). */
  message?: unknown;
  /** A wait's next input, when the agent gave one. */
  input?: unknown;
}

export interface BranchRecord extends Scope {
  id: string;
  parentId: string | null;
  /** The parent's sync point this branch belongs to (null for the root). */
  parentSeq: number | null;
  depth: number;
  type: BranchType;
  /** The agent the branch started with. */
  entryAgent: string;
  /** The agent whose turn it is. */
  agent: string;
  status: BranchStatus;
  /** Optimistic-concurrency version: every write conditions on it and increments it. */
  version: number;
  /** Agent invocations done so far. */
  stepCount: number;
  invalidCount: number;
  refusalCount: number;
  /** The input of the next agent invocation. */
  input: unknown;
  memory: MemoryEntry[];
  peers?: string[];
  maxTurns?: number;
  inheritMemory?: boolean;
  /** Children created so far (so child ids stay unique across several spawns). */
  childCount: number;
  spawn?: SpawnState;
  taskToken?: string;
  /** A batched child's batch (its fan-out's token is the batch's, kept by the store). */
  batch?: FanOutBatch;
  result?: unknown;
  error?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  /** How the parent's sync point decides (copied here so a child's end needs no extra read). */
  fanIn?: FanInRule;
  /** The work whose write made the latest advance or the end (a WorkMark, core/work-mark.ts; crash recovery). */
  advancedBy?: WorkMark;
  /** Attempts of agent calls made again by the agents' retry policies, summed over the branch's steps. */
  agentRetries?: number;
  /** Agent token usage, summed over the branch's steps (LLM agents). */
  usage?: { inputTokens: number; outputTokens: number };
  /** User tool calls per tool, summed over the branch's steps (LLM agents with tools). */
  toolStats?: ToolStats;
  /** The current step's tool loop so far (null once the step is done). */
  toolLoop?: ToolLoopCheckpoint | null;
  /** Set while the branch waits or awaits a callback (null once resumed); kept on an end met while suspended. */
  suspended?: Suspension | null;
  /** The last callback tokens answered on this branch (at most ANSWERED_TOKENS_KEPT): a repeated answer is told apart. */
  answeredCallbacks?: string[];
}

/** Natural order of branch ids: root, root.0, root.0.1, root.1, root.2, root.10. */
export function compareIds(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] === pb[i]) continue;
    const na = /^\d+$/.test(pa[i]) ? Number(pa[i]) : NaN;
    const nb = /^\d+$/.test(pb[i]) ? Number(pb[i]) : NaN;
    if (!Number.isNaN(na) && !Number.isNaN(nb) && na !== nb) return na - nb;
    return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * What a fan-in reads of each child (BranchStore.getOutcomes): how it ended and what it
 * answered, without its input, memory or spawn state, which can be large and are not aggregated.
 */
export const OUTCOME_FIELDS = ['id', 'parentId', 'agent', 'status', 'version', 'result', 'error', 'endedAt', 'advancedBy'] as const;
export type BranchOutcome = Scope & Pick<BranchRecord, (typeof OUTCOME_FIELDS)[number]>;

/** Answered callback tokens a branch remembers (older ones read as unknown). */
export const ANSWERED_TOKENS_KEPT = 10;

export interface SyncCounters {
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

export interface SyncPointRecord extends Scope, FanInRule {
  parentId: string;
  seq: number;
  counters: SyncCounters;
  executionName: string;
  aggregatedAt?: number;
  outcome?: 'resume' | 'fail';
  /** The work that claimed the aggregation: it tells SyncPointReached, and its retries tell it again. */
  aggregatedBy?: WorkMark;
}

export type ChildOutcome = 'succeeded' | 'failed' | 'cancelled';

export function childId(parentId: string, index: number): string {
  return `${parentId}.${index}`;
}

export const ROOT_BRANCH_ID = 'root';

/** Deterministic name of a sync point's fan-out execution (idempotent StartExecution). */
export function fanOutExecutionName(scope: Scope, parentId: string, seq: number): string {
  const raw = `${scope.runId}-${parentId}-s${seq}`.replace(/[^A-Za-z0-9_-]/g, '_');
  return raw.length <= 80 ? raw : `${raw.slice(0, 60)}-${hash(raw)}`;
}

function hash(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0).toString(36);
}

/**
 * The ports the use cases run on. Adapters implement them for AWS, for the embedded engines and
 * in memory; the in-memory ones (adapters/memory) are the reference for the contracts below.
 */
import type {
  AgentDefinition,
  BranchOutcome,
  BranchRecord,
  BranchStatus,
  BranchType,
  ChildOutcome,
  FanOutBatch,
  MemoryEntry,
  RunRecord,
  RunStatus,
  Scope,
  SyncCounters,
  SyncPointRecord,
} from './model';
export type { FanOutBatch } from './model';
import type { ChildSpec } from './protocol';
import type { LifecycleEvent } from './events';
import { ValidationError } from './errors';
import type { FanOutDispatch } from './fan-out-plan';
import type { CostCounters } from './cost';
import type { ToolCallRecord, ToolLoopCheckpoint } from './tools';
import type { WorkMark } from './work-mark';

export type BranchPatch = Partial<
  Omit<BranchRecord, 'team' | 'runId' | 'id' | 'version' | 'parentId' | 'depth' | 'createdAt'>
>;
export type RunPatch = Partial<Pick<RunRecord, 'status' | 'endedAt' | 'result' | 'error' | 'endedBy'>>;

/** Where a page of BranchStore.listBranchesPage starts, and its size. */
export interface BranchPage {
  limit: number;
  /** The last branch id of the page before. */
  after?: string;
}

/** Where a page of BranchStore.listRunsPage starts, and its size. */
export interface RunPage {
  limit: number;
  /** The position (`position` of a run the page before gave) to go on after. */
  after?: string;
}

/** A team's run as a listing gives it, with its place in the newest-first order. */
export interface ListedRun {
  run: RunRecord;
  /** Pass as `after` to go on after this run (opaque; the store's index key). */
  position: string;
}

/** A lifecycle event as the run's stored stream keeps it: its number in the stream and when it was written. */
export interface StoredEvent {
  seq: number;
  storedAt: number;
  event: LifecycleEvent;
}

/** What BranchStore.getStatuses reads. */
export interface Statuses {
  run: RunStatus | undefined;
  branches: Map<string, BranchStatus>;
}

export type ReserveResult = { ok: true; branchCount: number } | { ok: false; branchCount: number };

export interface RecordChildEndResult {
  /** False when this child's end had been counted before (a repeated delivery). */
  applied: boolean;
  /** The sync point's counters, this end included. */
  counters: SyncCounters;
}

/**
 * Durable state. Every state change is conditional; nothing here uses transactions.
 * Unless stated, a method returns `undefined` / `false` when its condition does not hold
 * and throws only for infrastructure errors (translated to core errors). The store is the union
 * of the parts below; each adapter implements them as parts of their own over one table.
 */
export interface BranchStore extends RunStore, BranchRecordStore, ChildSpecStore, SyncPointStore, EventStore, CostStore {}

/** Runs: the run record, its branch budget and token counter, its idempotency key, and the team's listing. */
export interface RunStore {
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
  /**
   * The run id kept for an idempotency key (`keyHash`: a hash of the team, the caller and the
   * key), stored apart from any run: `runId` when this call is the first (a conditional put),
   * the id kept by the first otherwise.
   */
  claimRunId(team: string, keyHash: string, runId: string): Promise<string>;
  /**
   * At most `limit` of a team's runs, newest first, after the position `after` (none: from the
   * newest): one Query page of the team's index partition in DynamoDB, eventually consistent (a
   * run just created may show a moment later). `more` as listBranchesPage's.
   */
  listRunsPage(team: string, page: RunPage): Promise<{ runs: ListedRun[]; more: boolean }>;
}

/** Branch records: created once, changed only by version or by an allowed status move. */
export interface BranchRecordStore {
  /** Creates the branches that do not exist yet; returns the ids it created. */
  createBranches(branches: BranchRecord[]): Promise<string[]>;
  getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined>;
  /** Consistent reads of the given branches (missing ones are left out), in the order asked. */
  getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]>;
  /** The same reads, of each branch's outcome only (OUTCOME_FIELDS in core/model: no input, memory or spawn state). */
  getOutcomes(scope: Scope, branchIds: string[]): Promise<BranchOutcome[]>;
  /**
   * The run's status and the given branches' statuses, read consistently without their payloads,
   * in one request up to 99 branches (what a step checks before it acts: has anything above it
   * ended?), 100 keys a request past that (which of a spawn's children exist). A missing
   * run is `undefined`; a missing branch is absent from the map.
   */
  getStatuses(scope: Scope, branchIds: string[]): Promise<Statuses>;
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
  /**
   * At most `limit` of the run's branches after the branch `after` (none: from the first), in the
   * store's key order (one Query page in DynamoDB). `more` is false once nothing follows (it may
   * be true before an empty last page, as DynamoDB's LastEvaluatedKey may).
   */
  listBranchesPage(scope: Scope, page: BranchPage): Promise<{ branches: BranchRecord[]; more: boolean }>;
  listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]>;
}

/** A wide spawn's child specs, kept apart from the parent's record. */
export interface ChildSpecStore {
  /**
   * Keeps a wide spawn's child specs out of the parent's item, in items of bounded size, under
   * `key` (idempotent: a repeated call with the same key writes nothing new).
   */
  putChildSpecs(scope: Scope, key: string, specs: ChildSpec[]): Promise<void>;
  /** `count` specs from `offset` of those stored under `key`; NotFoundError if they are not there. */
  getChildSpecs(scope: Scope, key: string, offset: number, count: number): Promise<ChildSpec[]>;
}

/** What a batch's child asks of its batch's pool when its end is counted (SyncPointStore.claimBatchChild). */
export interface BatchClaim {
  /** The index of the child that ended. */
  ender: number;
  /** The batch's first child that its DispatchBatch did not send. */
  start: number;
  /** Past the batch's last child. */
  end: number;
  /** The ender's end was counted before (a retry, a duplicate): it may have claimed already. */
  mayRepeat: boolean;
}

/** A pool claim's answer: the child claimed, and whether it was claimed before by the same ender. */
export interface BatchClaimed {
  index: number;
  repeat: boolean;
}

/** Sync points: the fan-in of a spawn's children (counted once each), its batches' task tokens, and the claim of its aggregation. */
export interface SyncPointStore {
  /** Creates the sync point if absent; false if it existed. */
  createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean>;
  getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined>;
  /**
   * Counts one child's end exactly once and returns counters that include it. Its cost does not
   * depend on how many siblings ended before, and no item grows with the width (see
   * docs/dynamodb-schema.md): several callers may see the same counters, and may all see the
   * total. A repeated call also finishes what a crashed earlier call left half done.
   */
  recordChildEnd(
    scope: Scope,
    parentId: string,
    seq: number,
    childId: string,
    outcome: ChildOutcome,
  ): Promise<RecordChildEndResult>;
  /** Ids of the children whose end was counted on the sync point (for checks and views). */
  listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]>;
  /**
   * How many of the children with indices `first .. first+count` were counted on the sync point
   * (reads only the fan-in shards holding that range): whether a batch of a fan-out is done.
   */
  countEndedInRange(scope: Scope, parentId: string, seq: number, first: number, count: number): Promise<number>;
  /** Keeps the task token of a fan-out batch's iteration (the latest try's wins). */
  putBatchToken(scope: Scope, parentId: string, seq: number, first: number, taskToken: string): Promise<void>;
  getBatchToken(scope: Scope, parentId: string, seq: number, first: number): Promise<string | undefined>;
  /**
   * A batch's pool of places (core/use-cases/fan-out-batch.ts): for the batch's child `ender`,
   * whose end was just counted, claims the batch's next child not yet sent, in one atomic write
   * (the children from `start` on, `start` itself when none was claimed, up to `end` exclusive);
   * each ender claims at most one. A repeated claim by the same ender answers its first claim
   * (`repeat: true`) when `mayRepeat`, and undefined otherwise (no read); undefined too when
   * every child of the batch was claimed by others.
   */
  claimBatchChild(scope: Scope, parentId: string, seq: number, first: number, claim: BatchClaim): Promise<BatchClaimed | undefined>;
  /** Claims the sync point's aggregation under the claiming work's mark; exactly one caller ever gets true. */
  claimAggregation(scope: Scope, parentId: string, seq: number, outcome: 'resume' | 'fail', at: number, by: WorkMark): Promise<boolean>;
  /** Sync points whose aggregation has not been claimed (used to stop fan-outs on cancel). */
  listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]>;
}

/** The run's stored lifecycle events, and the values they refer to. */
export interface EventStore {
  /**
   * Appends a run's lifecycle events to its stored stream: numbers them in one atomic counter
   * update, then writes them packed into as few items as fit (one for most publications),
   * expiring with the run. Numbers a crash leaves unwritten stay as gaps; a retried call appends
   * the events again under new numbers.
   */
  appendEvents(scope: Scope, events: readonly LifecycleEvent[]): Promise<void>;
  /** At most `limit` of the run's stored events numbered above `after`, in number order (consistent read). */
  listEvents(scope: Scope, page: { after: number; limit: number }): Promise<StoredEvent[]>;
  /**
   * The JSON of a value kept by reference for the run (a tool call's arguments or output, named by
   * its ToolCalled event: core/tools.ts); NotFoundError when the run has none by that reference.
   */
  getValue(scope: Scope, ref: string): Promise<string>;
}

/** The run's cost record. */
export interface CostStore {
  /**
   * Adds usage to the run's cost record (a small item of its own, so metering never rewrites
   * the run). The write's own unit is included; it is not reported to the meter again.
   */
  addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void>;
  /** The run's cost record (zeros when nothing was recorded). */
  getCost(scope: Scope): Promise<CostCounters>;
}

/**
 * Values kept apart from the items and messages that refer to them (the claim check: see
 * docs/large-values.md). Content-addressed: the reference is derived from the content, so a
 * repeated put (a retry after a crash) stores nothing new and answers the same reference. A put
 * has stored the content durably when it returns, so callers write the reference only after it:
 * a crash never leaves a reference to nothing. Contents are kept per run (a run's TTL expires
 * them with it).
 */
export interface BlobStore {
  /** Stores `content` for the run; answers its reference (the same for the same content). */
  put(scope: Scope, content: string): Promise<string>;
  /** The content under `ref`; NotFoundError when there is none, ValidationError for a malformed ref. */
  get(scope: Scope, ref: string): Promise<string>;
}

/**
 * Large values handed to an agent by URL instead of in its request (core/agent-request.ts): S3
 * presigned GETs in AWS, a local server's links in local runs.
 */
export interface ValueLinks {
  /** Stores `content` (JSON) for the run; answers a URL a plain GET reads it from until `expiresAt` (ISO time). */
  link(scope: Scope, content: string): Promise<{ url: string; expiresAt: string }>;
}

/** One branch step to execute. `step` is the branch's stepCount when the message was made. */
export interface StepMessage extends Scope {
  branchId: string;
  step: number;
  /** Present on a child's first step: the token its fan-out iteration waits on. */
  taskToken?: string;
  /**
   * A suspended branch's wake-up (a delayed message; see Suspension in core/model.ts): it acts only
   * while the branch is suspended at `step`, and a plain step message never wakes a suspended branch.
   */
  wake?: true;
  /** Present on a batched child's first step: its batch (the batch's token is kept by the store). */
  batch?: FanOutBatch;
}

/** How a step message came to its consumer this time. */
export interface Delivery {
  /** The transport's id of this message; the same on a redelivery of the same message. */
  messageId: string;
  /** Which delivery of the message this is, 1 for the first (SQS's ApproximateReceiveCount). */
  receiveCount?: number;
  /**
   * When the consumer's time runs out (epoch ms; Lambda's remaining time less a margin): the
   * agent call is cut before it, and the step comes back later.
   */
  deadline?: number;
}

/** The longest delay one message can have (SQS DelaySeconds); longer waits are re-sent in pieces. */
export const MAX_DELAY_SECONDS = 900;

export interface SendOptions {
  /** The messages are delivered no sooner than this, 0..MAX_DELAY_SECONDS (SQS DelaySeconds). */
  delaySeconds?: number;
}

/** A send's delay as every queue takes it: whole seconds (rounded up: never early), 0..MAX_DELAY_SECONDS. */
export function delaySecondsOf(options: SendOptions): number {
  const seconds = options.delaySeconds ?? 0;
  if (!(seconds >= 0 && seconds <= MAX_DELAY_SECONDS)) {
    throw new ValidationError(`delaySeconds must be 0..${MAX_DELAY_SECONDS}, got ${seconds}`, 'delaySeconds');
  }
  return Math.ceil(seconds);
}

/** A step message as a consumer received it: the handle names this receive of it. */
export interface StepReceipt {
  message: StepMessage;
  receiptHandle: string;
}

export interface StepQueue {
  send(messages: StepMessage[], options?: SendOptions): Promise<void>;
  /**
   * Makes a received message visible again in `seconds` instead of at the end of the queue's
   * visibility timeout (SQS ChangeMessageVisibility): the backoff of a step that failed. A message
   * no longer in flight (deleted, or visible again already) is left as it is.
   */
  redeliverAfter(receipt: StepReceipt, seconds: number): Promise<void>;
}

/**
 * One sync point's fan-out. Its children are `<parentId>.<firstIndex + i>` for i < count (their
 * specs are in their own records), so the request stays small whatever the width.
 */
export interface FanOutRequest extends Scope {
  parentId: string;
  seq: number;
  executionName: string;
  maxConcurrency: number;
  firstIndex: number;
  count: number;
  /** Each child's timeout (its iteration fails with `States.Timeout` past it). */
  timeoutSeconds: number;
  /** Batches of children (the default) or one iteration each (core/fan-out-plan.ts). */
  dispatch?: FanOutDispatch;
}

/** Aggregate's input: the sync point, and the task's retry count (see ChildFailureInput.retryCount). */
export interface AggregateInput extends SyncPointTaskInput {
  retryCount?: number;
}

/** DispatchBatch's input: send the batch's first children; the token waits for all of them. */
export interface BatchDispatchInput extends SyncPointTaskInput, FanOutBatch {
  taskToken: string;
}

/** RecordBatchFailure's input: a batch's iteration failed (its timeout, a dispatch error). */
export interface BatchFailureInput extends SyncPointTaskInput {
  first: number;
  count: number;
  /** The Step Functions error name of the failed state. */
  error: string;
  cause?: string;
  /** See ChildFailureInput.retryCount. */
  retryCount?: number;
}

export interface ChildReport {
  branchId: string;
  status: BranchStatus;
}

/** What the fan-out's tasks are given about a sync point. */
export interface SyncPointTaskInput extends Scope {
  parentId: string;
  seq: number;
}

/** RecordChildFailure's input: a child's iteration failed (`States.Timeout`, dispatch error). */
export interface ChildFailureInput extends SyncPointTaskInput {
  branchId: string;
  /** The Step Functions error name, e.g. `States.Timeout`. */
  error: string;
  /** The error's cause (AWS gives "" for a task timeout). */
  cause?: string;
  /**
   * How many times Step Functions has retried this task (`$$.State.RetryCount`): 0 on its first
   * attempt, which therefore began nothing before. Absent (an execution started by an older
   * definition): taken as a retry.
   */
  retryCount?: number;
}

/**
 * RecordFanOutFailure's input: the fan-out itself failed (its Map, or Aggregate after its retries),
 * so Aggregate will never settle the sync point.
 */
export interface FanOutFailureInput extends SyncPointTaskInput {
  /** The Step Functions error name of the failed state. */
  error: string;
  cause?: string;
}

/**
 * The tasks of the fan-out state machine (adapters/stepfunctions/fan-out.asl.json): the
 * contract between every FanOutOrchestrator and the use cases (core/use-cases/fan-out-tasks.ts).
 */
export interface FanOutTasks {
  /** A child's iteration failed: end the child and count it. */
  recordChildFailure(input: ChildFailureInput): Promise<void>;
  /** The Map is done: settle the sync point. */
  aggregate(input: AggregateInput): Promise<void>;
  /** The Map or Aggregate failed for good (their Catch): the parent fails instead of waiting forever. */
  recordFanOutFailure(input: FanOutFailureInput): Promise<void>;
  /** A batch's iteration starts: keep its token, send its first children. */
  dispatchBatch(input: BatchDispatchInput): Promise<void>;
  /** A batch's iteration failed: end and count each of its children still running. */
  recordBatchFailure(input: BatchFailureInput): Promise<void>;
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

/** One agent call; an invoker of one kind takes `AgentInvocation<ItsKind>` (core/agent-kinds.ts). */
export interface AgentInvocation<D extends AgentDefinition = AgentDefinition> extends Scope {
  agentName: string;
  definition: D;
  branchId: string;
  step: number;
  input: unknown;
  memory: MemoryEntry[];
  /** The agents this agent may name (the topology), for prompt building. */
  allowed: string[];
  /** The branch's depth (root 0) and type, for agents that want to know where they run. */
  depth?: number;
  branchType?: BranchType;
  /** Which delivery of this step's message runs the call (1 for the first; a failed step comes back). */
  attempt?: number;
  /** Which attempt of the agent's retry policy this call is (1 for the first; core/retry-policy.ts). */
  retryAttempt?: number;
  /** Aborted when the branch is cancelled or the run ends. */
  signal?: AbortSignal;
  /** User tool calls one step may make (the run's `maxToolCallsPerStep`). */
  maxToolCalls?: number;
  /** Told of each user tool call as it ends (the trace's `ToolCalled`, the metrics). */
  onToolCall?: (record: ToolCallRecord) => void;
  /** Where a tool loop keeps its conversation as it grows, and where an interrupted one left it. */
  checkpoint?: {
    resumeFrom?: ToolLoopCheckpoint;
    /** Throws ConflictError when the branch moved on meanwhile (the step is then someone else's). */
    save(checkpoint: ToolLoopCheckpoint): Promise<void>;
  };
}

export interface AgentReply {
  /** The raw response: a JSON value or a string holding one. */
  response: unknown;
  /** Tokens of the whole step (every model turn of a tool loop). */
  usage?: { inputTokens: number; outputTokens: number };
  /** Set when the reply is known to be invalid before parsing (bad protocol tool arguments): re-asked like any invalid reply. */
  invalid?: { field: string; message: string };
}

export interface AgentInvoker<D extends AgentDefinition = AgentDefinition> {
  invoke(call: AgentInvocation<D>): Promise<AgentReply>;
}

/** Where the adapters report what a run consumed (the cost meter; see core/cost-meter.ts). */
export interface CostSink {
  add(scope: Scope, usage: Partial<CostCounters>): void;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * BranchStore on one DynamoDB table (see docs/dynamodb-schema.md). Every state change is a
 * single conditional write; nothing uses transactions (dynalite has none, and the fan-in only
 * ever needs one item to change atomically). Reads that decide anything are ConsistentRead.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type BatchGetCommandOutput,
  type GetCommandOutput,
  type PutCommandOutput,
  type QueryCommandInput,
  type QueryCommandOutput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { BranchSpawnerError, ConflictError, NotFoundError, TransientError } from '../../core/errors';
import {
  canTransition,
  type BranchOutcome,
  type BranchRecord,
  type BranchStatus,
  type ChildOutcome,
  type ChildSpec,
  type RunRecord,
  type RunStatus,
  type Scope,
  type SyncPointRecord,
} from '../../core/model';
import type { BlobStore, BranchPage, BranchPatch, BranchStore, CostSink, ListedRun, RecordChildEndResult, ReserveResult, RunPage, RunPatch, Statuses, StoredEvent } from '../../core/ports';
import type { LifecycleEvent } from '../../core/events';
import {
  assertFits,
  checkInValues,
  checkOutValues,
  BRANCH_PREFIX,
  branchItem,
  branchKey,
  childrenPk,
  compareIds,
  decodeBranch,
  OUTCOME_ATTRIBUTES,
  decodeCounters,
  decodeRun,
  decodeSyncPoint,
  encodeBranchPatch,
  encodeRunPatch,
  GSI1,
  runItem,
  runIdOfRunsSk,
  runsPosition,
  decodeEventPack,
  EVENT_PREFIX,
  eventCounterKey,
  eventPackItems,
  eventSk,
  runKey,
  runPk,
  runsPk,
  RUN_SK,
  SYNC_PREFIX,
  syncKey,
  syncPointItem,
  TTL_ATTRIBUTE,
  type Item,
  type Key,
  branchIdOfSk,
  childOfShardMember,
  decodeSnapshot,
  encodeSnapshot,
  fanInShardOf,
  shardKey,
  shardSkPrefix,
  shardSnapshotAttribute,
  costKey,
  runKeyItem,
  decodeCost,
  specChunkItems,
  specsFromChunks,
  specChunkSk,
  shardsOfRange,
  countedInRange,
  batchTokenKey,
  specsSkPrefix,
} from './item-codec';
import { COST_FIELDS, type CostCounters } from '../../core/cost';
import { mapDynamoError } from './map-dynamo-error';
import { mapLimit } from '../../core/map-limit';
import { again, withRetries } from '../retry';

export interface DynamoBranchStoreOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  /** When set, every item gets `expiresAt` = creation time + ttlSeconds (epoch seconds). */
  ttlSeconds?: number;
  /** Clock for `expiresAt`. */
  now?: () => number;
  /** Parallel conditional puts in createBranches. */
  writeConcurrency?: number;
  /** Receives the capacity units every request consumed, by run (the cost meter). */
  meter?: CostSink;
  /**
   * Where values over CLAIM_CHECK_BYTES are kept (S3 in AWS; see item-codec's claim check). Without
   * one, values stay in the items and a value that does not fit is refused as too large.
   */
  blobs?: BlobStore;
}

type Attributes = Record<string, unknown>;
type StoreCommand = GetCommand | PutCommand | UpdateCommand | QueryCommand | BatchGetCommand;
type OutputOf<C> = C extends GetCommand
  ? GetCommandOutput
  : C extends PutCommand
    ? PutCommandOutput
    : C extends UpdateCommand
      ? UpdateCommandOutput
      : C extends QueryCommand
        ? QueryCommandOutput
        : BatchGetCommandOutput;

const BATCH_GET_MAX = 100;
const BATCH_GET_ROUNDS = 8;
const OUTCOME_COUNTERS: Record<ChildOutcome, string> = { succeeded: 'succeeded', failed: 'failed', cancelled: 'cancelled' };

/**
 * Ends of one shard written in one conditional write at most (each member is one
 * `NOT contains(done, :m)` term: the expression stays far below DynamoDB's 4 KB).
 */
export const FAN_IN_GROUP_MAX = 50;

type Counts = { succeeded: number; failed: number; cancelled: number };

interface PendingEnd {
  member: string;
  childId: string;
  outcome: ChildOutcome;
  resolve(result: RecordChildEndResult): void;
  reject(error: unknown): void;
}

interface FanInQueue {
  waiting: PendingEnd[];
  running: boolean;
}

/** Builds expression placeholders so no attribute name can collide with a reserved word. */
class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private readonly byName = new Map<string, string>();

  name(attribute: string): string {
    let placeholder = this.byName.get(attribute);
    if (!placeholder) {
      placeholder = `#n${this.byName.size}`;
      this.byName.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  value(value: unknown): string {
    const placeholder = `:v${Object.keys(this.values).length}`;
    this.values[placeholder] = value;
    return placeholder;
  }

  sets(fields: Item): string[] {
    return Object.entries(fields).map(([name, value]) => `${this.name(name)} = ${this.value(value)}`);
  }

  get params() {
    return {
      ExpressionAttributeNames: this.names,
      ...(Object.keys(this.values).length ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export class DynamoBranchStore implements BranchStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly ttlSeconds: number | undefined;
  private readonly now: () => number;
  private readonly writeConcurrency: number;
  private readonly meter: CostSink | undefined;
  private readonly blobs: BlobStore | undefined;
  /** Ends waiting to be written, per fan-in shard (see recordChildEnd). */
  private readonly fanInQueues = new Map<string, FanInQueue>();

  constructor(options: DynamoBranchStoreOptions) {
    this.doc =
      options.client instanceof DynamoDBDocumentClient ? options.client : DynamoDBDocumentClient.from(options.client);
    this.tableName = options.tableName;
    this.ttlSeconds = options.ttlSeconds;
    this.now = options.now ?? Date.now;
    this.writeConcurrency = Math.max(1, options.writeConcurrency ?? 16);
    this.meter = options.meter;
    this.blobs = options.blobs;
  }

  // --- runs -----------------------------------------------------------------------------

  async createRun(run: RunRecord): Promise<boolean> {
    const item = this.withTtl(await checkInValues(`run ${run.runId}`, run, runItem(run), this.blobs));
    assertFits(`run ${run.runId}`, item);
    return this.putIfAbsent(run, item, `createRun ${run.runId}`);
  }

  async getRun(scope: Scope): Promise<RunRecord | undefined> {
    const item = await this.get(scope, runKey(scope), `getRun ${scope.runId}`);
    return item && decodeRun(await checkOutValues(scope, item, this.blobs));
  }

  async finishRun(scope: Scope, status: Exclude<RunStatus, 'RUNNING'>, patch: RunPatch): Promise<boolean> {
    const fields = await checkInValues(`run ${scope.runId}`, scope, { ...encodeRunPatch(patch), status }, this.blobs);
    assertFits(`run ${scope.runId}`, fields);
    const x = new Expr();
    const updated = await this.conditional(`finishRun ${scope.runId}`, () =>
      this.send(scope, 
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(scope),
          UpdateExpression: `SET ${x.sets(fields).join(', ')}`,
          ConditionExpression: `${x.name('status')} = ${x.value('RUNNING')}`,
          ...x.params,
        }),
      ),
    );
    return updated !== undefined;
  }

  async reserveBranches(scope: Scope, spawnKey: string, count: number, max: number): Promise<ReserveResult> {
    const x = new Expr();
    const context = `reserveBranches ${scope.runId} ${spawnKey}`;
    const key = runKey(scope);
    const updated = await this.conditional(context, () =>
      this.send(scope, 
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          // The key set makes the reservation idempotent: a repeated spawn key never counts again.
          UpdateExpression: `ADD ${x.name('branchCount')} ${x.value(count)}, ${x.name('spawnKeys')} ${x.value(new Set([spawnKey]))}`,
          ConditionExpression:
            `attribute_exists(${x.name('PK')}) AND NOT contains(${x.name('spawnKeys')}, ${x.value(spawnKey)})` +
            ` AND ${x.name('branchCount')} <= ${x.value(max - count)}`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    if (updated) return { ok: true, branchCount: Number(updated.Attributes?.branchCount) };
    // Refused: either this key was reserved before (ok) or the budget is spent.
    const current = await this.get(scope, key, context, ['branchCount', 'spawnKeys']);
    if (!current) return { ok: false, branchCount: 0 };
    const keys = current.spawnKeys;
    const branchCount = Number(current.branchCount ?? 0);
    return keys instanceof Set && keys.has(spawnKey) ? { ok: true, branchCount } : { ok: false, branchCount };
  }

  async addRunTokens(scope: Scope, tokens: number): Promise<number | undefined> {
    const x = new Expr();
    const updated = await this.conditional(`addRunTokens ${scope.runId}`, () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: runKey(scope),
          UpdateExpression: `ADD ${x.name('usedTokens')} ${x.value(tokens)}`,
          ConditionExpression: `attribute_exists(${x.name('PK')})`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    return updated ? Number(updated.Attributes?.usedTokens) : undefined;
  }

  // --- branches -------------------------------------------------------------------------

  async createBranches(branches: BranchRecord[]): Promise<string[]> {
    // Check every item before writing any, so a refusal leaves nothing half-written.
    const items = await Promise.all(branches.map(async (b) => this.withTtl(await checkInValues(`branch ${b.id}`, b, branchItem(b), this.blobs))));
    items.forEach((item, i) => assertFits(`branch ${branches[i].id}`, item));
    const created = await mapLimit(items, this.writeConcurrency, (item, i) =>
      this.putIfAbsent(branches[i], item, `createBranches ${branches[i].id}`),
    );
    return branches.filter((_, i) => created[i]).map((b) => b.id);
  }

  async getBranch(scope: Scope, branchId: string): Promise<BranchRecord | undefined> {
    const item = await this.get(scope, branchKey(scope, branchId), `getBranch ${branchId}`);
    return item && this.decodeBranch(scope, item);
  }

  async getStatuses(scope: Scope, branchIds: string[]): Promise<Statuses> {
    const ids = [...new Set(branchIds)];
    const keys = [runKey(scope), ...ids.map((id) => branchKey(scope, id))];
    // One request for a step's few statuses; a spawn's children (a retry of its opening) 100 a request.
    const chunks: Key[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_MAX) chunks.push(keys.slice(i, i + BATCH_GET_MAX));
    const items = (await Promise.all(chunks.map((chunk) => this.batchGet(scope, chunk, `getStatuses ${scope.runId}`, ['SK', 'id', 'status'])))).flat();
    const branches = new Map<string, BranchStatus>();
    let run: RunStatus | undefined;
    for (const item of items) {
      if (item.SK === RUN_SK) run = item.status as RunStatus;
      else branches.set(String(item.id), item.status as BranchStatus);
    }
    return { run, branches };
  }

  /** BatchGetItem, ConsistentRead, 100 keys per request, unprocessed keys asked again. */
  async getBranches(scope: Scope, branchIds: string[]): Promise<BranchRecord[]> {
    return this.readBranches(scope, branchIds);
  }

  /** As getBranches, projected to the outcome's attributes: a large input or memory is neither sent nor read from its blob. */
  async getOutcomes(scope: Scope, branchIds: string[]): Promise<BranchOutcome[]> {
    return this.readBranches(scope, branchIds, OUTCOME_ATTRIBUTES);
  }

  private async readBranches(scope: Scope, branchIds: string[], attributes?: readonly string[]): Promise<BranchRecord[]> {
    const unique = [...new Set(branchIds)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += BATCH_GET_MAX) chunks.push(unique.slice(i, i + BATCH_GET_MAX));
    const found = new Map<string, Attributes>();
    await Promise.all(
      chunks.map(async (chunk) => {
        for (const item of await this.batchGet(scope, chunk.map((id) => branchKey(scope, id)), `getBranches ${scope.runId}`, attributes && [...attributes])) {
          found.set(String(item.id), item);
        }
      }),
    );
    // Decode per occurrence so a repeated id never hands out a shared object.
    return Promise.all(branchIds.flatMap((id): Attributes[] => {
      const item = found.get(id);
      return item ? [item] : [];
    }).map((item) => this.decodeBranch(scope, item)));
  }

  async updateBranch(
    scope: Scope,
    branchId: string,
    expectedVersion: number,
    patch: BranchPatch,
  ): Promise<BranchRecord | undefined> {
    const fields = await checkInValues(`branch ${branchId}`, scope, encodeBranchPatch(patch), this.blobs);
    assertFits(`branch ${branchId}`, fields);
    const x = new Expr();
    const version = x.name('version');
    return this.updateBranchItem(scope, branchId, `updateBranch ${branchId}`, {
      UpdateExpression: `SET ${[...x.sets(fields), `${version} = ${version} + ${x.value(1)}`].join(', ')}`,
      ConditionExpression: `${version} = ${x.value(expectedVersion)}`,
      ...x.params,
    });
  }

  async transitionBranch(
    scope: Scope,
    branchId: string,
    from: readonly BranchStatus[],
    to: BranchStatus,
    patch: BranchPatch = {},
  ): Promise<BranchRecord | undefined> {
    // Only statuses the model lets become `to`: a terminal branch never changes, whatever `from` says.
    const allowed = [...new Set(from)].filter((status) => canTransition(status, to));
    if (allowed.length === 0) return undefined;
    const fields = await checkInValues(`branch ${branchId}`, scope, { ...encodeBranchPatch(patch), status: to }, this.blobs);
    assertFits(`branch ${branchId}`, fields);
    const x = new Expr();
    const version = x.name('version');
    const statuses = allowed.map((s) => x.value(s)).join(', ');
    return this.updateBranchItem(scope, branchId, `transitionBranch ${branchId} → ${to}`, {
      UpdateExpression: `SET ${[...x.sets(fields), `${version} = ${version} + ${x.value(1)}`].join(', ')}`,
      ConditionExpression: `${x.name('status')} IN (${statuses})`,
      ...x.params,
    });
  }

  /** Query on the run's partition, ConsistentRead, all pages; natural id order. */
  async listBranches(scope: Scope): Promise<BranchRecord[]> {
    const x = new Expr();
    const items = await this.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(BRANCH_PREFIX)})`,
        ConsistentRead: true,
        ...x.params,
      },
      `listBranches ${scope.runId}`,
    );
    const branches = await Promise.all(items.map((item) => this.decodeBranch(scope, item)));
    return branches.sort((a, b) => compareIds(a.id, b.id));
  }

  async claimRunId(team: string, keyHash: string, runId: string): Promise<string> {
    const item = runKeyItem(team, keyHash, runId);
    const scope = { team, runId: `key-${keyHash}` };
    if (await this.putIfAbsent(scope, item, `claimRunId ${keyHash}`)) return runId;
    const kept = await this.get(scope, { PK: String(item.PK), SK: String(item.SK) }, `claimRunId ${keyHash}`);
    if (typeof kept?.runId !== 'string') throw new BranchSpawnerError(`the run id kept for idempotency key ${keyHash} is missing`);
    return kept.runId;
  }

  async listBranchesPage(scope: Scope, page: BranchPage): Promise<{ branches: BranchRecord[]; more: boolean }> {
    const x = new Expr();
    // Built once: each Query of the page sends the same expression (names and values built again
    // would leave the first ones unused, which DynamoDB refuses).
    const keyCondition = `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(BRANCH_PREFIX)})`;
    const limit = Math.max(1, page.limit);
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined = page.after === undefined ? undefined : { ...branchKey(scope, page.after) };
    // A Query page stops at 1 MB as well: read on until the page is full or the partition ends.
    do {
      const result = await this.call(`listBranchesPage ${scope.runId}`, () =>
        this.send(
          scope,
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: keyCondition,
            ConsistentRead: true,
            Limit: limit - items.length,
            ExclusiveStartKey: start,
            ...x.params,
          }),
        ),
      );
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
    } while (start && items.length < limit);
    return { branches: await Promise.all(items.map((item) => this.decodeBranch(scope, item))), more: start !== undefined };
  }

  /**
   * One Query page of the team's runs on GSI1 (keys only, newest first), then each run read by
   * its key: `limit` index entries and `limit` reads at most, whatever the team holds.
   */
  async listRunsPage(team: string, page: RunPage): Promise<{ runs: ListedRun[]; more: boolean }> {
    const x = new Expr();
    const listing: Scope = { team, runId: '(runs)' };
    const pk = runsPk(team);
    const result = await this.call(`listRunsPage ${team}`, () =>
      this.send(
        listing,
        new QueryCommand({
          TableName: this.tableName,
          IndexName: GSI1,
          KeyConditionExpression: `${x.name('GSI1PK')} = ${x.value(pk)}`,
          ScanIndexForward: false,
          Limit: Math.max(1, page.limit),
          ...(page.after === undefined ? {} : { ExclusiveStartKey: { GSI1PK: pk, GSI1SK: runsPosition(page.after), ...runKey({ team, runId: runIdOfRunsSk(page.after) }) } }),
          ...x.params,
        }),
      ),
    );
    const positions = (result.Items ?? []).map((item) => String(item.GSI1SK));
    const runs = await Promise.all(positions.map(async (position) => ({ run: await this.getRun({ team, runId: runIdOfRunsSk(position) }), position })));
    // A run whose item is gone (its TTL passed after the index was read) is left out.
    return { runs: runs.flatMap((r) => (r.run ? [{ run: r.run, position: r.position }] : [])), more: result.LastEvaluatedKey !== undefined };
  }

  async appendEvents(scope: Scope, events: readonly LifecycleEvent[]): Promise<void> {
    if (events.length === 0) return;
    const x = new Expr();
    const ttl = this.ttlSeconds === undefined ? '' : ` SET ${x.name(TTL_ATTRIBUTE)} = if_not_exists(${x.name(TTL_ATTRIBUTE)}, ${x.value(Math.floor(this.now() / 1000) + this.ttlSeconds)})`;
    // One atomic ADD numbers the whole batch: the stream's order is the order of these updates.
    const counted = await this.call(`appendEvents ${scope.runId}`, () =>
      this.send(
        scope,
        new UpdateCommand({
          TableName: this.tableName,
          Key: eventCounterKey(scope),
          UpdateExpression: `ADD ${x.name('last')} ${x.value(events.length)}${ttl}`,
          ReturnValues: 'UPDATED_NEW',
          ...x.params,
        }),
      ),
    );
    const first = Number(counted.Attributes?.last) - events.length + 1;
    const items = eventPackItems(scope, first, this.now(), events).map((item) => this.withTtl(item));
    items.forEach((item) => assertFits(`events of ${scope.runId}`, item));
    await mapLimit(items, this.writeConcurrency, (item) => this.putIfAbsent(scope, item, `appendEvents ${scope.runId}`));
  }

  async getValue(scope: Scope, ref: string): Promise<string> {
    if (!this.blobs) throw new NotFoundError(`run ${scope.runId} keeps no values by reference (this store has no blob store)`);
    return this.blobs.get(scope, ref);
  }

  async listEvents(scope: Scope, page: { after: number; limit: number }): Promise<StoredEvent[]> {
    const limit = Math.max(1, page.limit);
    const events: StoredEvent[] = [];
    let start: Record<string, unknown> | undefined;
    // A pack holds one or more events: read packs until the page is full or the stream ends.
    do {
      const x = new Expr();
      const result = await this.call(`listEvents ${scope.runId}`, () =>
        this.send(
          scope,
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND ${x.name('SK')} BETWEEN ${x.value(eventSk(page.after + 1))} AND ${x.value(`${EVENT_PREFIX}~`)}`,
            ConsistentRead: true,
            Limit: limit - events.length,
            ...(start ? { ExclusiveStartKey: start } : {}),
            ...x.params,
          }),
        ),
      );
      for (const item of result.Items ?? []) events.push(...decodeEventPack(scope, item).filter((s) => s.seq > page.after));
      start = result.LastEvaluatedKey;
    } while (start && events.length < limit);
    return events.slice(0, limit);
  }

  /**
   * Query on GSI1. Eventually consistent (a GSI has no consistent reads): for views. Decisions
   * use getBranches with ids derived from the parent's spawn state instead.
   */
  async listChildren(scope: Scope, parentId: string): Promise<BranchRecord[]> {
    const x = new Expr();
    const items = await this.queryAll(
      scope,
      {
        IndexName: GSI1,
        KeyConditionExpression: `${x.name('GSI1PK')} = ${x.value(childrenPk(scope, parentId))}`,
        ...x.params,
      },
      `listChildren ${parentId}`,
    );
    // The index holds keys only: the children themselves come from a consistent batch read.
    const ids = items.map((item) => branchIdOfSk(item.SK as string)).sort(compareIds);
    return this.getBranches(scope, ids);
  }

  // --- sync points ----------------------------------------------------------------------

  async createSyncPoint(syncPoint: SyncPointRecord): Promise<boolean> {
    const item = this.withTtl(syncPointItem(syncPoint));
    assertFits(`sync point ${syncPoint.parentId}#${syncPoint.seq}`, item);
    return this.putIfAbsent(syncPoint, item, `createSyncPoint ${syncPoint.parentId}#${syncPoint.seq}`);
  }

  async getSyncPoint(scope: Scope, parentId: string, seq: number): Promise<SyncPointRecord | undefined> {
    const item = await this.get(scope, syncKey(scope, parentId, seq), `getSyncPoint ${parentId}#${seq}`);
    return item && decodeSyncPoint(item);
  }

  /**
   * Flat-cost exactly-once fan-in (see docs/dynamodb-schema.md): the end is counted on its
   * shard (a bounded `done` set, one atomic conditional write), then the shard's counts are
   * rolled up into the sync point with a write conditioned on what was rolled up from that shard
   * before, so a roll-up adds exactly the ends not yet added, whoever makes it and however often.
   *
   * Ends of the same shard told to this store while a write to that shard is under way (a
   * batch of sibling steps in one Lambda invocation, a wide local fan-in) are written together
   * when it is done: one conditional write of up to FAN_IN_GROUP_MAX members and one roll-up
   * serve them all. Nothing else changes: a member already counted is refused as before.
   */
  recordChildEnd(scope: Scope, parentId: string, seq: number, childId: string, outcome: ChildOutcome): Promise<RecordChildEndResult> {
    if (!OUTCOME_COUNTERS[outcome]) return Promise.reject(new BranchSpawnerError(`unknown child outcome ${String(outcome)}`));
    const { shard, member } = fanInShardOf(parentId, childId);
    const key = `${runPk(scope)}\n${parentId}\n${seq}\n${shard}`;
    return new Promise((resolve, reject) => {
      let queue = this.fanInQueues.get(key);
      if (!queue) {
        queue = { waiting: [], running: false };
        this.fanInQueues.set(key, queue);
      }
      queue.waiting.push({ member, childId, outcome, resolve, reject });
      if (!queue.running) void this.drainFanIn(key, queue, scope, parentId, seq, shard);
    });
  }

  private async drainFanIn(key: string, queue: FanInQueue, scope: Scope, parentId: string, seq: number, shard: string): Promise<void> {
    queue.running = true;
    // Ends told in the same turn join the first group.
    await Promise.resolve();
    while (queue.waiting.length) {
      const group = queue.waiting.splice(0, FAN_IN_GROUP_MAX);
      try {
        const results = await this.recordEnds(scope, parentId, seq, shard, group);
        group.forEach((end, i) => end.resolve(results[i]));
      } catch (error) {
        for (const end of group) end.reject(error);
      }
    }
    // No await since the check above: nobody can have joined in between.
    queue.running = false;
    this.fanInQueues.delete(key);
  }

  /** Records the ends of one shard (see recordChildEnd); one result per end, in order. */
  private async recordEnds(scope: Scope, parentId: string, seq: number, shard: string, group: PendingEnd[]): Promise<RecordChildEndResult[]> {
    const context = `recordChildEnd ${parentId}#${seq} ${group.length === 1 ? group[0].childId : `${group.length} ends of shard ${shard}`}`;
    const shardItemKey = shardKey(scope, parentId, seq, shard);
    const snapshot = shardSnapshotAttribute(shard);
    const rootKey = syncKey(scope, parentId, seq);
    // The first telling of each member in the group is the one that may count; later ones are repeats.
    const outcomes = new Map<string, ChildOutcome>();
    for (const end of group) if (!outcomes.has(end.member)) outcomes.set(end.member, end.outcome);
    let pending = [...outcomes.keys()];
    const applied = new Set<string>();
    let ours: Counts | undefined;
    let before: number | undefined;
    let read: { shardItem?: Attributes; root?: Attributes } | undefined;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 100) throw new TransientError(`${context}: the write of shard ${shard} kept conflicting`);
      const adds: Counts = { succeeded: 0, failed: 0, cancelled: 0 };
      for (const m of pending) adds[OUTCOME_COUNTERS[outcomes.get(m)!] as keyof Counts]++;
      const x = new Expr();
      const done = x.name('done');
      const counts = (Object.keys(adds) as (keyof Counts)[]).filter((c) => adds[c] > 0).map((c) => `${x.name(c)} ${x.value(adds[c])}`);
      const ttl = this.ttlSeconds === undefined ? '' : ` SET ${x.name(TTL_ATTRIBUTE)} = if_not_exists(${x.name(TTL_ATTRIBUTE)}, ${x.value(Math.floor(this.now() / 1000) + this.ttlSeconds)})`;
      const members = pending;
      const counted = await this.conditional(context, () =>
        this.send(scope, new UpdateCommand({
            TableName: this.tableName,
            Key: shardItemKey,
            UpdateExpression: `ADD ${done} ${x.value(new Set(members))}, ${counts.join(', ')}${ttl}`,
            ConditionExpression: members.map((m) => `NOT contains(${done}, ${x.value(m)})`).join(' AND '),
            ReturnValues: 'ALL_NEW',
            ...x.params,
          })),
      );
      if (counted) {
        for (const m of members) applied.add(m);
        ours = countsOf(counted.Attributes ?? {});
        // The usual case: nobody rolled up this shard since our own write, so it is at ours minus these.
        before = encodeSnapshot({ succeeded: ours.succeeded - adds.succeeded, failed: ours.failed - adds.failed, cancelled: ours.cancelled - adds.cancelled });
        read = undefined;
        break;
      }
      // Some of them are counted already (told before): write the others, if any.
      read = await this.readShardAndRoot(scope, shardItemKey, rootKey, snapshot, context);
      const present = read.shardItem?.done instanceof Set ? (read.shardItem.done as Set<string>) : new Set<string>();
      pending = members.filter((m) => !present.has(m));
    }
    const counters = await this.rollUp(scope, parentId, seq, { shard, shardItemKey, snapshot, rootKey, context }, ours, before, read);
    const told = new Set<string>();
    return group.map((end) => {
      const first = !told.has(end.member);
      told.add(end.member);
      return { applied: first && applied.has(end.member), counters };
    });
  }

  /**
   * Rolls a shard up into the sync point until the sync point covers `ours` (a shard state that
   * has the ends being recorded); answers the sync point's counters, which then include them.
   */
  private async rollUp(
    scope: Scope,
    parentId: string,
    seq: number,
    at: { shard: string; shardItemKey: Key; snapshot: string; rootKey: Key; context: string },
    ours: Counts | undefined,
    before: number | undefined,
    read: { shardItem?: Attributes; root?: Attributes } | undefined,
  ): Promise<RecordChildEndResult['counters']> {
    const { shard, shardItemKey, snapshot, rootKey, context } = at;
    for (let attempt = 0; ; attempt++) {
      if (before === undefined || ours === undefined) {
        // A repeated end, or a lost race on this shard's roll-up: the shard as it is now (it has
        // these ends) and what the sync point rolled up from it, in one request.
        if (attempt > 100) throw new TransientError(`${context}: the roll-up of shard ${shard} kept conflicting`);
        const { shardItem, root } = read ?? (await this.readShardAndRoot(scope, shardItemKey, rootKey, snapshot, context));
        read = undefined;
        if (!root) throw new NotFoundError(`sync point ${parentId}#${seq} of run ${scope.runId} does not exist`);
        ours = countsOf(shardItem ?? {});
        const rolled = decodeSnapshot(root[snapshot]);
        // Already rolled up to (or past) a shard state that has these ends: the counters include them.
        if (ended(rolled) >= ended(ours)) return decodeCounters(root);
        // Roll up to the shard as it is now, which covers every end written to it so far (so
        // one winner serves all those waiting).
        before = encodeSnapshot(rolled);
      }
      const prior = decodeSnapshot(before);
      const now = ours;
      const r = new Expr();
      const k = r.name(snapshot);
      const adds = (['succeeded', 'failed', 'cancelled'] as const)
        .filter((name) => now[name] - prior[name] > 0)
        .map((name) => `${r.name(name)} ${r.value(now[name] - prior[name])}`);
      const condition = before === 0 ? `attribute_not_exists(${k})` : `${k} = ${r.value(before)}`;
      const rolledUp = await this.conditional(context, () =>
        this.send(scope, new UpdateCommand({
            TableName: this.tableName,
            Key: rootKey,
            UpdateExpression: `SET ${k} = ${r.value(encodeSnapshot(now))}${adds.length ? ` ADD ${adds.join(', ')}` : ''}`,
            ConditionExpression: `attribute_exists(${r.name('PK')}) AND ${condition}`,
            ReturnValues: 'ALL_NEW',
            ...r.params,
          })),
      );
      if (rolledUp) return decodeCounters(rolledUp.Attributes ?? {});
      before = undefined;
    }
  }

  /**
   * A fan-in shard's counts and the sync point's counters with what it rolled up from that shard,
   * in one consistent BatchGetItem (the order of the two reads does not matter: both only grow).
   */
  private async readShardAndRoot(
    scope: Scope,
    shardItemKey: Key,
    rootKey: Key,
    snapshot: string,
    context: string,
  ): Promise<{ shardItem?: Attributes; root?: Attributes }> {
    const items = await this.batchGet(scope, [shardItemKey, rootKey], context, ['SK', 'done', 'total', 'succeeded', 'failed', 'cancelled', snapshot]);
    return {
      shardItem: items.find((item) => item.SK === shardItemKey.SK),
      root: items.find((item) => item.SK === rootKey.SK),
    };
  }

  async listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]> {
    const x = new Expr();
    const prefix = shardSkPrefix(parentId, seq);
    const items = await this.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(prefix)})`,
        ConsistentRead: true,
        ...x.params,
      },
      `listCountedChildren ${parentId}#${seq}`,
    );
    return items
      .flatMap((item) => {
        const shard = String(item.SK).slice(prefix.length);
        return item.done instanceof Set ? [...(item.done as Set<string>)].map((m) => childOfShardMember(parentId, shard, m)) : [];
      })
      .sort(compareIds);
  }

  async countEndedInRange(scope: Scope, parentId: string, seq: number, first: number, count: number): Promise<number> {
    const keys = shardsOfRange(first, count).map((shard) => shardKey(scope, parentId, seq, shard));
    const items = await this.batchGet(scope, keys, `countEndedInRange ${parentId}#${seq}`, ['SK', 'done']);
    return items.reduce((n, item) => n + countedInRange(item, first, count), 0);
  }

  async putBatchToken(scope: Scope, parentId: string, seq: number, first: number, taskToken: string): Promise<void> {
    const item = this.withTtl({ ...batchTokenKey(scope, parentId, seq, first), entity: 'BATCH', taskToken });
    await this.call(`putBatchToken ${parentId}#${seq}`, () => this.send(scope, new PutCommand({ TableName: this.tableName, Item: item })));
  }

  async getBatchToken(scope: Scope, parentId: string, seq: number, first: number): Promise<string | undefined> {
    const item = await this.get(scope, batchTokenKey(scope, parentId, seq, first), `getBatchToken ${parentId}#${seq}`);
    return typeof item?.taskToken === 'string' ? item.taskToken : undefined;
  }

  async claimAggregation(
    scope: Scope,
    parentId: string,
    seq: number,
    outcome: 'resume' | 'fail',
    at: number,
  ): Promise<boolean> {
    const x = new Expr();
    const aggregatedAt = x.name('aggregatedAt');
    const updated = await this.conditional(`claimAggregation ${parentId}#${seq}`, () =>
      this.send(scope, 
        new UpdateCommand({
          TableName: this.tableName,
          Key: syncKey(scope, parentId, seq),
          UpdateExpression: `SET ${aggregatedAt} = ${x.value(at)}, ${x.name('outcome')} = ${x.value(outcome)}`,
          ConditionExpression: `attribute_exists(${x.name('PK')}) AND attribute_not_exists(${aggregatedAt})`,
          ...x.params,
        }),
      ),
    );
    return updated !== undefined;
  }

  /** Query on the run's partition for `S#` items, filtered on `attribute_not_exists(aggregatedAt)`. */
  async listOpenSyncPoints(scope: Scope): Promise<SyncPointRecord[]> {
    const x = new Expr();
    const items = await this.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(SYNC_PREFIX)})`,
        FilterExpression: `attribute_not_exists(${x.name('aggregatedAt')})`,
        ConsistentRead: true,
        ...x.params,
      },
      `listOpenSyncPoints ${scope.runId}`,
    );
    return items.map(decodeSyncPoint).sort((a, b) => compareIds(a.parentId, b.parentId) || a.seq - b.seq);
  }

  // --- wide spawns and cost ------------------------------------------------------------

  async putChildSpecs(scope: Scope, key: string, specs: ChildSpec[]): Promise<void> {
    const items = specChunkItems(scope, key, specs).map((item) => this.withTtl(item));
    for (const item of items) assertFits(`child specs ${key}`, item);
    await mapLimit(items, this.writeConcurrency, (item) => this.putIfAbsent(scope, item, `putChildSpecs ${key}`));
  }

  async getChildSpecs(scope: Scope, key: string, offset: number, count: number): Promise<ChildSpec[]> {
    // The chunks holding the range, last first, one a page: those starting inside it, then the one
    // it starts in. A slice costs its own chunks however many the spawn has.
    const x = new Expr();
    const input = {
      KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND ${x.name('SK')} BETWEEN ${x.value(specsSkPrefix(key))} AND ${x.value(specChunkSk(key, offset + Math.max(count, 1) - 1))}`,
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
      ...x.params,
    };
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.call(`getChildSpecs ${key}`, () =>
        this.send(scope, new QueryCommand({ ...input, TableName: this.tableName, ExclusiveStartKey: start })),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start && !items.some((item) => Number(item.first) <= offset));
    let specs = specsFromChunks(items, offset, count) as ChildSpec[];
    if (specs.length !== count) specs = specsFromChunks(await this.allSpecChunks(scope, key), offset, count) as ChildSpec[];
    if (specs.length !== count) throw new NotFoundError(`child specs ${key} [${offset}, ${offset + count}) of run ${scope.runId} are not stored`);
    return specs;
  }

  /** Every chunk of a spawn's specs: for chunks stored before their keys named their first index. */
  private allSpecChunks(scope: Scope, key: string): Promise<Attributes[]> {
    const x = new Expr();
    return this.queryAll(
      scope,
      {
        KeyConditionExpression: `${x.name('PK')} = ${x.value(runPk(scope))} AND begins_with(${x.name('SK')}, ${x.value(specsSkPrefix(key))})`,
        ConsistentRead: true,
        ...x.params,
      },
      `getChildSpecs ${key}`,
    );
  }

  async addCost(scope: Scope, usage: Partial<CostCounters>): Promise<void> {
    const x = new Expr();
    // The write's own unit is included (the cost item stays far below 1 KB).
    const fields = { ...usage, writeUnits: (usage.writeUnits ?? 0) + 1 };
    const adds = COST_FIELDS.filter((f) => (fields[f] ?? 0) !== 0).map((f) => `${x.name(f)} ${x.value(round6(fields[f]!))}`);
    const ttl = this.ttlSeconds === undefined ? '' : ` SET ${x.name(TTL_ATTRIBUTE)} = if_not_exists(${x.name(TTL_ATTRIBUTE)}, ${x.value(Math.floor(this.now() / 1000) + this.ttlSeconds)})`;
    await this.call(`addCost ${scope.runId}`, () =>
      this.doc.send(
        new UpdateCommand({ TableName: this.tableName, Key: costKey(scope), UpdateExpression: `ADD ${adds.join(', ')}${ttl}`, ...x.params }),
      ),
    );
  }

  async getCost(scope: Scope): Promise<CostCounters> {
    const item = await this.get(scope, costKey(scope), `getCost ${scope.runId}`);
    return decodeCost(item);
  }

  // --- requests -------------------------------------------------------------------------

  private withTtl(item: Item): Item {
    if (this.ttlSeconds !== undefined) item[TTL_ATTRIBUTE] = Math.floor(this.now() / 1000) + this.ttlSeconds;
    return item;
  }

  private async putIfAbsent(scope: Scope, item: Item, context: string): Promise<boolean> {
    const written = await this.conditional(context, () =>
      this.send(scope, 
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      ),
    );
    return written !== undefined;
  }

  private async get(scope: Scope, key: Key, context: string, attributes?: string[]): Promise<Attributes | undefined> {
    const x = new Expr();
    const projection = attributes?.map((a) => x.name(a)).join(', ');
    const output = await this.call(context, () =>
      this.send(scope, 
        new GetCommand({
          TableName: this.tableName,
          Key: key,
          ConsistentRead: true,
          ...(projection ? { ProjectionExpression: projection, ExpressionAttributeNames: x.names } : {}),
        }),
      ),
    );
    return output.Item;
  }

  private async updateBranchItem(
    scope: Scope,
    branchId: string,
    context: string,
    expression: Pick<
      ConstructorParameters<typeof UpdateCommand>[0],
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<BranchRecord | undefined> {
    const updated = await this.conditional(context, () =>
      this.send(scope, 
        new UpdateCommand({
          TableName: this.tableName,
          Key: branchKey(scope, branchId),
          ReturnValues: 'ALL_NEW',
          ...expression,
        }),
      ),
    );
    return updated?.Attributes ? this.decodeBranch(scope, updated.Attributes) : undefined;
  }

  private async decodeBranch(scope: Scope, item: Attributes): Promise<BranchRecord> {
    return decodeBranch(await checkOutValues(scope, item, this.blobs));
  }

  private async queryAll(scope: Scope, input: Omit<QueryCommandInput, 'TableName'>, context: string): Promise<Attributes[]> {
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.call(context, () =>
        this.send(scope, new QueryCommand({ ...input, TableName: this.tableName, ExclusiveStartKey: start })),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  private async batchGet(scope: Scope, keys: Key[], context: string, attributes?: string[]): Promise<Attributes[]> {
    const items: Attributes[] = [];
    let pending: Record<string, unknown>[] = keys as unknown as Record<string, unknown>[];
    if (pending.length === 0) return items;
    const x = new Expr();
    const projection = attributes?.map((a) => x.name(a)).join(', ');
    return withRetries({ attempts: BATCH_GET_ROUNDS, baseMs: 25, maxMs: 2_000 }, async (round, last) => {
      const output = await this.call(context, () =>
        this.send(scope, 
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: {
                Keys: pending,
                ConsistentRead: true,
                ...(projection ? { ProjectionExpression: projection, ExpressionAttributeNames: x.names } : {}),
              },
            },
          }),
        ),
      );
      const got = output.Responses?.[this.tableName] ?? [];
      items.push(...got);
      pending = output.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      if (pending.length === 0) return items;
      if (last) throw new TransientError(`${context}: ${pending.length} keys still unprocessed after ${round} BatchGetItem rounds`);
      // Unprocessed keys with no progress at all mean throttling: back off before asking again.
      return again(got.length === 0 ? undefined : 0);
    });
  }

  /**
   * Every request goes through here: it asks for ReturnConsumedCapacity and hands the units
   * DynamoDB reports to the cost meter, by run. A refused conditional write is billed too (one
   * write unit is counted for it: the service does not report what it charged).
   */
  private async send<C extends StoreCommand>(scope: Scope, command: C): Promise<OutputOf<C>> {
    // A new child's item is also written to GSI1 (keys only: one unit). Engines that do not
    // report index units (dynalite) answer INDEXES without a GlobalSecondaryIndexes part: that
    // unit is then counted here, as DynamoDB would bill it.
    const indexed = command instanceof PutCommand && command.input.Item?.GSI1PK !== undefined;
    (command.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = indexed ? 'INDEXES' : 'TOTAL';
    const write = !(command instanceof GetCommand || command instanceof QueryCommand || command instanceof BatchGetCommand);
    try {
      const output = (await this.doc.send(command as never)) as OutputOf<C>;
      if (this.meter) {
        const consumed = (output as { ConsumedCapacity?: { GlobalSecondaryIndexes?: unknown } }).ConsumedCapacity;
        const units = capacityOf(consumed) + (indexed && consumed && !consumed.GlobalSecondaryIndexes ? 1 : 0);
        this.meter.add(scope, write ? { writeUnits: units } : { readUnits: units });
      }
      return output;
    } catch (error) {
      if (this.meter && write && (error as Error)?.name === 'ConditionalCheckFailedException') this.meter.add(scope, { writeUnits: 1 });
      throw error;
    }
  }

  private async call<T>(context: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw mapDynamoError(error, context);
    }
  }

  /** Runs a conditional write; a failed condition answers undefined instead of throwing. */
  private async conditional<T>(context: string, request: () => Promise<T>): Promise<T | undefined> {
    try {
      return await request();
    } catch (error) {
      const mapped = mapDynamoError(error, context);
      if (mapped instanceof ConflictError) return undefined;
      throw mapped;
    }
  }
}

function capacityOf(consumed: unknown): number {
  if (Array.isArray(consumed)) return consumed.reduce((n: number, c) => n + Number(c?.CapacityUnits ?? 0), 0);
  return Number((consumed as { CapacityUnits?: number } | undefined)?.CapacityUnits ?? 0);
}


function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

function countsOf(item: Attributes): { succeeded: number; failed: number; cancelled: number } {
  return { succeeded: Number(item.succeeded ?? 0), failed: Number(item.failed ?? 0), cancelled: Number(item.cancelled ?? 0) };
}

function ended(c: { succeeded: number; failed: number; cancelled: number }): number {
  return c.succeeded + c.failed + c.cancelled;
}

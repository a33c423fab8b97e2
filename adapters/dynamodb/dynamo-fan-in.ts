/**
 * The fan-in's sharded counter on the table (see docs/dynamodb-schema.md): each child's end is
 * counted once on its shard, and the shards are rolled up into the sync point, at a flat cost per
 * end whatever the width.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { BranchSpawnerError, NotFoundError, TransientError } from '../../core/errors';
import { compareIds, type ChildOutcome, type Scope } from '../../core/model';
import type { RecordChildEndResult } from '../../core/ports';
import { decodeCounters, runPk, syncKey, type Key } from './item-codec';
import {
  childOfShardMember,
  countedInRange,
  decodeSnapshot,
  encodeSnapshot,
  fanInShardOf,
  shardKey,
  shardsOfRange,
  shardSkPrefix,
  shardSnapshotAttribute,
} from './fan-in-shards';
import { Expr } from './expression';
import type { Attributes, DynamoTable } from './dynamo-table';

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

export class DynamoFanIn {
  /** Ends waiting to be written, per fan-in shard (see recordChildEnd). */
  private readonly fanInQueues = new Map<string, FanInQueue>();

  constructor(private readonly table: DynamoTable) {}

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
      const ttl = this.table.ttlClause(x);
      const members = pending;
      const counted = await this.table.conditional(context, () =>
        this.table.send(scope, new UpdateCommand({
            TableName: this.table.name,
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
      const rolledUp = await this.table.conditional(context, () =>
        this.table.send(scope, new UpdateCommand({
            TableName: this.table.name,
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
    const items = await this.table.batchGet(scope, [shardItemKey, rootKey], context, ['SK', 'done', 'total', 'succeeded', 'failed', 'cancelled', snapshot]);
    return {
      shardItem: items.find((item) => item.SK === shardItemKey.SK),
      root: items.find((item) => item.SK === rootKey.SK),
    };
  }

  async listCountedChildren(scope: Scope, parentId: string, seq: number): Promise<string[]> {
    const x = new Expr();
    const prefix = shardSkPrefix(parentId, seq);
    const items = await this.table.queryAll(
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
    const items = await this.table.batchGet(scope, keys, `countEndedInRange ${parentId}#${seq}`, ['SK', 'done']);
    return items.reduce((n, item) => n + countedInRange(item, first, count), 0);
  }
}

function countsOf(item: Attributes): { succeeded: number; failed: number; cancelled: number } {
  return { succeeded: Number(item.succeeded ?? 0), failed: Number(item.failed ?? 0), cancelled: Number(item.cancelled ?? 0) };
}

function ended(c: { succeeded: number; failed: number; cancelled: number }): number {
  return c.succeeded + c.failed + c.cancelled;
}

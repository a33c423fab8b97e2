/**
 * The fan-in's shards as items (pure, as item-codec.ts): where each child's end is counted, and
 * the counts a sync point has rolled up from each shard (see docs/dynamodb-schema.md). Both
 * stores count on these same items.
 */
import type { Scope } from '../../core/model';
import { checkSk, FAN_IN_SHARD_SIZE, keyPart, runPk, SHARD_PREFIX, type Key } from './item-codec';

export function shardSkPrefix(parentId: string, seq: number): string {
  return `${SHARD_PREFIX}${keyPart(parentId)}#${String(seq).padStart(6, '0')}#`;
}

export const shardKey = (scope: Scope, parentId: string, seq: number, shard: string): Key => ({
  PK: runPk(scope),
  SK: checkSk(`${shardSkPrefix(parentId, seq)}${shard}`),
});

export interface FanInPlace {
  /** The shard's name (its number, or `h<n>` for ids that are not `<parentId>.<index>`). */
  shard: string;
  /** What the shard's `done` set holds for this child (its index within the shard, or its id). */
  member: string;
}

/**
 * Where a child's end is counted: child `<parentId>.<index>` goes to shard ⌊index / 250⌋ as
 * `index mod 250`, so a shard item never holds more than 250 short members.
 */
export function fanInShardOf(parentId: string, childId: string): FanInPlace {
  const prefix = `${parentId}.`;
  const rest = childId.startsWith(prefix) ? childId.slice(prefix.length) : '';
  if (/^(0|[1-9]\d{0,8})$/.test(rest)) {
    const index = Number(rest);
    return { shard: String(Math.floor(index / FAN_IN_SHARD_SIZE)), member: String(index % FAN_IN_SHARD_SIZE) };
  }
  let h = 2166136261;
  for (let i = 0; i < childId.length; i++) h = Math.imul(h ^ childId.charCodeAt(i), 16777619);
  return { shard: `h${(h >>> 0) % 64}`, member: childId };
}

/** The child id a shard member stands for (the inverse of fanInShardOf). */
export function childOfShardMember(parentId: string, shard: string, member: string): string {
  return shard.startsWith('h') ? member : `${parentId}.${Number(shard) * FAN_IN_SHARD_SIZE + Number(member)}`;
}

/** The fan-in shards holding the children with indices `first .. first+count`. */
export function shardsOfRange(first: number, count: number): string[] {
  if (count <= 0) return [];
  const shards: string[] = [];
  for (let s = Math.floor(first / FAN_IN_SHARD_SIZE); s <= Math.floor((first + count - 1) / FAN_IN_SHARD_SIZE); s++) shards.push(String(s));
  return shards;
}

/** How many members of a shard item's `done` set have an index in `first .. first+count`. */
export function countedInRange(item: Record<string, unknown> | undefined, first: number, count: number): number {
  if (!item || !(item.done instanceof Set)) return 0;
  const base = Number(String(item.SK).slice(String(item.SK).lastIndexOf('#') + 1)) * FAN_IN_SHARD_SIZE;
  let n = 0;
  for (const member of item.done as Set<string>) {
    const index = base + Number(member);
    if (index >= first && index < first + count) n++;
  }
  return n;
}

/** The sync point's attribute holding what it has rolled up from a shard. */
export function shardSnapshotAttribute(shard: string): string {
  return `k${shard}`;
}

/** A shard's counts as one number (each count < 1000): what the sync point has rolled up from it. */
export function encodeSnapshot(c: { succeeded: number; failed: number; cancelled: number }): number {
  return c.cancelled * 1_000_000 + c.failed * 1_000 + c.succeeded;
}

export function decodeSnapshot(value: unknown): { succeeded: number; failed: number; cancelled: number } {
  const n = Number(value ?? 0);
  return { succeeded: n % 1_000, failed: Math.floor(n / 1_000) % 1_000, cancelled: Math.floor(n / 1_000_000) };
}

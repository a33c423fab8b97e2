/**
 * How a wide spawn's child specs become items (pure, as item-codec.ts): chunks of bounded size,
 * each keyed by the index of its first spec.
 */
import type { Scope } from '../../core/model';
import { checkSk, keyPart, runPk, SPEC_CHUNK_BYTES, SPECS_PREFIX, type Item } from './item-codec';

export function specsSkPrefix(key: string): string {
  return `${SPECS_PREFIX}${keyPart(key)}#`;
}

/** Digits of a chunk's first index in its sort key (a spawn holds at most 100,000 specs). */
const SPEC_INDEX_DIGITS = 9;

/**
 * A chunk's sort key names the index of its first spec, so the chunks holding a range are found
 * by key: the last one starting at or before the range and those starting inside it.
 */
export function specChunkSk(key: string, first: number): string {
  return checkSk(`${specsSkPrefix(key)}${String(first).padStart(SPEC_INDEX_DIGITS, '0')}`);
}

/**
 * The stored chunks of a spawn's child specs: consecutive specs, cut where the JSON would pass
 * SPEC_CHUNK_BYTES; each chunk knows the index of its first spec.
 */
export function specChunkItems(scope: Scope, key: string, specs: unknown[]): Item[] {
  const items: Item[] = [];
  let chunk: string[] = [];
  let bytes = 0;
  let first = 0;
  const flush = () => {
    items.push({ PK: runPk(scope), SK: specChunkSk(key, first), entity: 'SPECS', first, count: chunk.length, specs: `[${chunk.join(',')}]` });
    first += chunk.length;
    chunk = [];
    bytes = 0;
  };
  for (const spec of specs) {
    const text = JSON.stringify(spec);
    const size = Buffer.byteLength(text) + 1;
    if (chunk.length > 0 && bytes + size > SPEC_CHUNK_BYTES) flush();
    chunk.push(text);
    bytes += size;
  }
  if (chunk.length > 0 || items.length === 0) flush();
  return items;
}

/** Whether a stored chunk holds any of the specs `offset .. offset+count`. */
export function chunkCovers(item: Record<string, unknown>, offset: number, count: number): boolean {
  const first = Number(item.first);
  return first < offset + count && first + Number(item.count) > offset;
}

/** The specs `offset .. offset+count` out of the chunk items (in any order; others are skipped). */
export function specsFromChunks(items: Record<string, unknown>[], offset: number, count: number): unknown[] {
  const specs: unknown[] = [];
  for (const item of [...items].sort((a, b) => Number(a.first) - Number(b.first))) {
    if (!chunkCovers(item, offset, count)) continue;
    const first = Number(item.first);
    const all = JSON.parse(String(item.specs)) as unknown[];
    specs.push(...all.slice(Math.max(0, offset - first), Math.min(Number(item.count), offset + count - first)));
  }
  return specs;
}

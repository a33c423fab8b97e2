/**
 * A large value shown within a size: the one way the run document, the API's views, the CLI and
 * LLM prompts show a value that may be megabytes (docs/large-values.md). The result is itself a
 * JSON value of about `maxBytes` at most: small members are kept whole (an aggregate's
 * `child_count` and `metadata` survive beside its 10,000 `results`), large ones are cut, and each
 * cut says what it left out, so nobody takes a preview for the whole.
 */

export interface BoundedValue {
  /** The value itself when it fits, else a preview of it. */
  value: unknown;
  /** Size of the whole value as JSON (UTF-8 bytes). */
  bytes: number;
  /** True when `value` is a preview. */
  truncated: boolean;
  /** Entries (object members, array items) left out of the preview, at any depth. */
  entriesLeftOut: number;
}

/** The key of an object preview's note, and the prefix of an array preview's last item. */
export const LEFT_OUT_MARK = '…';
/** Below this a member is not worth previewing: it is left out whole. */
const MIN_PREVIEW_BYTES = 64;

export function boundValue(value: unknown, maxBytes: number): BoundedValue {
  const bytes = jsonBytes(value);
  if (bytes <= maxBytes) return { value, bytes, truncated: false, entriesLeftOut: 0 };
  const counter = { leftOut: 0 };
  return { value: preview(value, bytes, Math.max(MIN_PREVIEW_BYTES, maxBytes), counter), bytes, truncated: true, entriesLeftOut: counter.leftOut };
}

/** UTF-8 bytes of a value's JSON (`undefined` counts as `null`). */
export function jsonBytes(value: unknown): number {
  return utf8Bytes(JSON.stringify(value) ?? 'null');
}

function preview(value: unknown, bytes: number, budget: number, counter: { leftOut: number }): unknown {
  if (bytes <= budget) return value;
  if (typeof value === 'string') {
    // Cut by characters, measured in bytes: at most 3 bytes a character.
    let keep = Math.max(0, budget - 48);
    let head = value.slice(0, keep);
    while (keep > 0 && utf8Bytes(head) > budget - 48) head = value.slice(0, (keep = Math.floor(keep * 0.8)));
    return `${head}${LEFT_OUT_MARK} (${value.length - head.length} more characters, ${bytes} bytes in all)`;
  }
  if (value === null || typeof value !== 'object') return value;
  const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const sized = entries.map(([key, v], index) => ({ key, v, index, bytes: jsonBytes(v) + utf8Bytes(key) + 4 }));
  // The smallest members first, whole while they fit; then the others previewed in what is left.
  const order = [...sized].sort((a, b) => a.bytes - b.bytes || a.index - b.index);
  const kept = new Map<number, unknown>();
  let left = budget - 64;
  for (const entry of order) {
    if (entry.bytes <= left) {
      kept.set(entry.index, entry.v);
      left -= entry.bytes;
    } else if (left >= MIN_PREVIEW_BYTES * 2 && entry.v !== null && (typeof entry.v === 'object' || typeof entry.v === 'string')) {
      const share = Math.floor(left / 2);
      kept.set(entry.index, preview(entry.v, entry.bytes, share, counter));
      left -= share;
    }
  }
  const omitted = sized.filter((e) => !kept.has(e.index));
  counter.leftOut += omitted.length;
  const note = omitted.length
    ? `${omitted.length} of ${entries.length} ${Array.isArray(value) ? 'items' : 'entries'} left out (${omitted.reduce((n, e) => n + e.bytes, 0)} bytes)`
    : undefined;
  if (Array.isArray(value)) {
    const items = sized.filter((e) => kept.has(e.index)).map((e) => kept.get(e.index));
    return note ? [...items, `${LEFT_OUT_MARK} ${note}`] : items;
  }
  const out: Record<string, unknown> = {};
  for (const e of sized) if (kept.has(e.index)) out[e.key] = kept.get(e.index);
  if (note) out[LEFT_OUT_MARK] = note;
  return out;
}

const NON_ASCII = /[^\x00-\x7f]/;

export function utf8Bytes(text: string): number {
  // Without Buffer (core has no node I/O); ASCII (most JSON) is answered by one scan.
  if (!NON_ASCII.test(text)) return text.length;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) bytes += c < 0x800 ? 1 : c >= 0xd800 && c < 0xdc00 ? 1 : c >= 0xdc00 && c < 0xe000 ? 0 : 2;
  }
  return bytes;
}

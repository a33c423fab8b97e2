/**
 * How big and how deep a document from outside (a scenario file, a request body, an event) may
 * be. Checked before anything else walks the document, without recursion, so a hostile one is
 * refused with the field it is about instead of overflowing a stack or a store item later.
 */
import { jsonBytes } from './bounded-value';
import { PayloadTooLargeError, ScenarioError } from './errors';

/**
 * Nesting levels a document may have (objects and arrays). Hand-written scenarios rarely pass
 * 10; past 64 every recursive walk (JSON, YAML, the SDKs' marshalling) is a risk, not a feature.
 */
export const MAX_DOCUMENT_DEPTH = 64;

/**
 * A scenario's size as JSON text. The run's record holds the whole scenario (request and agents)
 * in one store item of at most 400 KB; 256 KiB leaves room for the run's own bookkeeping.
 */
export const MAX_DOCUMENT_BYTES = 256 * 1024;

/**
 * The text of a document (a scenario file, a request body; layout, comments and escapes
 * included), refused before it is read or parsed. Four times the document's own limit.
 */
export const MAX_DOCUMENT_TEXT_BYTES = 1024 * 1024;

/**
 * The largest single value a run keeps (a result, an aggregate, a memory, an input), as JSON.
 * Values past the 1 KB claim-check threshold are stored apart from the items (S3, the data
 * folder), so the 400 KB item limit no longer bounds them; this does: a 10,000-child aggregate of
 * 2 KB results is 20 MB, and every worker that reads a value holds it whole in memory.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;

interface Frame {
  value: unknown;
  path: string[];
  depth: number;
}

/**
 * Refuses a document nested deeper than MAX_DOCUMENT_DEPTH (a ScenarioError naming the path to
 * the deep part) or larger than MAX_DOCUMENT_BYTES as JSON (a PayloadTooLargeError naming the
 * field that holds most of it). `source` names the document in errors (a file path, "request").
 */
export function checkDocumentBounds(document: unknown, source: string): void {
  // Bytes of JSON text under each path of up to 3 segments (to name the field that is too big).
  const sizes = new Map<string, number>();
  let total = 0;
  const add = (path: string[], bytes: number) => {
    total += bytes;
    for (let n = 1; n <= Math.min(path.length, 3); n++) {
      const key = path.slice(0, n).join('.');
      sizes.set(key, (sizes.get(key) ?? 0) + bytes);
    }
  };
  const stack: Frame[] = [{ value: document, path: [], depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (value !== null && typeof value === 'object') {
      if (depth >= MAX_DOCUMENT_DEPTH) {
        const cycle = cycleOn(document, path);
        if (cycle !== undefined) {
          throw new ScenarioError(source, `${cycle}: refers to itself (a YAML alias inside its own anchor); a scenario is a tree`, cycle);
        }
        const field = path.length ? path.slice(0, 3).join('.') : '(root)';
        throw new ScenarioError(source, `${field}: nested more than ${MAX_DOCUMENT_DEPTH} levels deep; at most ${MAX_DOCUMENT_DEPTH} levels are accepted`, field);
      }
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      add(path, 2 + Math.max(0, entries.length - 1));
      for (const [key, child] of entries) {
        if (!Array.isArray(value)) add(path, jsonBytes(key) + 1);
        stack.push({ value: child, path: [...path, key], depth: depth + 1 });
      }
    } else {
      add(path, typeof value === 'string' ? jsonBytes(value) : String(value).length);
    }
    // Stop walking as soon as it is too large: the rest cannot make it fit.
    if (total > MAX_DOCUMENT_BYTES * 2) break;
  }
  if (total <= MAX_DOCUMENT_BYTES) return;
  const field = largestPart(sizes, total);
  const detail =
    `the document is ${total > MAX_DOCUMENT_BYTES * 2 ? 'over ' : ''}${total} bytes as JSON` +
    `${field === '(root)' ? '' : ` (${field} ${sizes.get(field)} bytes)`}; at most ${MAX_DOCUMENT_BYTES} are accepted` +
    ' (a run keeps its scenario in one store item of 400 KB)';
  throw new PayloadTooLargeError(`${source}: ${field}: ${detail}`, total, MAX_DOCUMENT_BYTES, { field });
}

/**
 * Where the path from the root first comes back to a value it went through (a YAML alias used
 * inside its own anchor makes such a cycle; JSON cannot), or undefined: it is only deep.
 */
function cycleOn(document: unknown, path: string[]): string | undefined {
  const seen = new Set<unknown>([document]);
  let value = document;
  for (let i = 0; i < path.length; i++) {
    value = (value as Record<string, unknown>)[path[i]];
    if (value === null || typeof value !== 'object') return undefined;
    if (seen.has(value)) return path.slice(0, i + 1).join('.');
    seen.add(value);
  }
  return undefined;
}

/** The deepest path (of up to 3 segments) that holds more than half of the bytes. */
function largestPart(sizes: Map<string, number>, total: number): string {
  let best = '(root)';
  for (const [path, size] of sizes) {
    if (size * 2 > total && (best === '(root)' || path.split('.').length > best.split('.').length)) best = path;
  }
  return best;
}

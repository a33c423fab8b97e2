/** Values from outside (agents, aggregators) made safe to parse and store. */

/** Deeper than this, a response is refused rather than parsed or stored (it could not be serialized safely). */
export const MAX_RESPONSE_DEPTH = 100;

type Readable = { ok: true; value: unknown } | { ok: false; reason: string };

/**
 * An agent's reply as plain JSON. Invokers may hand back anything (a cycle, a BigInt, a getter
 * that throws, a structure nested a million levels deep): JSON.stringify would throw or blow the
 * stack inside the store, and the step would fail forever instead of failing its branch. The
 * depth walk is iterative, so it cannot overflow itself.
 */
export function readableResponse(raw: unknown): Readable {
  if (raw === undefined) return { ok: true, value: null };
  if (raw === null || typeof raw !== 'object') {
    if (typeof raw === 'bigint' || typeof raw === 'symbol' || typeof raw === 'function') {
      return { ok: false, reason: `is a ${typeof raw}, not JSON` };
    }
    return { ok: true, value: typeof raw === 'number' && !Number.isFinite(raw) ? null : raw };
  }
  try {
    const stack: [unknown, number][] = [[raw, 1]];
    while (stack.length) {
      const [value, depth] = stack.pop()!;
      if (depth > MAX_RESPONSE_DEPTH) return { ok: false, reason: `nests deeper than ${MAX_RESPONSE_DEPTH} levels` };
      for (const child of Object.values(value as object)) {
        if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
      }
    }
    const text = JSON.stringify(raw);
    return { ok: true, value: text === undefined ? null : JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `cannot be read as JSON (${error instanceof Error ? error.message : String(error)})` };
  }
}

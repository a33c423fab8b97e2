/**
 * Generated agent responses for the bad-input suites: valid, near-valid, garbage, text (JSON,
 * prose, fenced blocks), unicode, numbers, arrays, and a set of hostile values (huge strings,
 * deep nesting, cycles, BigInt, 150k-group spawns).
 */
import fc from 'fast-check';

/** Names an agent may give: the two registered ones, unknown ones, and malformed ones. */
const name = fc.constantFrom('B', 'A', 'Nope', '', ' ', 'b', '__proto__', 'B'.repeat(300), 'Ω');
const content = fc.jsonValue({ maxDepth: 3 });

const valid = fc.oneof(
  fc.record({ next_action: fc.constant('final_response'), content }),
  fc.record({ next_action: fc.constant('final_response'), action_input: content }),
  fc.record({
    next_action: fc.constant('invoke_agent'),
    action_input: fc.oneof(name, fc.record({ agent: name, input: content }, { requiredKeys: ['agent'] })),
  }),
  fc.record(
    {
      next_action: fc.constant('parallel_invoke'),
      agents: fc.array(name, { maxLength: 8 }),
      action_input: fc.dictionary(name, content, { maxKeys: 3 }),
      wait_for: fc.oneof(fc.constantFrom('all', 'any', 'some'), fc.integer({ min: -2, max: 9 }), fc.double()),
      aggregator: fc.constantFrom('default', 'weighted_average', 'agent:B', 'agent:Nope', 'agent:', 'nope'),
      inherit_memory: fc.boolean(),
      metadata: fc.dictionary(fc.string(), content, { maxKeys: 3 }),
    },
    { requiredKeys: ['next_action', 'agents'] },
  ),
  fc.record(
    {
      next_action: fc.constant('parallel_invoke'),
      branches: fc.array(
        fc.record(
          {
            agent: name,
            input: content,
            type: fc.constantFrom('simple', 'conversation', 'SIMPLE', 'weird'),
            peers: fc.array(name, { maxLength: 3 }),
            max_turns: fc.integer({ min: -1, max: 2000 }),
          },
          { requiredKeys: ['agent'] },
        ),
        { maxLength: 5 },
      ),
    },
    { requiredKeys: ['next_action', 'branches'] },
  ),
  fc.record(
    {
      next_actions: fc.array(fc.array(content, { maxLength: 4 }), { maxLength: 4 }),
      content,
      inherit_memory: fc.boolean(),
      wait_for: fc.constantFrom('all', 'any', 1, 2, 5),
    },
    { requiredKeys: ['next_actions'] },
  ),
);

/** A valid response with one thing wrong: a key dropped, replaced, renamed or re-cased. */
const nearValid = fc
  .tuple(valid, fc.nat(), fc.anything({ maxDepth: 2 }), fc.constantFrom('drop', 'replace', 'rename', 'recase', 'extra'))
  .map(([response, n, junk, how]) => {
    const copy: Record<string, unknown> = { ...(response as Record<string, unknown>) };
    const keys = Object.keys(copy);
    const key = keys[n % keys.length];
    if (how === 'drop') delete copy[key];
    else if (how === 'replace') copy[key] = junk;
    else if (how === 'rename') {
      copy[`${key}_`] = copy[key];
      delete copy[key];
    } else if (how === 'recase' && typeof copy.next_action === 'string') copy.next_action = copy.next_action.toUpperCase();
    else copy[`x${n}`] = junk;
    return copy;
  });

const garbage = fc.anything({
  maxDepth: 4,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  valid.map((v) => JSON.stringify(v)),
  fc.tuple(fc.string({ maxLength: 60 }), valid, fc.string({ maxLength: 60 })).map(([a, v, b]) => `${a}\n\`\`\`json\n${JSON.stringify(v, null, 2)}\n\`\`\`\n${b}`),
  fc.tuple(fc.string({ maxLength: 60 }), valid).map(([a, v]) => `${a} ${JSON.stringify(v)} ${a}`),
  fc.tuple(valid, fc.nat()).map(([v, n]) => JSON.stringify(v).slice(0, n % 40)), // truncated JSON
  fc.constantFrom('```json\n{"next_action": \n```', '```\n```', '{}', '[]', 'null', '""', '{"next_action":null}', '\u0000', '\uD800'),
);

const numbersAndArrays = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, Number.MAX_SAFE_INTEGER + 2),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 10 }),
);

function nested(depth: number, leaf: unknown, wrap: (inner: unknown) => unknown): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = wrap(value);
  return value;
}

/** Built once: values no generator would reach by chance. */
export interface HostileResponse {
  label: string;
  value: unknown;
  /** Costly to run (a 150k-item spawn takes ~0.3 s): run once per case, not drawn by the generator. */
  heavy?: boolean;
}

function hostileValues(): HostileResponse[] {
  const cyclic: Record<string, unknown> = { next_action: 'final_response' };
  cyclic.content = cyclic;
  const deepArrays = nested(100_000, 0, (x) => [x]);
  const deepText = `{"next_action":"final_response","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const manyGroups = Array.from({ length: 150_000 }, () => [1]);
  const throwing = Object.defineProperty({ next_action: 'final_response' }, 'content', {
    enumerable: true,
    get() {
      throw new Error('getter exploded');
    },
  });
  return [
    { label: 'undefined', value: undefined },
    { label: 'bigint', value: 10n ** 30n },
    { label: 'symbol', value: Symbol('agent') },
    { label: 'function', value: () => ({ next_action: 'final_response' }) },
    { label: 'cycle', value: cyclic },
    { label: 'throwing getter', value: throwing },
    { label: '100k-deep arrays', value: deepArrays },
    { label: '100k-deep content as text', value: deepText },
    { label: '99-deep content', value: { next_action: 'final_response', content: nested(97, 'x', (x) => ({ x })) } },
    { label: '101-deep content', value: { next_action: 'final_response', content: nested(101, 'x', (x) => ({ x })) } },
    { label: '150k groups', value: { next_actions: manyGroups }, heavy: true },
    { label: '150k groups as text', value: JSON.stringify({ next_actions: manyGroups }), heavy: true },
    { label: '150k agents', value: { next_action: 'parallel_invoke', agents: Array(150_000).fill('B') }, heavy: true },
    { label: '1.1M-char text', value: 'x'.repeat(1_100_000) },
    { label: '500 KB content as text', value: JSON.stringify({ next_action: 'final_response', content: 'y'.repeat(500_000) }) },
    { label: '350 KB content', value: { next_action: 'final_response', content: 'z'.repeat(350_000) } },
    { label: '__proto__ keys', value: '{"__proto__":{"next_action":"final_response"},"next_action":"final_response"}' },
    { label: 'constructor keys', value: { next_action: 'parallel_invoke', agents: ['constructor', 'toString', 'hasOwnProperty'] } },
    { label: 'lone surrogate content', value: { next_action: 'final_response', content: '\uD800\uDFFF\uD800' } },
  ];
}

let hostile: HostileResponse[] | undefined;

export function hostileResponses(): HostileResponse[] {
  hostile ??= hostileValues();
  return hostile;
}

export type ResponseKind = 'valid' | 'near-valid' | 'garbage' | 'text' | 'number/array' | 'hostile';

export interface GeneratedResponse {
  kind: ResponseKind;
  response: unknown;
  /** How the invoker hands it back: as a normal reply, or a broken reply object. */
  reply: 'plain' | 'no-reply' | 'junk-usage';
}

export function generatedResponses(): fc.Arbitrary<GeneratedResponse> {
  const tag = (kind: ResponseKind) => (response: unknown) => ({ kind, response });
  const light = hostileResponses().filter((h) => !h.heavy);
  const hostileArb = fc.constantFrom(...light).map((h) => ({ kind: 'hostile' as const, response: h.value }));
  return fc
    .tuple(
      fc.oneof(
        { arbitrary: valid.map(tag('valid')), weight: 4 },
        { arbitrary: nearValid.map(tag('near-valid')), weight: 3 },
        { arbitrary: garbage.map(tag('garbage')), weight: 2 },
        { arbitrary: text.map(tag('text')), weight: 3 },
        { arbitrary: numbersAndArrays.map(tag('number/array')), weight: 1 },
        { arbitrary: hostileArb, weight: 1 },
      ),
      fc.constantFrom('plain', 'plain', 'plain', 'plain', 'plain', 'plain', 'no-reply', 'junk-usage'),
    )
    .map(([{ kind, response }, reply]) => ({ kind, response, reply: reply as GeneratedResponse['reply'] }));
}

/** The reply an invoker returns for a generated response. */
export function replyFor(g: GeneratedResponse): unknown {
  if (g.reply === 'no-reply') return g.response; // an invoker that forgot the { response } wrapper
  if (g.reply === 'junk-usage') return { response: g.response, usage: { inputTokens: 'many', outputTokens: Number.NaN } };
  return { response: g.response };
}

/** What a failed branch's error may start with: every failure names its cause. */
export const CLEAR_ERROR =
  /^(InvalidAgentResponse after \d+ tries: .+|LimitExceeded \w+: .+|the branch state would be too large to store: .+|children failed: .+|agent \S+ failed: .+|the aggregate of sync point \d+ is too large to store: .+|TIMED_OUT: .+|the aggregator's result .+)$/s;

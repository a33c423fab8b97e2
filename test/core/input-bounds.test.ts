import { describe, expect, it } from 'vitest';
import { PayloadTooLargeError, ScenarioError } from '../../core/errors';
import { checkDocumentBounds, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH } from '../../core/input-bounds';

function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

function caught(fn: () => void): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('checkDocumentBounds', () => {
  it(`takes ${MAX_DOCUMENT_DEPTH} levels, refuses one more naming the path, and never recurses`, () => {
    // The root object is one level: a request of 63 more makes 64.
    expect(() => checkDocumentBounds({ request: nested(MAX_DOCUMENT_DEPTH - 1) }, 'doc')).not.toThrow();
    const error = caught(() => checkDocumentBounds({ request: nested(MAX_DOCUMENT_DEPTH) }, 'doc'));
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).field).toBe('request.a.a');
    expect(() => checkDocumentBounds({ request: nested(200_000) }, 'doc')).toThrow(/nested more than 64 levels/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => checkDocumentBounds(cycle, 'doc')).toThrow(ScenarioError);
  });

  it(`takes ${MAX_DOCUMENT_BYTES} bytes of JSON and refuses more, naming the part that holds most of it`, () => {
    const base = { name: 'x', entry: 'A', agents: { A: { kind: 'script', responses: ['ok'] } } };
    const fill = MAX_DOCUMENT_BYTES - JSON.stringify({ ...base, request: '' }).length;
    expect(() => checkDocumentBounds({ ...base, request: 'x'.repeat(fill) }, 'doc')).not.toThrow();
    const over = caught(() => checkDocumentBounds({ ...base, request: 'x'.repeat(fill + 1) }, 'doc'));
    expect(over).toBeInstanceOf(PayloadTooLargeError);
    expect(over).toMatchObject({ field: 'request', size: MAX_DOCUMENT_BYTES + 1, max: MAX_DOCUMENT_BYTES });
    // Multi-byte characters count as UTF-8, escapes as written.
    const multi = caught(() => checkDocumentBounds({ ...base, request: 'é'.repeat(fill / 2 + 1) }, 'doc'));
    expect(multi).toMatchObject({ field: 'request' });
    expect(() => checkDocumentBounds({ ...base, request: '"'.repeat(fill / 2) }, 'doc')).not.toThrow();
    expect(() => checkDocumentBounds({ ...base, request: '"'.repeat(fill / 2 + 1) }, 'doc')).toThrow(PayloadTooLargeError);
    // A control character is written as a six-byte escape (\u0001): a document whose JSON is over
    // the limit is refused however few characters it has, and the size named is its JSON's.
    const controls = caught(() => checkDocumentBounds({ ...base, request: '\u0001'.repeat(Math.floor(fill / 6) + 1) }, 'doc'));
    expect(controls).toMatchObject({ field: 'request', size: JSON.stringify({ ...base, request: '\u0001'.repeat(Math.floor(fill / 6) + 1) }).length });
    const script = { ...base, agents: { A: { kind: 'script', responses: ['y'.repeat(MAX_DOCUMENT_BYTES)] } } };
    expect(caught(() => checkDocumentBounds(script, 'doc'))).toMatchObject({ field: 'agents.A.responses' });
    const many = { ...base, agents: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`Agent${i}`, { kind: 'script' }])) };
    expect(caught(() => checkDocumentBounds(many, 'doc'))).toMatchObject({ field: 'agents' });
  });
});

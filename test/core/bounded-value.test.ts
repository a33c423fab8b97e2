import { describe, expect, it } from 'vitest';
import { boundValue, jsonBytes } from '../../core/bounded-value';

describe('boundValue', () => {
  it('answers a value that fits as it is', () => {
    expect(boundValue({ a: [1, 'two'] }, 100)).toEqual({ value: { a: [1, 'two'] }, bytes: 15, truncated: false, entriesLeftOut: 0 });
  });

  it('keeps small members whole, cuts large ones and says what it left out, within about the bound', () => {
    const value = { count: 3, items: Array.from({ length: 500 }, (_, i) => ({ i, text: 'é'.repeat(100) })), note: 'small' };
    const shown = boundValue(value, 2_000);
    expect(shown.truncated).toBe(true);
    expect(shown.bytes).toBe(jsonBytes(value));
    expect(jsonBytes(shown.value)).toBeLessThanOrEqual(2_000);
    const v = shown.value as { count: number; note: string; items: unknown[] };
    expect(v.count).toBe(3);
    expect(v.note).toBe('small');
    expect(v.items.at(-1)).toMatch(/^… \d+ of 500 items left out \(\d+ bytes\)$/);
    expect(shown.entriesLeftOut).toBeGreaterThan(480);
  });

  it('cuts a long string by characters, counting its bytes', () => {
    const shown = boundValue('中'.repeat(10_000), 300);
    expect(shown.bytes).toBe(30_002);
    expect(jsonBytes(shown.value)).toBeLessThanOrEqual(300);
    expect(shown.value).toMatch(/^中+… \(\d+ more characters, 30002 bytes in all\)$/);
  });
});

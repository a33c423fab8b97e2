/**
 * The billed size of numbers (what capacity units are computed from): DynamoDB counts 1 byte
 * plus 1 per two significant digits, plus 1 when negative. Integers take a path without
 * formatting; it must agree with the general one.
 */
import { describe, expect, it } from 'vitest';
import { billedItemSize, numberSize } from '../../../adapters/dynamodb/item-codec';

/** The general rule, on the number's decimal digits. */
function bySignificantDigits(value: number): number {
  if (value === 0) return 1;
  const digits = Math.abs(value).toExponential().split('e')[0].replace(/[.-]/g, '').replace(/0+$/, '').length || 1;
  return 1 + Math.ceil(digits / 2) + (value < 0 ? 1 : 0);
}

describe('numberSize', () => {
  it('gives integers the size of their significant digits, trailing zeros not counted', () => {
    expect([0, 1, 9, 10, 99, 100, 123, 1200, 12345, -1, -1000, -12345].map(numberSize)).toEqual([1, 2, 2, 2, 2, 2, 3, 2, 4, 3, 3, 5]);
    // A millisecond timestamp (13 digits) and the largest safe integer (16 digits).
    expect(numberSize(1795997894334)).toBe(8);
    expect(numberSize(Number.MAX_SAFE_INTEGER)).toBe(9);
  });

  it('agrees with the general rule on integers of every length and on fractions', () => {
    const values: number[] = [0.5, -0.25, 3.14159, 1e-7, 2 ** 60, -(2 ** 55), 1e21];
    let x = 7;
    for (let i = 0; i < 2_000; i++) {
      x = (x * 48271) % 2147483647;
      const digits = 1 + (i % 16);
      const n = Math.floor((x / 2147483647) * 10 ** digits);
      values.push(n, -n, n * 1000);
    }
    for (const value of values) expect(numberSize(value), String(value)).toBe(bySignificantDigits(value));
  });

  it('counts every number of an item that way', () => {
    expect(billedItemSize({ a: 1200, bb: 'xyz', c: true })).toBe(1 + 2 + 2 + 3 + 1 + 1);
  });
});

/** The one rule for a draw decided by what the work is (chaos agent-flaky, the simulation's scenarios). */
import { describe, expect, it } from 'vitest';
import { stableChance } from '../../core/stable-chance';

describe('stableChance', () => {
  it('is the same for the same seed and text, in [0, 1), and spreads nearby texts evenly', () => {
    expect(stableChance(7, 'root.1@0:Worker')).toBe(stableChance(7, 'root.1@0:Worker'));
    expect(stableChance(7, 'root.1@0:Worker')).not.toBe(stableChance(8, 'root.1@0:Worker'));
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const x = stableChance(1, `root.${i}@0:Worker`);
      expect(x >= 0 && x < 1).toBe(true);
      buckets[Math.floor(x * 10)]++;
    }
    // Nearby keys (root.1, root.2, …) land in every tenth about equally (1,000 each expected).
    for (const n of buckets) expect(n).toBeGreaterThan(850);
    for (const n of buckets) expect(n).toBeLessThan(1150);
  });
});

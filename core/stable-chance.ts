/**
 * A stable number in [0, 1) for a piece of work, from a seed and a text naming it (FNV-1a of the
 * text mixed with the seed, then one round of avalanche so nearby texts do not give nearby
 * values). Decided by what the work is, not by when it runs: the same seed gives the same draws
 * whatever the interleaving. Used by the local fault injection (`--chaos agent-flaky`) and the
 * deterministic simulation's scenarios.
 */
export function stableChance(seed: number, text: string): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return (h >>> 0) / 4294967296;
}

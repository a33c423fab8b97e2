/**
 * The runtime options that put a test on an engine tier: the journal tier keeps its journal in a
 * data folder, so it gets a fresh one (under the suite's temp folder, removed at the end).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineTier } from '../../local/embedded-engines';

export function onTier(tier: EngineTier): { tier: EngineTier; dataDir?: string } {
  return tier === 'journal' ? { tier, dataDir: mkdtempSync(join(tmpdir(), 'bs-journal-tier-')) } : { tier };
}

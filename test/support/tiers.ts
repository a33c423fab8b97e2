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

/**
 * The budget of a hook that starts a runtime on the engines: dynalite, fauxqs and the ASL engine
 * load and start in the process. Three of them starting at once beside six other runtimes took
 * over 60 s on 2 cores at load 41; a start that fails says so well before this.
 */
export const RUNTIME_START_TIMEOUT_MS = 5 * 60_000;

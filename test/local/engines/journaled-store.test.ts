/**
 * The branch store of the journal tier (MemoryBranchStore telling every put to a journal) passes
 * the store conformance suite while it is closed and reopened from its journal (replayed) every
 * few hundred calls, in the middle of the tests and of their concurrent calls; every reopen must
 * read back exactly the items it had. Small compaction thresholds make compactions happen too.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { MemoryBranchStore } from '../../../adapters/memory/memory-branch-store';
import type { BranchStore, CostSink } from '../../../core/ports';
import { Journal } from '../../../local/engines/journal';
import { BLOBS_FOLDER, DiskBlobStore } from '../../../local/engines/disk-blob-store';
import { itemToJson, journalTable } from '../../../local/engines/journaled-state';
import { describeBranchStoreConformance, describeBranchStorePages, describeBranchStoreRunKeys } from '../../adapters/branch-store-conformance';

const REOPEN_EVERY = 197;

function openStore(file: string, meter: CostSink | undefined) {
  const journal = new Journal(file, { growthFactor: 3, minCompactBytes: 512 * 1024 });
  const table = journalTable(journal);
  // Large values live next to the journal, as on the journal tier, and outlive each reopen.
  const store = new MemoryBranchStore({ meter, onPut: table.onPut, blobs: new DiskBlobStore(join(dirname(file), BLOBS_FOLDER)) });
  table.attach(store);
  journal.open();
  return { store, journal };
}

const contents = (store: MemoryBranchStore) => [...store.items()].map((item) => JSON.stringify(itemToJson(item))).sort();

let current: ReturnType<typeof openStore> | undefined;
let reopened = 0;
afterAll(() => {
  current?.journal.close();
  // The suite must really have gone through replays.
  expect(reopened).toBeGreaterThan(20);
});

/** A store that delegates to the current one, reopening it from its journal every REOPEN_EVERY calls. */
function reopeningStore(meter?: CostSink): BranchStore {
  const file = join(mkdtempSync(join(tmpdir(), 'bs-journaled-store-')), 'journal.jsonl');
  current = openStore(file, meter);
  let calls = 0;
  return new Proxy({} as BranchStore, {
    get(_, name: keyof BranchStore) {
      // Only the store's methods (not `then`: the suite awaits the factory's answer).
      if (typeof current!.store[name] !== 'function') return undefined;
      return (...args: unknown[]) => {
        // Every method checks and writes without awaiting (it awaits only the puts of large values,
        // which the suite makes one at a time), so a reopen between calls is never inside one.
        if (++calls % REOPEN_EVERY === 0) {
          const before = contents(current!.store);
          current!.journal.close();
          current = openStore(file, meter);
          expect(contents(current.store)).toEqual(before);
          reopened++;
        }
        return (current!.store[name] as (...a: unknown[]) => unknown).apply(current!.store, args);
      };
    },
  });
}

// The 10,000-child fan-in is the plain memory store's; 2,000 here keeps the replays cheap.
describeBranchStoreConformance('MemoryBranchStore with a journal, reopened from it every few hundred calls', reopeningStore, { wideChildren: 2_000 });
describeBranchStorePages('MemoryBranchStore with a journal', (meter) => openStore(join(mkdtempSync(join(tmpdir(), 'bs-journaled-pages-')), 'journal.jsonl'), meter).store);
describeBranchStoreRunKeys('MemoryBranchStore with a journal', (meter) => openStore(join(mkdtempSync(join(tmpdir(), 'bs-journaled-pages-')), 'journal.jsonl'), meter).store);

/**
 * The branch store of the journal tier (MemoryBranchStore telling every put to a journal) passes
 * the store conformance suite while it is closed and reopened from its journal (replayed) every
 * few dozen or hundred calls, in the middle of the tests and of their concurrent calls, and after
 * each test; every reopen must read back exactly the items it had. Each store the suite makes
 * (also the metered ones inside a test) is reopened from its own journal only. Small compaction
 * thresholds make compactions happen too.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { MemoryBranchStore } from '../../../adapters/memory/memory-branch-store';
import type { BranchStore, CostSink } from '../../../core/ports';
import { Journal } from '../../../local/engines/journal';
import { BLOBS_FOLDER, DiskBlobStore } from '../../../local/engines/disk-blob-store';
import { itemToJson, journalTable } from '../../../local/engines/journaled-state';
import { describeBranchStoreConformance, describeBranchStorePages, describeBranchStoreRunKeys } from '../../adapters/branch-store-conformance';

/**
 * Reopen schedules, in calls: each runs the whole suite, so that reopens fall in different places
 * (190 once fell right after the claim-check tests, where the suite makes a metered store of its own).
 */
const REOPEN_EVERY = [61, 190, 197];

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

/** One store of the suite, on its own journal file, reopened from that file (never another's). */
class Reopening {
  private open: ReturnType<typeof openStore>;
  /** Called since its last reopen. */
  used = false;

  constructor(
    private readonly file: string,
    private readonly meter: CostSink | undefined,
  ) {
    this.open = openStore(file, meter);
  }

  get store(): MemoryBranchStore {
    return this.open.store;
  }

  /** Closes the journal and replays it into a new store, which must hold exactly the items the old one had. */
  reopen(): void {
    const before = contents(this.open.store);
    this.open.journal.close();
    this.open = openStore(this.file, this.meter);
    expect(contents(this.open.store)).toEqual(before);
    this.used = false;
    reopened++;
  }

  close(): void {
    this.open.journal.close();
  }
}

// Every store the suite made (it makes metered ones inside tests too, beside its main one).
const stores: Reopening[] = [];
let reopened = 0;
// Whatever the schedule, every store a test used is also reopened after it, so no test's items escape a replay.
afterEach(() => {
  for (const s of stores) if (s.used) s.reopen();
});
afterAll(() => {
  for (const s of stores) s.close();
  // The suite must really have gone through replays.
  expect(reopened).toBeGreaterThan(20);
});

/** A store that delegates to its current one, reopening it from its journal every `every` calls. */
function reopeningStore(every: number, meter?: CostSink): BranchStore {
  const reopening = new Reopening(join(mkdtempSync(join(tmpdir(), 'bs-journaled-store-')), 'journal.jsonl'), meter);
  stores.push(reopening);
  let calls = 0;
  return new Proxy({} as BranchStore, {
    get(_, name: keyof BranchStore) {
      // Only the store's methods (not `then`: the suite awaits the factory's answer).
      if (typeof reopening.store[name] !== 'function') return undefined;
      return (...args: unknown[]) => {
        // Every method checks and writes without awaiting (it awaits only the puts of large values,
        // which the suite makes one at a time), so a reopen between calls is never inside one.
        if (++calls % every === 0) reopening.reopen();
        reopening.used = true;
        return (reopening.store[name] as (...a: unknown[]) => unknown).apply(reopening.store, args);
      };
    },
  });
}

// The 10,000-child fan-in is the plain memory store's; 2,000 here keeps the replays cheap.
for (const every of REOPEN_EVERY) {
  describeBranchStoreConformance(`MemoryBranchStore with a journal, reopened from it every ${every} calls and after each test`, (meter) => reopeningStore(every, meter), {
    wideChildren: 2_000,
  });
}
describeBranchStorePages('MemoryBranchStore with a journal', (meter) => openStore(join(mkdtempSync(join(tmpdir(), 'bs-journaled-pages-')), 'journal.jsonl'), meter).store);
describeBranchStoreRunKeys('MemoryBranchStore with a journal', (meter) => openStore(join(mkdtempSync(join(tmpdir(), 'bs-journaled-pages-')), 'journal.jsonl'), meter).store);

/**
 * The journal tier's persistence: the journal file (replay in order, a torn last line dropped, a
 * damaged line refused, compaction atomic and on growth) and what the queues keep across a
 * restart (messages, receive counts, deletes, dead-lettering; in-flight ones come back visible).
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JOURNAL_FILE } from '../../../local/data-folder';
import { startLocalEngines, tierFor, type MemoryEngines } from '../../../local/embedded-engines';
import { Journal, type JournalPart } from '../../../local/engines/journal';
import { main } from '../../../local/cli';
import { captureIo } from '../../support/io';
import { LocalRuntime } from '../../../local/runtime';
import { loadScenarioFile } from '../../../local/scenario-file';
import { runInputOf } from '../../../core/use-cases/start-run';
import { itemFromJson, itemToJson } from '../../../local/engines/journaled-state';

const folder = () => mkdtempSync(join(tmpdir(), 'bs-journal-'));

/** A part that keeps a list of strings (its records are the strings). */
function listPart(journal: Journal, name = 'list') {
  const values: string[] = [];
  const part: JournalPart = { replay: (record) => void values.push(record as string), snapshot: () => values };
  const append = journal.register(name, part);
  return {
    values,
    add(...more: string[]) {
      append(...more);
      values.push(...more);
    },
  };
}

function open(file: string, options?: ConstructorParameters<typeof Journal>[1]) {
  const journal = new Journal(file, options);
  const list = listPart(journal);
  journal.open();
  return { journal, list };
}

describe('the journal file', () => {
  it('replays what was appended, in order, after the process that wrote it is gone', () => {
    const file = join(folder(), 'j.jsonl');
    const first = open(file);
    first.list.add('a');
    first.list.add('b', 'c');
    // No close: a killed process closes nothing. What was appended is on the file already.
    const second = open(file);
    expect(second.list.values).toEqual(['a', 'b', 'c']);
    second.journal.close();
    first.journal.close();
  });

  it('drops a last line cut short by a killed writer, and removes it from the file', () => {
    const file = join(folder(), 'j.jsonl');
    const first = open(file);
    first.list.add('kept');
    first.journal.close();
    appendFileSync(file, '["list","cut sh');
    const second = open(file);
    expect(second.list.values).toEqual(['kept']);
    second.list.add('after');
    second.journal.close();
    expect(readFileSync(file, 'utf8')).toBe('["list","kept"]\n["list","after"]\n');
    const third = open(file);
    expect(third.list.values).toEqual(['kept', 'after']);
    third.journal.close();
  });

  it('refuses a damaged line that is not the last one, naming it, and leaves the file as it was', () => {
    const file = join(folder(), 'j.jsonl');
    const damaged = '["list","a"]\n["list",\n["list","b"]\n';
    writeFileSync(file, damaged);
    expect(() => open(file)).toThrow(`${file}: line 2 is not readable (the journal is damaged)`);
    expect(readFileSync(file, 'utf8')).toBe(damaged);
  });

  it('refuses entries of a part it does not know', () => {
    const file = join(folder(), 'j.jsonl');
    writeFileSync(file, '["other","x"]\n');
    expect(() => open(file)).toThrow(/line 1 belongs to an unknown part "other"/);
  });

  it('compacts on open and when it grows past its factor: the file holds the state, not the history', async () => {
    const file = join(folder(), 'j.jsonl');
    const journal = new Journal(file, { growthFactor: 2, minCompactBytes: 1024 });
    let value = 'v0';
    const append = journal.register('value', { replay: (r) => void (value = r as string), snapshot: () => [value] });
    journal.open();
    for (let i = 1; i <= 500; i++) {
      append(`v${i}`);
      value = `v${i}`;
    }
    // Compaction runs after the change that crossed the threshold is made (never inside it).
    await new Promise((resolve) => setImmediate(resolve));
    expect(statSync(file).size).toBeLessThan(1100);
    journal.close();
    const again = new Journal(file);
    let replayed = '';
    again.register('value', { replay: (r) => void (replayed = r as string), snapshot: () => [replayed] });
    again.open();
    again.close();
    expect(replayed).toBe('v500');
    expect(readFileSync(file, 'utf8')).toBe('["value","v500"]\n');
  });

  it('ignores the temp file of a compaction that died before its rename', () => {
    const file = join(folder(), 'j.jsonl');
    const first = open(file);
    first.list.add('whole');
    first.journal.close();
    writeFileSync(`${file}.tmp`, '["list","half-writ');
    const second = open(file);
    expect(second.list.values).toEqual(['whole']);
    expect(existsSync(`${file}.tmp`)).toBe(false);
    second.journal.close();
  });

  it('writes items with string sets as arrays and reads them back as sets', () => {
    const item = { PK: 'R#t#r', SK: 'S#root#1', done: new Set(['1', '2']), total: 3, flag: true, none: null };
    const json = itemToJson(item);
    expect(JSON.parse(JSON.stringify(json))).toEqual({ PK: 'R#t#r', SK: 'S#root#1', done: ['1', '2'], total: 3, flag: true, none: null });
    expect(itemFromJson(JSON.parse(JSON.stringify(json)))).toEqual(item);
  });
});

describe('the journal tier', () => {
  let engines: MemoryEngines | undefined;
  afterEach(async () => {
    await engines?.close();
    engines = undefined;
  });
  const reopen = async (dataDir: string, options: { maxReceiveCount?: number } = {}) => {
    await engines?.close();
    engines = (await startLocalEngines({ dataDir, visibilityTimeoutSeconds: 30, ...options })) as MemoryEngines;
    expect(engines.tier).toBe('journal');
    return engines;
  };
  const step = (branchId: string, n = 0) => ({ team: 't', runId: 'r', branchId, step: n });

  it('keeps receive counts across restarts: maxReceiveCount moves a message to the DLQ, which keeps it', async () => {
    const data = folder();
    let e = await reopen(data, { maxReceiveCount: 2 });
    await e.queue.send([step('root')]);
    for (const expected of ['1', '2']) {
      const [record] = await e.consumers.start.receive({ max: 10, waitSeconds: 0 });
      expect(record.attributes.ApproximateReceiveCount).toBe(expected);
      // The process dies with the message in flight: it is visible again in the next one.
      e = await reopen(data, { maxReceiveCount: 2 });
    }
    // The receive that would exceed the count moves it instead.
    expect(await e.consumers.start.receive({ max: 10, waitSeconds: 0 })).toEqual([]);
    e = await reopen(data, { maxReceiveCount: 2 });
    expect(await e.consumers.start.pending()).toBe(0);
    const [parked] = await e.dlqConsumer.receive({ max: 10, waitSeconds: 0 });
    expect(JSON.parse(parked.body)).toEqual(step('root'));
    // Its count goes on in the DLQ, as on SQS: 2 receives, the one that moved it, the DLQ's.
    expect(parked.attributes.ApproximateReceiveCount).toBe('4');
  });

  it('keeps deletes and both lanes: only the messages not deleted come back, each in its lane', async () => {
    const data = folder();
    let e = await reopen(data);
    await e.queue.send([step('a'), step('b'), step('c', 1)]);
    const received = await e.consumers.start.receive({ max: 10, waitSeconds: 0 });
    expect(received.map((r) => JSON.parse(r.body).branchId).sort()).toEqual(['a', 'b']);
    await e.consumers.start.delete([received.find((r) => JSON.parse(r.body).branchId === 'a')!.receiptHandle]);
    e = await reopen(data);
    const start = await e.consumers.start.receive({ max: 10, waitSeconds: 0 });
    const continued = await e.consumers.continue.receive({ max: 10, waitSeconds: 0 });
    expect(start.map((r) => [JSON.parse(r.body).branchId, r.attributes.ApproximateReceiveCount])).toEqual([['b', '2']]);
    expect(continued.map((r) => JSON.parse(r.body))).toEqual([step('c', 1)]);
    // Same message ids as before the restart (a message is one message across restarts).
    expect(start[0].messageId).toBe(received.find((r) => JSON.parse(r.body).branchId === 'b')!.messageId);
  });

  it('keeps the store: a run written before the restart reads back the same', async () => {
    const data = folder();
    let e = await reopen(data);
    const scope = { team: 't', runId: 'kept' };
    const run = {
      ...scope, name: 'kept', status: 'RUNNING' as const, request: { deep: [1, 'ü', null] }, entry: 'A', agents: {}, limits: {} as never,
      failurePolicy: { maxFailedFraction: 0.5 }, createdAt: 1, branchCount: 1,
    };
    await e.store.createRun(run);
    expect(await e.store.reserveBranches(scope, 'spawn-1', 3, 10)).toEqual({ ok: true, branchCount: 4 });
    e = await reopen(data);
    expect(await e.store.getRun(scope)).toEqual({ ...run, branchCount: 4 });
    // The spawn key (a string set) survived: the same reservation is not counted twice.
    expect(await e.store.reserveBranches(scope, 'spawn-1', 3, 10)).toEqual({ ok: true, branchCount: 4 });
  });

  it('run --data --fsync runs on the journal tier, and resume reads it; --fsync without --data is refused', async () => {
    const data = folder();
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--fsync', '--json'], io), io.errText()).toBe(0);
    const { runId } = JSON.parse(io.outText());
    expect(existsSync(join(data, JOURNAL_FILE))).toBe(true);
    const again = captureIo();
    expect(await main(['resume', runId, '--data', data, '--fsync', '--json'], again), again.errText()).toBe(0);
    expect(JSON.parse(again.outText())).toMatchObject({ runId, status: 'COMPLETED' });
    const refused = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--fsync'], refused)).toBe(2);
    expect(refused.errText()).toContain('--fsync needs --data');
  });

  it('a run compacted several times while it runs completes, and the folder reads back the same', async () => {
    const data = folder();
    const compactions = vi.spyOn(Journal.prototype, 'compact');
    try {
      const runtime = await LocalRuntime.start({ dataDir: data, compaction: { minCompactBytes: 64 * 1024, growthFactor: 2 } });
      let runId: string;
      let branches;
      try {
        runId = await runtime.startRun(runInputOf((await loadScenarioFile('examples/wide-fan-out.yaml')).scenario));
        expect((await runtime.waitForRun(runId)).status).toBe('COMPLETED');
        branches = await runtime.deps.store.listBranches({ team: runtime.team, runId });
        expect(runtime.errors).toEqual([]);
      } finally {
        await runtime.close();
      }
      // The one on open, and at least two while the run went on.
      expect(compactions.mock.calls.length).toBeGreaterThanOrEqual(3);
      const e = await reopen(data);
      expect(await e.store.listBranches({ team: 'local', runId })).toEqual(branches);
      expect(await e.consumers.start.pending()).toBe(0);
    } finally {
      compactions.mockRestore();
    }
  });

  it('opens a folder on the tier that wrote it, and refuses to open it on another', async () => {
    const old = folder();
    mkdirSync(join(old, 'dynamodb'));
    expect(tierFor({ dataDir: old })).toBe('engines');
    await expect(startLocalEngines({ tier: 'journal', dataDir: old })).rejects.toThrow(
      `the data folder ${old} holds the engines tier's state; it cannot be opened on the journal tier`,
    );
    const data = folder();
    expect(tierFor({ dataDir: data })).toBe('journal');
    await reopen(data);
    expect(existsSync(join(data, JOURNAL_FILE))).toBe(true);
    await expect(startLocalEngines({ tier: 'engines', dataDir: data })).rejects.toThrow(/holds the journal tier's state/);
    expect(tierFor({})).toBe('memory');
  });
});

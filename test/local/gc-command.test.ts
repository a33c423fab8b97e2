/**
 * `branch-spawner gc --data <dir>` (local/gc-command.ts): the blobs no stored item refers to go;
 * every blob of a run, finished or not, stays, and a gc killed half-way leaves only blobs nothing
 * refers to.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { blobKey } from '../../adapters/blobs/blob-keys';
import { referencedBlobKeys } from '../../adapters/dynamodb/item-codec';
import { eventPackItems } from '../../adapters/dynamodb/event-packs';
import { anEvent } from '../support/events';
import { main } from '../../local/cli';
import { collectGarbage } from '../../local/gc-command';
import { JOURNAL_FILE } from '../../local/data-folder';
import { BLOBS_FOLDER } from '../../local/engines/disk-blob-store';
import { LocalRuntime } from '../../local/runtime';
import { captureIo } from '../support/io';
import { runCli } from '../support/killed-run';
import { wideAggregateScenario } from '../support/wide-aggregate';

const BIN = fileURLToPath(new URL('../../bin/branch-spawner.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bs-gc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]) {
  const io = captureIo();
  const code = await main(args, io);
  return { code, out: io.outText(), err: io.errText() };
}

/** Every blob file of a data folder, as `<team>/<run>/<ref>`. */
function blobFiles(data: string): string[] {
  const root = join(data, BLOBS_FOLDER);
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((team) => readdirSync(join(root, team)).flatMap((run) => readdirSync(join(root, team, run)).map((ref) => `${team}/${run}/${ref}`)));
}

/** Two agents handing one branch back and forth, each turn adding 30 KB to its memory: every turn leaves the previous memory's blob behind. */
function conversation(file: string): string {
  const page = (who: string) => `${who}: ${'y'.repeat(30_000)}`;
  writeFileSync(
    file,
    JSON.stringify({
      name: 'conversation',
      request: 'talk',
      entry: 'Alice',
      agents: {
        Alice: { kind: 'script', allowed: ['Bob'], responses: [...Array(3).fill({ next_action: 'invoke_agent', agent: 'Bob', input: page('Alice') }), { next_action: 'final_response', content: 'done' }] },
        Bob: { kind: 'script', allowed: ['Alice'], responses: [{ next_action: 'invoke_agent', agent: 'Alice', input: page('Bob') }] },
      },
    }),
  );
  return file;
}

describe('gc --data', () => {
  it('removes the blobs nothing refers to (replaced memories, orphans of a crash, runs gone) and keeps every value of every run', async () => {
    const data = join(dir, 'finished');
    const first = await cli('run', conversation(join(dir, 'conversation.json')), '--data', data, '--json');
    expect(first.code, first.err).toBe(0);
    const before = JSON.parse(first.out);
    const wide = await cli('run', writeScenario('wide.json', wideAggregateScenario(60, 2_000)), '--data', data, '--json');
    expect(wide.code, wide.err).toBe(0);
    // What a crash between a blob's write and its reference's leaves, and the folder of a run whose state is gone.
    const orphan = blobKey({ team: before.team ?? 'local', runId: before.runId }, 'a'.repeat(64));
    const gone = blobKey({ team: 'local', runId: 'gone' }, 'b'.repeat(64));
    for (const key of [orphan, gone]) {
      mkdirSync(join(data, BLOBS_FOLDER, key, '..'), { recursive: true });
      writeFileSync(join(data, BLOBS_FOLDER, key), '"left behind"');
    }
    const files = blobFiles(data);
    expect(files).toContain(orphan);

    const gc = await cli('gc', '--data', data);
    expect(gc.code, gc.err).toBe(0);
    const removed = Number(/^removed (\d+) unreferenced blobs \(.+\); (\d+) kept\n$/.exec(gc.out)?.[1]);
    // The orphans, and the conversation's memories that later turns replaced (3 turns of each agent at least).
    expect(removed).toBeGreaterThanOrEqual(2 + 3);
    const left = blobFiles(data);
    expect(left).toHaveLength(files.length - removed);
    expect(left).not.toContain(orphan);
    expect(existsSync(join(data, BLOBS_FOLDER, gone, '..'))).toBe(false);

    // Every value of both runs reads back as before.
    const shown = await cli('show', before.runId, '--data', data, '--json');
    expect(shown.code, shown.err).toBe(0);
    expect(JSON.parse(shown.out).branches).toEqual(before.branches);
    const wideShown = JSON.parse((await cli('show', JSON.parse(wide.out).runId, '--data', data, '--json')).out);
    expect(wideShown.result.child_count).toBe(60);
    for (const child of wideShown.branches.filter((b: { parentId: string | null }) => b.parentId === 'root')) expect(child.result.text).toHaveLength(2_000);

    // Nothing more to remove: quiet.
    expect(await cli('gc', '--data', data)).toEqual({ code: 0, out: '', err: '' });
  });

  it("keeps the blobs of a run that has not finished (killed mid fan-in): resumed after gc, it ends with every child's result", async () => {
    const data = join(dir, 'killed');
    const scenario = writeScenario('wide-killed.json', wideAggregateScenario(300, 2_000, { maxConcurrentBranches: 5 }));
    const child = spawn(process.execPath, [BIN, 'run', scenario, '--data', data], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Killed once some children have completed, and before the fan-in (their results share one blob: the same content).
    await until(() => completedInJournal(data) >= 50, exited);
    child.kill('SIGKILL');
    await exited;
    const gc = await cli('gc', '--data', data);
    expect(gc.code, gc.err).toBe(0);
    const runs = JSON.parse((await cli('runs', '--data', data, '--json')).out);
    const resumed = await runCli(['resume', runs.runs[0].runId, '--data', data, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const doc = JSON.parse(resumed.stdout);
    expect(doc.result.child_count).toBe(300);
    for (const b of doc.branches.filter((x: { parentId: string | null }) => x.parentId === 'root')) expect(b.result).toEqual({ v: 1, text: 'x'.repeat(2_000) });
  });

  it('refuses a folder in use (exit 2), and a gc stopped half-way removed only blobs nothing refers to', async () => {
    const data = join(dir, 'in-use');
    expect((await cli('run', conversation(join(dir, 'conversation-2.json')), '--data', data, '--json')).code).toBe(0);
    const runtime = await LocalRuntime.start({ dataDir: data });
    try {
      const refused = await cli('gc', '--data', data);
      expect(refused.code).toBe(2);
      expect(refused.err).toMatch(/^error: the data folder is in use by /);
    } finally {
      await runtime.close();
    }
    // Stopped half-way: gc deletes one file at a time after reading every item, so what a kill
    // leaves is a folder where some unreferenced blobs are gone and the rest are still there.
    const stopped = await collectGarbage(data, {
      onRemoved: () => {
        throw new Error('killed');
      },
    }).catch((e: unknown) => e);
    expect((stopped as Error).message).toBe('killed');
    const shown = await cli('show', JSON.parse((await cli('runs', '--data', data, '--json')).out).runs[0].runId, '--data', data, '--json');
    expect(shown.code, shown.err).toBe(0);
    expect(JSON.parse(shown.out).result).toBe('done');
    const rest = await collectGarbage(data);
    expect(rest.removed).toBeGreaterThan(0);
    expect((await collectGarbage(data)).removed).toBe(0);
  });
});

function writeScenario(name: string, scenario: object): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(scenario));
  return file;
}

function completedInJournal(data: string): number {
  const journal = join(data, JOURNAL_FILE);
  return existsSync(journal) ? readFileSync(journal, 'utf8').split('"COMPLETED"').length - 1 : 0;
}

/** Polls a condition on the files a child process writes; fails if the process ends first. */
async function until(condition: () => boolean, exited: Promise<unknown>): Promise<void> {
  let over = false;
  void exited.then(() => (over = true));
  while (!condition()) {
    if (over) throw new Error('the run ended before the condition held');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('what gc keeps', () => {
  it("the values a stored ToolCalled event names by reference (its arguments and output) are referenced, so gc keeps them", () => {
    const scope = { team: 'local', runId: 'r1' };
    const [a, o] = ['c'.repeat(64), 'd'.repeat(64)];
    const event = anEvent('ToolCalled', { eventId: 'e', runId: 'r1', branchId: 'root', time: 1, detail: { argumentsRef: a, outputRef: o } });
    const other = anEvent('BranchCompleted', { eventId: 'f', runId: 'r1', branchId: 'root', time: 1 });
    const [pack] = eventPackItems(scope, 1, 1, [other, event, other]);
    expect(referencedBlobKeys(pack).sort()).toEqual([blobKey(scope, a), blobKey(scope, o)]);
    expect(referencedBlobKeys(eventPackItems(scope, 4, 1, [other])[0])).toEqual([]);
  });
});

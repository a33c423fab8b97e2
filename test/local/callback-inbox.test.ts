/**
 * The inbox of a held data folder (local/callback-inbox.ts) against the holder coming and going:
 * an answer left while a process holds the folder, which then lets it go without taking the
 * answer, is withdrawn and given to the folder itself; an answer the holder took is never
 * withdrawn, and the holder says its outcome before it lets the folder go. The moments are set
 * by the test (the lock released when the answer file appears, the holder's answer held open),
 * never by time.
 */
import { mkdirSync, mkdtempSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { answerThroughInbox, INBOX_FOLDER, watchInbox } from '../../local/callback-inbox';
import { main } from '../../local/cli';
import { lockDataFolder } from '../../local/data-folder';
import { LocalRuntime } from '../../local/runtime';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-inbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A data folder whose run's root branch awaits a callback, with no process holding it. */
async function awaitingCallback(): Promise<{ data: string; runId: string; token: string }> {
  const data = join(mkdtempSync(join(dir, 'folder-')), 'data');
  const runtime = await LocalRuntime.start({ dataDir: data });
  try {
    const asked = new Promise<LifecycleEvent<'BranchWaitingForCallback'>>((resolve) => runtime.bus.subscribe((event) => {
        if (event.type === 'BranchWaitingForCallback') resolve(event);
      }),);
    const runId = await runtime.startRun({
      name: 'approval',
      request: 'deploy v2',
      entry: 'Approver',
      agents: {
        Approver: {
          kind: 'script',
          responses: [
            { next_action: 'wait_for_callback', timeout_seconds: 600 },
            { next_action: 'final_response', content: { decision: '$input' } },
          ],
        },
      },
    });
    const event = await asked;
    await runtime.settle();
    return { data, runId, token: String(event.detail.token) };
  } finally {
    await runtime.close();
  }
}

/**
 * Holds the folder as a run would, without taking answers, and lets it go the moment an answer
 * file appears in its inbox: before any holder could take it.
 */
function holdUntilAnswerLeft(data: string): Promise<void> {
  const lock = lockDataFolder(data);
  const inbox = join(data, INBOX_FOLDER);
  mkdirSync(inbox, { recursive: true });
  return new Promise((resolve) => {
    const watcher = watch(inbox, (_type, name) => {
      if (!String(name).endsWith('.request.json')) return;
      watcher.close();
      lock.release();
      resolve();
    });
  });
}

describe('the callback inbox of a held data folder', () => {
  it('callback --data while a holder lets the folder go without taking the answer: the answer goes to the folder (exit 0), a second one is refused (exit 1), not "did not take the answer"', async () => {
    const { data, runId, token } = await awaitingCallback();

    const first = captureIo();
    const left = holdUntilAnswerLeft(data);
    const code = await main(['callback', runId, token, '--data', data, '--answer', '"approved"'], first);
    await left;
    expect(code, first.errText()).toBe(0);
    // Nothing holds the folder now: the run goes on when resumed.
    expect(first.errText()).toBe(`run ${runId}: callback answered; branch root waits for resume: npx branch-spawner resume ${runId} --data ${data}\n`);

    const second = captureIo();
    const leftAgain = holdUntilAnswerLeft(data);
    const again = await main(['callback', runId, token, '--data', data, '--answer', '"refused"'], second);
    await leftAgain;
    expect(again, second.errText()).toBe(1);
    expect(second.errText()).toBe('error: callback of branch root was answered already; the first answer was taken and this one is refused\n');

    const resumed = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], resumed), resumed.errText()).toBe(0);
    expect(JSON.parse(resumed.outText())).toMatchObject({ status: 'COMPLETED', result: { decision: 'approved' } });
  });

  it('callback --data taken by a holder that does not carry the run on (its own run ends as it takes the answer): exit 0, the branch waits for resume, which completes the run with the answer', async () => {
    const { data, runId, token } = await awaitingCallback();
    // Another run's process holds the folder (it never resumed this run) and closes the moment
    // it has taken the answer, as one does when its own run ends.
    const holder = await LocalRuntime.start({ dataDir: data });
    const inbox = join(data, INBOX_FOLDER);
    mkdirSync(inbox, { recursive: true });
    const closed = new Promise<void>((resolve, reject) => {
      const watcher = watch(inbox, (_type, name) => {
        if (!String(name).endsWith('.taken.json')) return;
        watcher.close();
        holder.close().then(resolve, reject);
      });
    });

    const io = captureIo();
    const code = await main(['callback', runId, token, '--data', data, '--answer', '"approved"'], io);
    await closed;
    expect(code, io.errText()).toBe(0);
    expect(io.errText()).toBe(`run ${runId}: callback answered; branch root waits for resume: npx branch-spawner resume ${runId} --data ${data}\n`);

    const resumed = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], resumed), resumed.errText()).toBe(0);
    expect(JSON.parse(resumed.outText())).toMatchObject({ status: 'COMPLETED', result: { decision: 'approved' } });
  });

  it('a holder that stops while it takes an answer finishes it and says its outcome before it lets the folder go: taken once, its run not carried on by the holder', async () => {
    const data = join(mkdtempSync(join(dir, 'holder-')), 'data');
    const lock = lockDataFolder(data);
    const taken: unknown[] = [];
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let entered!: () => void;
    const taking = new Promise<void>((resolve) => (entered = resolve));
    const errors: unknown[] = [];
    const stop = watchInbox(
      data,
      async (runId, _token, value) => {
        taken.push(value);
        entered();
        await gate;
        return { runId, branchId: 'root', status: 'ANSWERED' as const };
      },
      // It drives the run, but it is letting the folder go: the branch waits for `resume`.
      () => true,
      (error) => errors.push(error),
    );
    const answered = answerThroughInbox(data, { runId: 'r1', token: 't1', answer: 'yes' }, process.pid);
    await taking;
    let stopped = false;
    const stopping = Promise.resolve(stop()).then(() => (stopped = true));
    // The answer it took is still being given: stopping waits for it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    open();
    await stopping;
    lock.release();
    await expect(answered).resolves.toEqual({ answered: { runId: 'r1', branchId: 'root', status: 'ANSWERED' }, carriedOn: false });
    expect(taken).toEqual(['yes']);
    expect(errors).toEqual([]);
  });
});

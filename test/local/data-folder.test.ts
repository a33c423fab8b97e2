// Long-running: started first (vitest.config.ts).
/**
 * A `--data` folder belongs to one process: a second one refuses cleanly naming the holder's pid
 * (it used to die with an uncaught `Database is closed`); a lock left by a dead process is taken
 * over, by one process only when several find it at once; `redrive` and `resume` refuse a folder
 * that does not exist (or holds no state) instead of creating it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { LOCK_FILE, lockDataFolder } from '../../local/data-folder';
import { LocalRuntime } from '../../local/runtime';
import { captureIo } from '../support/io';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE = process.execPath;
const base = mkdtempSync(join(tmpdir(), 'bs-data-folder-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** The CLI in its own process: exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [join(ROOT, 'bin/branch-spawner.mjs'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const dead = spawnSync(NODE, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(dead.stdout);
  expect(pid).toBeGreaterThan(0);
  return pid;
}

describe('a data folder in use', () => {
  it('a second process refuses with exit 2 naming the pid that holds it, and leaves the folder working', async () => {
    const data = join(base, 'busy');
    const holder = await LocalRuntime.start({ dataDir: data });
    try {
      const commands = [
        ['run', 'examples/simple-parallel.yaml', '--data', data],
        ['resume', 'some-run', '--data', data],
        ['redrive', '--data', data],
      ];
      const answers = await Promise.all(commands.map((args) => cli(args)));
      for (const [i, args] of commands.entries()) {
        const second = answers[i];
        expect(second.code, args[0]).toBe(2);
        expect(second.err, args[0]).toContain(`error: the data folder is in use by pid ${process.pid} (${data})`);
        expect(second.err, args[0]).not.toMatch(/Database is closed|\n\s+at /);
      }
      // The holder is unharmed: its run completes.
      const runId = await holder.startRun({ name: 'after', request: 'x', entry: 'A', agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'fine' }] } } });
      expect((await holder.waitForRun(runId)).status).toBe('COMPLETED');
    } finally {
      await holder.close();
    }
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], io), io.errText()).toBe(0);
  }, 180_000);

  it('in the same process too (a second runtime on an open folder)', async () => {
    const data = join(base, 'same');
    const first = await LocalRuntime.start({ dataDir: data });
    try {
      await expect(LocalRuntime.start({ dataDir: data })).rejects.toThrow(`the data folder is in use by pid ${process.pid} (this process)`);
    } finally {
      await first.close();
    }
  });

  it('a lock left by a process that died (kill -9) is taken over', async () => {
    const data = join(base, 'stale');
    const dead = deadPid();
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], io)).toBe(0);
    writeFileSync(join(data, LOCK_FILE), `${dead}\n`);
    const again = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], again), again.errText()).toBe(0);
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
  }, 60_000);
});

describe('a lock left by another life of the machine or the container', () => {
  // Each lock below names a pid that is alive now (this process, or pid 1) but not as the holder:
  // a container restarted with the same pid, a lock from before a reboot, a pid that was reused.
  const cases: [string, () => string][] = [
    ['this very pid, not held by this process (a container restarted: the same pid again)', () => `${process.pid}\n`],
    ['a live pid, written in another boot', () => `1 boot=00000000-0000-0000-0000-000000000000\n`],
    ['a live pid, written in another PID namespace', () => `1 pidns=pid:[1]\n`],
    ['a live pid that started after the lock was written (the pid was reused)', () => `1 start=1\n`],
  ];
  for (const [name, lock] of cases) {
    it(`is taken over: ${name}`, async () => {
      const data = mkdtempSync(join(base, 'other-life-'));
      writeFileSync(join(data, LOCK_FILE), lock());
      const io = captureIo();
      expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], io), io.errText()).toBe(0);
      expect(existsSync(join(data, LOCK_FILE))).toBe(false);
    }, 60_000);
  }
});

describe('taking over a stale lock, when several processes find it at once', () => {
  it('only the process that claimed the takeover removes the lock: another one leaves it alone', () => {
    // A lock left by a dead process, and a live process (our parent, standing for another) that
    // has claimed its takeover and is about to remove it and create its own lock.
    const data = mkdtempSync(join(base, 'claimed-'));
    const dead = deadPid();
    writeFileSync(join(data, LOCK_FILE), `${dead}\n`);
    writeFileSync(join(data, `${LOCK_FILE}.takeover-${dead}`), `${process.ppid}\n`);
    // Removing the lock now could remove the one the claimer creates next: refused, lock untouched.
    expect(() => lockDataFolder(data)).toThrow(`the data folder ${data} is being taken by another process at the same moment; try again`);
    expect(readFileSync(join(data, LOCK_FILE), 'utf8')).toBe(`${dead}\n`);
  });

  it('a claim left by a process that died while taking over is cleared, and the lock taken over', () => {
    const data = mkdtempSync(join(base, 'dead-claim-'));
    const [dead, deadClaimer] = [deadPid(), deadPid()];
    writeFileSync(join(data, LOCK_FILE), `${dead}\n`);
    writeFileSync(join(data, `${LOCK_FILE}.takeover-${dead}`), `${deadClaimer}\n`);
    const lock = lockDataFolder(data);
    expect(readFileSync(join(data, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid}( |\n)`));
    lock.release();
    // Nothing left behind: no lock, no claim, no temporary file.
    expect(readdirSync(data)).toEqual([]);
  });
});

describe('resume --data', () => {
  it('refuses a folder that does not exist, and does not create it (exit 2)', async () => {
    const missing = join(base, 'no-such-resume-folder');
    const io = captureIo();
    expect(await main(['resume', 'some-run', '--data', missing], io)).toBe(2);
    expect(io.errText()).toContain(`error: resume: no data folder ${missing}`);
    expect(existsSync(missing)).toBe(false);
    // Listing the folder's unfinished runs does not create it either.
    const listing = captureIo();
    expect(await main(['resume', '--data', missing], listing)).toBe(0);
    expect(listing.outText()).toContain(`no runs recorded in ${missing}`);
    expect(existsSync(missing)).toBe(false);
  });

  it('refuses a folder that holds no kept state (exit 2), and leaves it empty', async () => {
    const empty = join(base, 'empty-resume');
    mkdirSync(empty);
    const io = captureIo();
    expect(await main(['resume', 'some-run', '--data', empty], io)).toBe(2);
    expect(io.errText()).toMatch(/is not a data folder/);
    expect(readdirSync(empty)).toEqual([]);
  });
});

describe('redrive --data', () => {
  it('refuses a folder that does not exist, and does not create it (exit 2)', async () => {
    const missing = join(base, 'no-such-folder');
    const io = captureIo();
    expect(await main(['redrive', '--data', missing], io)).toBe(2);
    expect(io.errText()).toContain(`no data folder ${missing}`);
    expect(existsSync(missing)).toBe(false);
  });

  it('refuses a folder that holds no kept state (exit 2), and leaves it empty', async () => {
    const empty = mkdtempSync(join(base, 'empty-'));
    const io = captureIo();
    expect(await main(['redrive', '--data', empty], io)).toBe(2);
    expect(io.errText()).toMatch(/is not a data folder/);
    expect(existsSync(join(empty, 'sqs'))).toBe(false);
  });
});

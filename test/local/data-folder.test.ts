/**
 * A `--data` folder belongs to one process: a second one refuses cleanly naming the holder's pid
 * (it used to die with an uncaught `Database is closed`); a lock left by a dead process is taken
 * over; `redrive` refuses a folder that does not exist (or holds no state) instead of creating it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { LOCK_FILE } from '../../local/data-folder';
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
    const dead = spawnSync(NODE, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    expect(deadPid).toBeGreaterThan(0);
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], io)).toBe(0);
    writeFileSync(join(data, LOCK_FILE), `${deadPid}\n`);
    const again = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml', '--data', data, '--json'], again), again.errText()).toBe(0);
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
  }, 60_000);
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

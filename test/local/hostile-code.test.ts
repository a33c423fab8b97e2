/**
 * Code the user brings (module agents, hooks) cannot break the runtime's promises: a run ends on
 * its deadline whatever the agent does (hang, late answer, stray rejection, process.exit), the
 * CLI prints its document and exits, and `dev` keeps serving other runs. Through the real CLI in
 * a child process: what is checked is what a user sees (exit code, one document).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataFolderError } from '../../core/errors';
import { isRunEnd } from '../../core/events';
import { runIdFor } from '../../functions/messages';
import { main } from '../../local/cli';
import { LocalRuntime } from '../../local/runtime';
import { followDevEvents } from '../support/dev-stream';
import { captureIo } from '../support/io';
import type { AgentRegistry } from '../../core/agent-kinds';

const ROOT = join(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const BIN = join(ROOT, 'bin', 'branch-spawner.mjs');

const dir = mkdtempSync(join(tmpdir(), 'bs-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Every file of a folder (recursively) with its size and contents' length, to see that nothing changed. */
function folderState(folder: string): Record<string, string> {
  const state: Record<string, string> = {};
  for (const name of readdirSync(folder, { recursive: true }) as string[]) {
    const path = join(folder, name);
    const stat = statSync(path);
    state[name] = stat.isDirectory() ? 'dir' : `${stat.size} ${readFileSync(path, 'utf8').length}`;
  }
  return state;
}

/** Runs the CLI in a child process (as another user with `user`); resolves with its exit code and output. */
function cli(args: string[], cwd = dir, user?: { uid: number; gid: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], ...user });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

const AGENTS: Record<string, string> = {
  // Ignores its signal and never answers.
  hang: 'export default () => new Promise(() => {});\n',
  // Answers after the deadline (6 s against maxRunSeconds 2).
  late: 'export default () => new Promise((r) => setTimeout(() => r({ next_action: "final_response", content: "late" }), 6000));\n',
  // Leaves a rejection nobody handles and a timer that throws, then never answers.
  stray: [
    'export default () => {',
    '  Promise.reject(new Error("stray rejection"));',
    '  setTimeout(() => { throw new Error("thrown in a timer"); }, 10);',
    '  return new Promise(() => {});',
    '};',
    '',
  ].join('\n'),
  // Ends the process it runs in.
  exit: 'export default () => { process.exit(0); };\n',
};

function scenario(kind: string): string {
  file(`${kind}.ts`, AGENTS[kind]);
  return file(
    `${kind}.yaml`,
    `name: ${kind}\nrequest: go\nentry: A\nlimits: { maxRunSeconds: 2 }\nagents:\n  A: { kind: module, module: ./${kind}.ts }\n`,
  );
}

describe('module agents that misbehave, under maxRunSeconds: 2', () => {
  for (const kind of Object.keys(AGENTS)) {
    it(`${kind}: the run ends FAILED, run --json prints its document and exits 1`, async () => {
      const { code, out, err } = await cli(['run', scenario(kind), '--json']);
      expect(code, err).toBe(1);
      const doc = JSON.parse(out);
      expect(doc.status).toBe('FAILED');
      expect(doc.metrics.activeCount).toBe(0);
      expect(doc.result).toBeNull();
    }, 30_000);
  }
});

describe('hooks that misbehave', () => {
  const run = (hooks: string) => cli(['run', join(ROOT, 'examples', 'hierarchical.yaml'), '--json', '--hooks', file(`${hooks.length}-${Math.random()}.mjs`, hooks)]);
  let clean: { result: unknown; branches: unknown[] };
  it('a clean run, to compare with', async () => {
    const { code, out } = await run('export const onRunStarted = () => {};\n');
    expect(code).toBe(0);
    clean = JSON.parse(out);
  }, 30_000);

  it('a hook that changes what it is given changes nothing of the run', async () => {
    const { code, out } = await run(
      [
        'export function onBranchCompleted(branch, result) { if (result && typeof result === "object") { for (const k of Object.keys(result)) delete result[k]; result.hacked = true; } }',
        'export function onSynchronizationPoint(parentId, results) { for (const r of results) r.result = "hacked"; results.length = 0; }',
        '',
      ].join('\n'),
    );
    expect(code).toBe(0);
    const doc = JSON.parse(out);
    expect(JSON.stringify(doc)).not.toContain('hacked');
    expect(doc.result).toEqual(clean.result);
  }, 30_000);

  it('a hook that never returns, throws what cannot be printed, or calls process.exit: reported, and the run prints its document', async () => {
    const { code, out, err } = await run(
      [
        'export function onRunStarted() { return new Promise(() => {}); }',
        'export function onBranchCreated(b) { if (b.id === "root") { const e = Object.create(null); e.why = "no prototype"; throw e; } if (b.id === "root.0") throw { toString() { throw new Error("no"); } }; }',
        'export function onBranchFailed() {}',
        'export function onRunEnded() { process.exit(0); }',
        '',
      ].join('\n'),
    );
    expect(code, err).toBe(0);
    expect(JSON.parse(out).status).toBe('COMPLETED');
    expect(err).toMatch(/warning: hook onRunStarted threw on RunStarted: did not return within 10000 ms/);
    expect(err).toMatch(/warning: hook onBranchCreated threw on BranchCreated root: \{"why":"no prototype"\}/);
    expect(err).toMatch(/warning: hook onBranchCreated threw on BranchCreated root\.0: \{\}/);
    expect(err).toMatch(/warning: hook onRunEnded threw on RunCompleted: called process\.exit\(0\)/);
  }, 60_000);
});

/** The run's lifecycle events from dev's stream, up to its end; `ready` once the server holds the stream. */
function runEnd(url: string, runId: string): { ready: Promise<void>; ended: Promise<string> } {
  const follow = followDevEvents(`${url}/runs/${runId}/events`, isRunEnd);
  const ended = follow.done.then(({ events, stopped }) => {
    if (!stopped) throw new Error(`the stream of ${runId} ended before the run did`);
    return events[events.length - 1].type;
  });
  return { ready: follow.ready, ended };
}

describe('dev keeps serving', () => {
  it('runs of each misbehaving agent end FAILED at their deadline, and a run after them completes', async () => {
    for (const kind of Object.keys(AGENTS)) file(`${kind}.ts`, AGENTS[kind]);
    const child = spawn(NODE, [BIN, 'dev'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let stdout = '';
        child.stdout.on('data', (c) => {
          stdout += c;
          if (stdout.includes('\n')) resolve(stdout.split('\n')[0]);
        });
        child.on('exit', () => reject(new Error(`dev exited: ${stderr}`)));
      });
      const start = async (document: object, key: string): Promise<string> => {
        const runId = runIdFor('local', key);
        const watch = runEnd(url, runId);
        await watch.ready;
        const response = await fetch(`${url}/runs`, {
          method: 'POST',
          body: JSON.stringify(document),
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
        });
        expect(response.status, await response.text()).toBe(202);
        return watch.ended;
      };
      const ends = await Promise.all(
        Object.keys(AGENTS).map((kind) =>
          start({ name: kind, request: 'go', entry: 'A', limits: { maxRunSeconds: 2 }, agents: { A: { kind: 'module', module: `./${kind}.ts` } } }, `hostile-${kind}`),
        ),
      );
      expect(ends).toEqual(Object.keys(AGENTS).map(() => 'RunFailed'));
      const after = await start(
        { name: 'after', request: 'go', entry: 'A', agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'ok' }] } } },
        'hostile-after',
      );
      expect(after).toBe('RunCompleted');
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  }, 60_000);
});

describe('run --data and resume', () => {
  it('the run id is in runs.jsonl before the run starts, and resume --json prints metrics.cost as run does', async () => {
    const data = join(dir, 'data-order');
    const seen = join(dir, 'seen.txt');
    const hooks = file(
      'order-hooks.mjs',
      [
        'import { appendFileSync, readFileSync } from "node:fs";',
        `export function onRunStarted(run) { let list = ""; try { list = readFileSync(${JSON.stringify(join(data, 'runs.jsonl'))}, "utf8"); } catch {} appendFileSync(${JSON.stringify(seen)}, list.includes(run.runId) ? "listed\\n" : "missing\\n"); }`,
        '',
      ].join('\n'),
    );
    const run = await cli(['run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data, '--json', '--hooks', hooks]);
    expect(run.code, run.err).toBe(0);
    expect(readFileSync(seen, 'utf8')).toBe('listed\n');
    const { runId, metrics } = JSON.parse(run.out);
    const resumed = await cli(['resume', runId, '--data', data, '--json']);
    expect(resumed.code, resumed.err).toBe(0);
    const doc = JSON.parse(resumed.out);
    // The same figures, grown by what resuming read and wrote.
    expect(Object.keys(doc.metrics.cost ?? {})).toEqual(Object.keys(metrics.cost));
    expect(doc.metrics.cost.usd).toBeGreaterThanOrEqual(metrics.cost.usd);
  }, 60_000);
});

describe('a data folder that fails', () => {
  const slow = {
    name: 'slow',
    request: 'go',
    entry: 'P',
    limits: { maxConcurrentBranches: 2 },
    agents: {
      P: { kind: 'script', allowed: ['W'], responses: [{ next_action: 'parallel_invoke', agents: ['W', 'W', 'W', 'W', 'W', 'W'] }, { next_action: 'final_response', content: '$input' }] },
      W: { kind: 'script', responses: [{ $delayMs: 200, next_action: 'final_response', content: 'w' }] },
    } satisfies AgentRegistry,
  };

  it('a full disk mid-run ends the wait with the disk error, reported once; resume after space returns completes the run', async () => {
    const data = join(dir, 'full-disk');
    let full = false;
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    const journalWrite = (fd: number, buffer: Uint8Array, offset: number, length: number) => {
      if (full) throw enospc();
      return writeSync(fd, buffer, offset, length);
    };
    const runtime = await LocalRuntime.start({ dataDir: data, journalWrite });
    let runId: string;
    try {
      runId = await runtime.startRun(slow);
      const started = new Promise<void>((resolve) => runtime.bus.subscribe((e) => {
        if (e.type === 'BranchCreated' && e.branchId === 'root.0') resolve();
      }));
      await started;
      full = true;
      await expect(runtime.waitForRun(runId)).rejects.toThrow(/could not write the journal .*ENOSPC: no space left on device/);
      expect(runtime.errors.filter((e) => /ENOSPC/.test(String((e as Error)?.message))).length).toBe(1);
    } finally {
      await runtime.close();
    }
    full = false;
    const io = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], io), io.errText()).toBe(0);
    expect(JSON.parse(io.outText()).status).toBe('COMPLETED');
  }, 60_000);

  it('a read-only data folder: run, resume and redrive exit 2 with one line naming the folder, and leave it as it was', async () => {
    // Permissions do not stop root: as root, the CLI runs as nobody (the data folder stays root's),
    // in a folder of its own outside the suite's (which only root may enter).
    const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const parent = mkdtempSync(join(user ? '/tmp' : tmpdir(), 'bs-read-only-'));
    if (user) chownSync(parent, user.uid, user.gid);
    const data = join(parent, 'data');
    // nobody must reach the checkout's node and bin: a clone inside a 0700 folder (mktemp -d) gets
    // the search bit for others on its ancestors for this test, given back after.
    const searchable = user ? opened(resolve(ROOT)) : [];
    try {
      const io = captureIo();
      expect(await main(['run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data, '--json'], io)).toBe(0);
      const runId = JSON.parse(io.outText()).runId as string;
      const before = folderState(data);
      for (const entry of [data, join(data, 'blobs')]) chmodSync(entry, 0o555);
      for (const args of [['resume', runId, '--data', data], ['run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data], ['redrive', '--data', data]]) {
        const { code, err } = await cli(args, parent, user && { ...user, env: { ...process.env, TMPDIR: parent } });
        expect({ args: args[0], code, err }).toEqual({
          args: args[0],
          code: 2,
          err: `error: the data folder ${data} cannot be written (EACCES: permission denied): give a folder with space that this user may write\n`,
        });
      }
      expect(folderState(data)).toEqual(before);
    } finally {
      chmodSync(data, 0o755);
      chmodSync(join(data, 'blobs'), 0o755);
      rmSync(parent, { recursive: true, force: true });
      for (const [folder, mode] of searchable) chmodSync(folder, mode);
    }
  }, 90_000);

  it('a full disk when the folder is opened: the journal is left whole, one error naming it; once space returns, resume completes', async () => {
    // The full disk is the journal's write(2) failing as ENOSPC (its one fs boundary: appends and
    // the compaction every open makes), on a folder whose run was stopped half-way.
    const data = join(dir, 'full-at-open');
    let runId: string;
    const first = await LocalRuntime.start({ dataDir: data });
    try {
      runId = await first.startRun(slow);
      await new Promise<void>((resolve) => first.bus.subscribe((e) => {
        if (e.type === 'BranchCreated' && e.branchId === 'root.0') resolve();
      }));
    } finally {
      await first.close();
    }
    const before = folderState(data);
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    const full = LocalRuntime.start({ dataDir: data, journalWrite: () => { throw enospc(); } });
    await expect(full).rejects.toThrow(DataFolderError);
    await expect(full).rejects.toThrow(`could not open the journal ${join(data, 'journal.jsonl')}: ENOSPC: no space left on device, write`);
    // Nothing half-written is left (no compaction copy, no lock).
    expect(folderState(data)).toEqual(before);
    const io = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], io), io.errText()).toBe(0);
    expect(JSON.parse(io.outText()).status).toBe('COMPLETED');
  }, 60_000);

  it('a damaged journal (a middle line): one line naming the file and the line, exit 2, no stack', async () => {
    const data = join(dir, 'damaged');
    const io = captureIo();
    expect(await main(['run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data, '--json'], io)).toBe(0);
    const journal = join(data, 'journal.jsonl');
    const lines = readFileSync(journal, 'utf8').split('\n');
    lines.splice(1, 0, '{"this is not": a journal line');
    writeFileSync(journal, lines.join('\n'));
    const { code, err } = await cli(['resume', '--data', data]);
    expect(code).toBe(2);
    expect(err).toMatch(/^error: .*journal\.jsonl: line 2 is not readable \(the journal is damaged\)\n$/);
  }, 60_000);
});

describe('bodies and errors from outside are bounded', () => {
  it('an openai server answering 64 MB: the branch fails naming maxResponseBytes (the body is not read whole)', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      const more = () => {
        while (sent < 64) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const path = file('big-body.yaml', `name: big\nrequest: go\nentry: A\nagents:\n  A: { kind: openai, model: m, baseUrl: "${url}", retries: 0 }\n`);
      const io = captureIo();
      expect(await main(['run', path, '--json'], io)).toBe(1);
      expect(JSON.parse(io.outText()).error).toMatch(/over maxResponseBytes \(4194304 bytes\)/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 60_000);

  it('a module agent that throws a 500 KB message: the branch fails with the message cut to size, not as poison', async () => {
    file('huge-error.ts', 'export default () => { throw new Error("x".repeat(500 * 1024)); };\n');
    const path = file('huge-error.yaml', 'name: huge\nrequest: go\nentry: A\nagents:\n  A: { kind: module, module: ./huge-error.ts }\n');
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(doc.branches[0].error).toMatch(/^agent A failed: (AgentInvocationError: )?x+ … \[\d+ more characters cut\]$/);
    expect(doc.branches[0].error.length).toBeLessThanOrEqual(8 * 1024 + 100);
  }, 60_000);
});

describe('--keep-poison', () => {
  it('says what it waits for once a step is parked in the dead-letter queue, instead of waiting silently', async () => {
    const data = join(dir, 'parked');
    const child = spawn(NODE, [BIN, 'run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data, '--keep-poison', '--chaos', 'poison=root'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const told = new Promise<void>((resolve) =>
      child.stderr.on('data', (c) => {
        err += c;
        if (err.includes('waiting: ')) resolve();
      }),
    );
    try {
      await Promise.race([told, exited.then(() => Promise.reject(new Error(`run exited: ${err}`)))]);
      expect(err).toMatch(/waiting: 1 step\(s\) of the run are in the dead-letter queue \(kept by --keep-poison\); .* redrive --data /);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }, 90_000);
});

describe('token accounting of module agents', () => {
  it('tokens reported before a throw count against maxRunTokens; a negative count is refused', async () => {
    file('spend-then-throw.ts', 'export default (ctx) => { ctx.reportUsage({ inputTokens: 2000, outputTokens: 1000 }); throw new Error("gave up"); };\n');
    const spent = file('spend.yaml', 'name: spend\nrequest: go\nentry: A\nlimits: { maxRunTokens: 500 }\nagents:\n  A: { kind: module, module: ./spend-then-throw.ts }\n');
    const io = captureIo();
    expect(await main(['run', spent, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(doc.error).toBe('BudgetExceeded: maxRunTokens 500, used 3000');
    expect(doc.metrics.usage).toEqual({ inputTokens: 2000, outputTokens: 1000 });

    file('negative.ts', 'export default (ctx) => { ctx.reportUsage({ inputTokens: -5, outputTokens: 1 }); return { next_action: "final_response", content: "x" }; };\n');
    const negative = file('negative.yaml', 'name: negative\nrequest: go\nentry: A\nagents:\n  A: { kind: module, module: ./negative.ts }\n');
    const io2 = captureIo();
    expect(await main(['run', negative, '--json'], io2)).toBe(1);
    const doc2 = JSON.parse(io2.outText());
    expect(doc2.error).toMatch(/reportUsage: inputTokens must be a non-negative number \(got -5\)/);
    expect(doc2.metrics.usage).toEqual({ inputTokens: 0, outputTokens: 0 });
  }, 60_000);
});

/** Gives others the search bit on `folder` and its ancestors that lack it; the modes to restore. */
function opened(folder: string): [string, number][] {
  const changed: [string, number][] = [];
  for (let f = folder; ; f = dirname(f)) {
    const mode = statSync(f).mode & 0o7777;
    if (!(mode & 0o001)) {
      chmodSync(f, mode | 0o001);
      changed.push([f, mode]);
    }
    if (dirname(f) === f) return changed;
  }
}

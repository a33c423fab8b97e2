/**
 * What the README and docs/ promise about the CLI's answers to bad input and its messages, as a
 * new user meets them: bad paths named in one line with exit 2 before anything runs, the poison
 * report, the options `--help` lists, plurals and articles, hints that name a runnable command.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-cli-promises-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const HELLO = file('hello.yaml', 'name: hello\nrequest: hi\nentry: A\nagents:\n  A: { kind: script, responses: [ { next_action: final_response, content: hello } ] }\n');

/** One line, naming the option, and no stack trace. */
function expectOneLine(text: string, option: string) {
  expect(text).toContain(option);
  expect(text.trim().split('\n')).toHaveLength(1);
  expect(text).not.toMatch(/^\s+at /m);
}

describe('bad paths: exit 2, one line naming the option, before the run starts', () => {
  it('--trace <a directory>, or under a file', async () => {
    for (const trace of [dir, join(HELLO, 'trace.jsonl')]) {
      const io = captureIo();
      expect(await main(['run', HELLO, '--trace', trace], io)).toBe(2);
      expectOneLine(io.errText(), '--trace');
      expect(io.outText()).toBe(''); // nothing ran
    }
  });

  it('--data <a regular file>, for run, resume and redrive', async () => {
    const plain = file('not-a-folder', 'x');
    const cases = [['run', HELLO, '--data', plain], ['run', HELLO, '--data', join(plain, 'sub')], ['resume', 'r-1', '--data', plain], ['resume', '--data', plain], ['redrive', '--data', plain]];
    for (const argv of cases) {
      const io = captureIo();
      expect(await main(argv, io), argv.join(' ')).toBe(2);
      expectOneLine(io.errText(), '--data');
      expect(io.outText()).toBe('');
    }
  });

  it('dev --port <a port in use>', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const io = captureIo();
      expect(await main(['dev', '--port', String(port)], io)).toBe(2);
      expectOneLine(io.errText(), '--port');
      expect(io.errText()).toContain(String(port));
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});

describe('options that are not what they say', () => {
  it('--seed abc is refused with exit 2 naming the option', async () => {
    for (const seed of ['abc', '1.5', '']) {
      const io = captureIo();
      expect(await main(['run', HELLO, '--chaos', 'duplicate-delivery', '--seed', seed], io), seed).toBe(2);
      expectOneLine(io.errText(), '--seed');
      expect(io.outText()).toBe('');
    }
  });
});

describe('poison from the CLI: the flags redrive needs', () => {
  it('run --help lists poison=<branchId> (the bad---chaos error lists it) and --keep-poison; resume --help lists --chaos', async () => {
    const run = captureIo();
    expect(await main(['run', '--help'], run)).toBe(0);
    expect(run.outText()).toContain('poison=<branchId>');
    expect(run.outText()).toContain('--keep-poison');
    const resume = captureIo();
    expect(await main(['resume', '--help'], resume)).toBe(0);
    expect(resume.outText()).toMatch(/--chaos <faults>[\s\S]*poison=<branchId>/);
    expect(resume.outText()).toContain('--seed');
  });

  it('run --keep-poison needs --data; resume --chaos is checked like run --chaos', async () => {
    const io = captureIo();
    expect(await main(['run', HELLO, '--keep-poison'], io)).toBe(2);
    expectOneLine(io.errText(), '--keep-poison needs --data');
    const data = mkdtempSync(join(dir, 'data-'));
    const ran = captureIo();
    expect(await main(['run', HELLO, '--data', data, '--keep-poison', '--json'], ran), ran.errText()).toBe(0);
    const runId = JSON.parse(ran.outText()).runId;
    const bad = captureIo();
    expect(await main(['resume', runId, '--data', data, '--chaos', 'poison='], bad)).toBe(2);
    expectOneLine(bad.errText(), '--chaos poison=<branchId>');
    const resumed = captureIo();
    expect(await main(['resume', runId, '--data', data, '--chaos', 'poison=root.1', '--seed', '3', '--json'], resumed), resumed.errText()).toBe(0);
    expect(JSON.parse(resumed.outText()).status).toBe('COMPLETED');
  });
});

describe('small things a new user reads', () => {
  it('plurals and articles: "1 branch", "an http agent", "an openai agent"', async () => {
    const io = captureIo();
    expect(await main(['run', HELLO], io)).toBe(0);
    expect(io.outText()).toMatch(/COMPLETED in [\d.]+s — 1 branch \(1 completed,/);
    for (const [kind, needs] of [['http', 'url'], ['openai', 'model'], ['lambda', 'functionName']]) {
      const bad = captureIo();
      expect(await main(['run', file(`needs-${kind}.yaml`, `name: x\nentry: A\nagents:\n  A: { kind: ${kind} }\n`)], bad)).toBe(2);
      expect(bad.errText()).toContain(`: ${kind === 'lambda' ? 'a' : 'an'} ${kind} agent needs ${needs}`);
    }
  });

  it('a module that cannot be loaded is named without the spawner\'s own files', async () => {
    const io = captureIo();
    const path = file('lost-module.yaml', 'name: x\nentry: A\nagents:\n  A: { kind: module, module: ./lost.ts }\n');
    expect(await main(['run', path], io)).toBe(2);
    expect(io.errText()).toContain('agents.A.module');
    expect(io.errText()).toContain(join(dir, 'lost.ts'));
    expect(io.errText()).not.toMatch(/imported from|module-invoker/);
  });

  it('a YAML alias inside its own anchor is reported as a cycle, not as nesting', async () => {
    const io = captureIo();
    const path = file('cycle.yaml', 'name: x\nentry: A\nrequest: &r { again: *r }\nagents:\n  A: { kind: script, responses: [1] }\n');
    expect(await main(['run', path], io)).toBe(2);
    expectOneLine(io.errText(), 'request.again: refers to itself');
    expect(io.errText()).not.toContain('levels deep');
  });

  it('the hints name a command that runs from a fresh clone: npx branch-spawner resume', async () => {
    const data = mkdtempSync(join(dir, 'hint-'));
    const io = captureIo();
    expect(await main(['run', HELLO, '--data', data], io)).toBe(0);
    expect(io.errText()).toMatch(/resume with: npx branch-spawner resume \S+ --data /);
  });
});

describe('npx branch-spawner --version', () => {
  it('answers from package.json before loading tsx or the CLI (a copy of the bin without node_modules answers)', async () => {
    const { copyFileSync, mkdirSync, readFileSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const root = join(import.meta.dirname, '..', '..');
    const alone = mkdtempSync(join(dir, 'bin-alone-'));
    mkdirSync(join(alone, 'bin'));
    copyFileSync(join(root, 'bin', 'branch-spawner.mjs'), join(alone, 'bin', 'branch-spawner.mjs'));
    copyFileSync(join(root, 'package.json'), join(alone, 'package.json'));
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      expect(execFileSync(process.execPath, [join(alone, 'bin', 'branch-spawner.mjs'), flag], { encoding: 'utf8' })).toBe(`${version}\n`);
    }
  });
});

describe('long silent steps say what they do on a terminal', () => {
  /** A captured terminal: stdout says it is a TTY, as it does in a shell. */
  const terminal = () => {
    const io = captureIo();
    Object.assign(io.out, { isTTY: true, columns: 120 });
    return io;
  };

  it('run --engines: "starting the engines" before the run, on a terminal only', async () => {
    const io = terminal();
    expect(await main(['run', HELLO, '--engines'], io), io.errText()).toBe(0);
    expect(io.errText()).toBe('starting the engines (dynalite, fauxqs)...\n');
    const quiet = captureIo();
    expect(await main(['run', HELLO, '--engines'], quiet)).toBe(0);
    expect(quiet.errText()).toBe('');
  });
});

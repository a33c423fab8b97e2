/**
 * Runs once around the whole suite. Every temp file a test, the CDK or a child process makes goes
 * under one folder of our own (TMPDIR, which os.tmpdir() reads), removed at the end: the system
 * temp dir is left as it was found. The test workers and the processes tests start inherit it.
 * The SQLite engine under fauxqs is experimental in Node 22, and the CDK prints a line for each
 * deprecated API a construct uses (JSII_DEPRECATED=quiet): noise in a green run's output.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'branch-spawner-tests-'));
  const previous = { TMPDIR: process.env.TMPDIR, NODE_OPTIONS: process.env.NODE_OPTIONS, JSII_DEPRECATED: process.env.JSII_DEPRECATED };
  process.env.TMPDIR = root;
  process.env.JSII_DEPRECATED = 'quiet';
  process.env.NODE_OPTIONS = [previous.NODE_OPTIONS, '--disable-warning=ExperimentalWarning'].filter(Boolean).join(' ');
  return () => {
    rmSync(root, { recursive: true, force: true });
    for (const [name, value] of Object.entries(previous)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/**
 * The CLI as a child process, for the tool tests: `runCli` runs a command to its end;
 * `killDuringToolsThenResume` runs a scenario with `--data`, waits until `hangs` calls of the
 * module tools in test/support/tool-modules.ts say they hang, kills the process with SIGKILL and
 * resumes the run, giving what the tools logged before and after.
 */
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/branch-spawner.mjs', import.meta.url));
export const TOOL_MODULES = fileURLToPath(new URL('./tool-modules.ts', import.meta.url));

export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliOutcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

export async function killDuringToolsThenResume(options: { dir: string; scenario: object; hangs: number }): Promise<{
  killedBy: NodeJS.Signals | null;
  resumed: CliOutcome;
  before: string[];
  after: string[];
}> {
  let hanging = 0;
  let allHanging!: (runId: string) => void;
  const ready = new Promise<string>((resolve) => (allHanging = resolve));
  const signal = createServer((req, res) => {
    res.end('ok');
    if (++hanging === options.hangs) allHanging(new URL(req.url ?? '/', 'http://x').searchParams.get('run')!);
  });
  await new Promise<void>((resolve) => signal.listen(0, '127.0.0.1', resolve));
  try {
    const scenario = join(options.dir, 'scenario.json');
    writeFileSync(scenario, JSON.stringify(options.scenario));
    const data = join(options.dir, 'data');
    const log = join(options.dir, 'tools.log');
    writeFileSync(log, '');
    const env = { TOOL_LOG: log, TOOL_SIGNAL_URL: `http://127.0.0.1:${(signal.address() as AddressInfo).port}/` };
    const first = spawn(process.execPath, [BIN, 'run', scenario, '--data', data], { env: { ...process.env, ...env, TOOL_HANG: '1' }, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => first.on('exit', (_code, sig) => resolve(sig)));
    const runId = await ready;
    first.kill('SIGKILL');
    const killedBy = await exited;
    const before = readFileSync(log, 'utf8').trim().split('\n');
    const resumed = await runCli(['resume', runId, '--data', data, '--json'], { ...env, TOOL_HANG: '0' });
    const after = readFileSync(log, 'utf8').trim().split('\n').slice(before.length);
    return { killedBy, resumed, before, after };
  } finally {
    await new Promise<void>((resolve) => signal.close(() => resolve()));
  }
}

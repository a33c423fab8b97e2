/**
 * Durable tool loops: `kill -9` of the CLI while two tool calls are in flight, then `resume`.
 * The model turns and the tool result that were checkpointed are not repeated; the idempotent
 * call that was in flight runs again; the one declared `idempotent: false` does not, and the model
 * is told its outcome is unknown.
 */
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { startOpenAiStub } from '../support/model-stubs';

const BIN = fileURLToPath(new URL('../../bin/branch-spawner.mjs', import.meta.url));
const TOOL_MODULES = fileURLToPath(new URL('../support/tool-modules.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bs-tools-durable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('kill -9 during a tool loop, then resume: checkpointed turns and results are not repeated', async () => {
  const stub = await startOpenAiStub((view) => {
    if (view.results.length === 0) return { calls: [{ name: 'record', args: { n: 1 } }] };
    if (view.results.length === 1) {
      return { calls: [{ name: 'record', args: { n: 2 } }, { name: 'charge', args: { n: 2 } }] };
    }
    return { calls: [{ name: 'final_response', args: { content: view.results.map((r) => r.text) } }] };
  });
  // The tools in flight say so here; the test then kills the process.
  const inFlight: string[] = [];
  let bothInFlight!: (runId: string) => void;
  const started = new Promise<string>((resolve) => (bothInFlight = resolve));
  const signal = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    inFlight.push(url.searchParams.get('tool')!);
    res.end('ok');
    if (inFlight.length === 2) bothInFlight(url.searchParams.get('run')!);
  });
  await new Promise<void>((resolve) => signal.listen(0, '127.0.0.1', resolve));
  try {
    const scenario = join(dir, 'durable.json');
    writeFileSync(
      scenario,
      JSON.stringify({
        name: 'durable-tools',
        request: 'go',
        entry: 'A',
        agents: {
          A: {
            kind: 'openai',
            baseUrl: stub.url,
            model: 'stub-model',
            toolCalling: 'on',
            tools: [
              { kind: 'module', module: TOOL_MODULES, export: 'record' },
              { kind: 'module', module: TOOL_MODULES, export: 'charge', idempotent: false },
            ],
          },
        },
      }),
    );
    const data = join(dir, 'data');
    const log = join(dir, 'tools.log');
    writeFileSync(log, '');
    const env = { ...process.env, TOOL_LOG: log, TOOL_SIGNAL_URL: `http://127.0.0.1:${(signal.address() as AddressInfo).port}/` };

    const first = spawn(process.execPath, [BIN, 'run', scenario, '--data', data, '--json'], { env: { ...env, TOOL_HANG: '1' }, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => first.on('exit', (_code, sig) => resolve(sig)));
    const runId = await started;
    first.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(stub.requests).toHaveLength(2);

    const resumed = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [BIN, 'resume', runId, '--data', data, '--json'], { env: { ...env, TOOL_HANG: '0' }, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
      ),
    );
    expect(resumed.stderr).toBe('');
    expect(resumed.code, resumed.stdout.slice(0, 2000)).toBe(0);
    const doc = JSON.parse(resumed.stdout) as { status: string; result: string[]; metrics: { tools: Record<string, { calls: number; errors: number }> } };
    expect(doc.status).toBe('COMPLETED');
    // record 1 ran once (its result was checkpointed); record 2 was in flight and ran again; charge 2 (not idempotent) did not.
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['record 1', expect.stringMatching(/^(record|charge) 2$/), expect.stringMatching(/^(record|charge) 2$/), 'record 2']);
    expect(doc.result).toEqual([
      '{"done":"record 1"}',
      '{"done":"record 2"}',
      'not run again: this call was in flight when the step was interrupted, and charge is not idempotent; its outcome is unknown',
    ]);
    // The model was not asked again for the turns it had answered before the crash: three turns in all.
    expect(stub.requests).toHaveLength(3);
    expect(doc.metrics.tools).toEqual({
      record: expect.objectContaining({ calls: 2, errors: 0 }),
      charge: expect.objectContaining({ calls: 1, errors: 1 }),
    });
  } finally {
    await stub.close();
    await new Promise<void>((resolve) => signal.close(() => resolve()));
  }
}, 180_000);

/**
 * `parallel_tool_calls: branch`: a turn with three tool calls yields three copy branches that
 * each run one call and go on reasoning; `kill -9` while their tool loops run, then `resume`:
 * the calls whose results were checkpointed are not run again.
 */
import { execFile, spawn } from 'node:child_process';
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
const dir = mkdtempSync(join(tmpdir(), 'bs-tools-branch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('three parallel tool calls run in three copies; kill -9 in their loops, resume re-runs no checkpointed call', async () => {
  const stub = await startOpenAiStub((view) => {
    const last = view.users.at(-1) ?? '';
    if (last.includes('"child_count"')) return { calls: [{ name: 'final_response', args: { content: JSON.parse(last) } }] };
    // The parent's turn: three calls at once.
    if (view.results.length === 0) return { calls: [11, 12, 13].map((n) => ({ name: 'record', args: { n } })) };
    // A copy: its one call's result, then one more call of its own, then its answer.
    if (view.results.length === 1) return { calls: [{ name: 'record', args: { n: 2 } }] };
    return { calls: [{ name: 'final_response', args: { content: view.results.map((r) => r.text) } }] };
  });
  let hanging = 0;
  let allHanging!: (runId: string) => void;
  const ready = new Promise<string>((resolve) => (allHanging = resolve));
  const signal = createServer((req, res) => {
    res.end('ok');
    if (++hanging === 3) allHanging(new URL(req.url ?? '/', 'http://x').searchParams.get('run')!);
  });
  await new Promise<void>((resolve) => signal.listen(0, '127.0.0.1', resolve));
  try {
    const scenario = join(dir, 'branch.json');
    writeFileSync(
      scenario,
      JSON.stringify({
        name: 'branched-tool-calls',
        request: 'go',
        entry: 'A',
        agents: {
          A: {
            kind: 'openai',
            baseUrl: stub.url,
            model: 'stub-model',
            toolCalling: 'on',
            parallel_tool_calls: 'branch',
            tools: [{ kind: 'module', module: TOOL_MODULES, export: 'record' }],
          },
        },
      }),
    );
    const data = join(dir, 'data');
    const log = join(dir, 'tools.log');
    writeFileSync(log, '');
    const env = { ...process.env, TOOL_LOG: log, TOOL_SIGNAL_URL: `http://127.0.0.1:${(signal.address() as AddressInfo).port}/` };

    const first = spawn(process.execPath, [BIN, 'run', scenario, '--data', data], { env: { ...env, TOOL_HANG: '1' }, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => first.on('exit', (_code, sig) => resolve(sig)));
    const runId = await ready;
    first.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const before = readFileSync(log, 'utf8').trim().split('\n').sort();
    expect(before).toEqual(['record 11', 'record 12', 'record 13', 'record 2', 'record 2', 'record 2']);

    const resumed = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [BIN, 'resume', runId, '--data', data, '--json'], { env: { ...env, TOOL_HANG: '0' }, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
      ),
    );
    expect(resumed.stderr).toBe('');
    expect(resumed.code, resumed.stdout.slice(0, 2000)).toBe(0);
    const doc = JSON.parse(resumed.stdout) as {
      status: string;
      result: { child_count: number; results: Record<string, string[]> };
      branches: { id: string; agent: string; status: string }[];
      metrics: { tools: Record<string, { calls: number; errors: number }> };
    };
    expect(doc.status).toBe('COMPLETED');
    expect(doc.branches.map((b) => [b.id, b.agent, b.status]).sort()).toEqual([
      ['root', 'A', 'COMPLETED'],
      ['root.0', 'A', 'COMPLETED'],
      ['root.1', 'A', 'COMPLETED'],
      ['root.2', 'A', 'COMPLETED'],
    ]);
    // Each copy ran one of the three calls, then its own; the parent resumed with their aggregate.
    expect(doc.result.child_count).toBe(3);
    expect(Object.values(doc.result.results).sort()).toEqual([
      ['{"done":"record 11"}', '{"done":"record 2"}'],
      ['{"done":"record 12"}', '{"done":"record 2"}'],
      ['{"done":"record 13"}', '{"done":"record 2"}'],
    ]);
    // After the resume: the checkpointed calls (11, 12, 13) did not run again; the three in flight
    // did (at least once each: a step delivered twice at once may run an interrupted call twice).
    const after = readFileSync(log, 'utf8').trim().split('\n').slice(before.length);
    expect(after.filter((line) => line !== 'record 2')).toEqual([]);
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(doc.metrics.tools).toEqual({ record: expect.objectContaining({ calls: 6, errors: 0 }) });
  } finally {
    await stub.close();
    await new Promise<void>((resolve) => signal.close(() => resolve()));
  }
}, 180_000);

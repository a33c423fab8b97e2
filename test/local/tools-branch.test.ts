/**
 * `parallel_tool_calls: branch`: a turn with three tool calls yields three copy branches that
 * each run one call and go on reasoning; `kill -9` while their tool loops run, then `resume`:
 * the calls whose results were checkpointed are not run again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { killDuringToolsThenResume, TOOL_MODULES } from '../support/killed-run';
import { startOpenAiStub } from '../support/model-stubs';

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
  try {
    const agent = {
      kind: 'openai',
      baseUrl: stub.url,
      model: 'stub-model',
      toolCalling: 'on',
      parallel_tool_calls: 'branch',
      tools: [{ kind: 'module', module: TOOL_MODULES, export: 'record' }],
    };
    const { killedBy, resumed, before, after } = await killDuringToolsThenResume({
      dir,
      scenario: { name: 'branched-tool-calls', request: 'go', entry: 'A', agents: { A: agent } },
      hangs: 3,
    });
    expect(killedBy).toBe('SIGKILL');
    expect(before.sort()).toEqual(['record 11', 'record 12', 'record 13', 'record 2', 'record 2', 'record 2']);
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
    expect(after.filter((line) => line !== 'record 2')).toEqual([]);
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(doc.metrics.tools).toEqual({ record: expect.objectContaining({ calls: 6, errors: 0 }) });
  } finally {
    await stub.close();
  }
}, 180_000);

/**
 * Values of any size through `branch-spawner run` (the claim check): an aggregate, a memory and a
 * run result past DynamoDB's 400 KB item limit. Before the blob store, the fan-in below failed its
 * parent with "the branch state would be too large to store ... items are limited to 400 KB".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-large-values-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One agent-decided fan-out of `children` script children, each answering a `bytes`-long text; default aggregator. */
function wideScenario(children: number, bytes: number): string {
  const file = join(dir, `wide-${children}x${bytes}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: 'large-aggregate',
      request: 'go',
      entry: 'Fanner',
      limits: { maxFanOut: children, maxConcurrentBranches: 50, maxBranches: children + 1 },
      agents: {
        Fanner: {
          kind: 'script',
          allowed: ['Worker'],
          rules: [{ when: 'child_count', responses: [{ next_action: 'final_response', content: '$input' }] }],
          responses: [{ next_action: 'parallel_invoke', agents: Array(children).fill('Worker') }],
        },
        Worker: { kind: 'script', responses: [{ next_action: 'final_response', content: { v: 1, text: 'x'.repeat(bytes) } }] },
      },
    }),
  );
  return file;
}

async function runJson(args: string[]) {
  const io = captureIo();
  const code = await main(['run', ...args, '--json'], io);
  return { code, doc: JSON.parse(io.outText()), err: io.errText() };
}

describe('values past 400 KB', () => {
  // 300 children × 2 KB: a 620 KB aggregate, past the 400 KB item limit (the 10,000-child runs are measured in docs/performance.md).
  for (const tier of ['memory', 'journal'] as const) {
    it(`a fan-in whose aggregate passes 400 KB completes, every child's result reachable (${tier} tier)`, async () => {
      const args = [wideScenario(300, 2_000), ...(tier === 'journal' ? ['--data', join(dir, `data-${tier}`)] : [])];
      const { code, doc, err } = await runJson(args);
      expect(doc.error ?? null, err).toBeNull();
      expect(code).toBe(0);
      expect(doc.status).toBe('COMPLETED');
      expect(doc.result.child_count).toBe(300);
      const children = doc.branches.filter((b: { parentId: string | null }) => b.parentId === 'root');
      expect(children).toHaveLength(300);
      for (const child of children) expect(child.result).toEqual({ v: 1, text: 'x'.repeat(2_000) });
    });
  }

  it('a conversation whose memory passes 400 KB carries on to its end', async () => {
    const file = join(dir, 'conversation.json');
    const page = (who: string) => `${who}: ${'y'.repeat(60_000)}`;
    // Two agents hand the branch back and forth, each turn adding 120 KB to its memory (~720 KB at the end).
    writeFileSync(
      file,
      JSON.stringify({
        name: 'long-conversation',
        request: 'talk',
        entry: 'Alice',
        agents: {
          Alice: {
            kind: 'script',
            allowed: ['Bob'],
            responses: [...Array(3).fill({ next_action: 'invoke_agent', agent: 'Bob', input: page('Alice') }), { next_action: 'final_response', content: 'done talking' }],
          },
          Bob: { kind: 'script', allowed: ['Alice'], responses: [{ next_action: 'invoke_agent', agent: 'Alice', input: page('Bob') }] },
        },
      }),
    );
    const { code, doc, err } = await runJson([file]);
    expect(doc.error ?? null, err).toBeNull();
    expect(code).toBe(0);
    expect(doc.result).toBe('done talking');
    expect(doc.branches).toHaveLength(1);
    expect(doc.branches[0].agent).toBe('Alice');
  });
});

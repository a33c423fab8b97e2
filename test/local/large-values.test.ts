/**
 * Values of any size through `branch-spawner run` (the claim check): an aggregate, a memory and a
 * run result past DynamoDB's 400 KB item limit. Before the blob store, the fan-in below failed its
 * parent with "the branch state would be too large to store ... items are limited to 400 KB".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_INLINE_REQUEST_BYTES } from '../../core/agent-request';
import { main } from '../../local/cli';
// The agent builders' reader of values passed by reference (docs/agents.md), as the rehearsal's lambda agent runs it.
import { handler as readerAgent } from '../support/large-reader-agent.mjs';
import { captureIo } from '../support/io';
import { wideAggregateScenario, type WideAggregateOptions } from '../support/wide-aggregate';

const dir = mkdtempSync(join(tmpdir(), 'bs-large-values-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The shared wide-aggregate scenario (test/support/wide-aggregate.ts), as a file for `run`. */
function wideScenario(children: number, bytes: number, options: WideAggregateOptions = {}): string {
  const file = join(dir, `wide-${children}x${bytes}-${options.handOffTo ?? 'final'}.json`);
  writeFileSync(file, JSON.stringify(wideAggregateScenario(children, bytes, options)));
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

  it('an http agent handed a 620 KB aggregate gets a request within 256 KB and reads the values by their URLs', async () => {
    const received: number[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        received.push(body.length);
        readerAgent(JSON.parse(body.toString('utf8'))).then(
          (answer: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
          (error: Error) => res.writeHead(500).end(error.message),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/agent`;
      const file = wideScenario(300, 2_000, { handOffTo: 'Reader', agents: { Reader: { kind: 'http', url, retries: 0 } } });
      const { code, doc, err } = await runJson([file]);
      expect(doc.error ?? null, err).toBeNull();
      expect(code).toBe(0);
      expect(received).toHaveLength(1);
      expect(received[0]).toBeLessThanOrEqual(AGENT_INLINE_REQUEST_BYTES);
      expect(doc.result.byReference).toContain('input');
      expect(doc.result).toMatchObject({ childCount: 300, resultsRead: 300, textBytes: 300 * 2_000 });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

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

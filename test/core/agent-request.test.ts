/**
 * The request of an http or lambda agent (core/agent-request.ts): whole while small; past the
 * threshold, its largest values by reference, largest first, until it fits.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../adapters/blobs/memory-blob-store';
import { AGENT_INLINE_REQUEST_BYTES, agentRequestBody, type AgentRequest, type ValueReference } from '../../core/agent-request';
import { PayloadTooLargeError } from '../../core/errors';
import type { AgentInvocation } from '../../core/ports';
import { LocalValueLinks } from '../../local/value-links';

const links = new LocalValueLinks(new MemoryBlobStore());
afterAll(() => links.close());

function call(input: unknown, contents: unknown[] = []): AgentInvocation {
  return {
    team: 't',
    runId: 'r',
    agentName: 'Reader',
    definition: { kind: 'http', url: 'http://127.0.0.1:9/reader' },
    branchId: 'root',
    step: 3,
    input,
    memory: contents.map((content, i) => ({ role: i % 2 ? 'assistant' : 'user', agent: 'Reader', content })),
    allowed: [],
  };
}

async function read(ref: ValueReference): Promise<unknown> {
  return (await fetch(ref.$ref)).json();
}

describe('agentRequestBody', () => {
  it('a request within the threshold is sent whole, as it always was', async () => {
    const small = call({ q: 'x'.repeat(1000) }, ['hello', { a: 1 }]);
    const body = await agentRequestBody(small, links);
    expect(JSON.parse(body)).toEqual({ agent: 'Reader', input: { q: 'x'.repeat(1000) }, memory: small.memory, allowed: [], branchId: 'root', runId: 'r', team: 't', step: 3 });
  });

  it('past it, the largest values go by reference until it fits; each reference reads back the whole value', async () => {
    const aggregate = { child_count: 400, results: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`root.${i}`, { text: 'y'.repeat(2_000) }])) };
    const request = call(aggregate, ['go', { next_action: 'parallel_invoke' }, aggregate, 'z'.repeat(200_000)]);
    const body = await agentRequestBody(request, links);
    expect(new TextEncoder().encode(body).length).toBeLessThanOrEqual(AGENT_INLINE_REQUEST_BYTES);
    const sent = JSON.parse(body) as AgentRequest;
    // The two 800 KB values are references; the 200 KB one fits beside them and stays inline.
    expect(sent.byReference).toEqual(['input', 'memory.2.content']);
    expect(sent.memory[3].content).toBe('z'.repeat(200_000));
    expect(sent.memory[0].content).toBe('go');
    const ref = sent.input as ValueReference;
    expect(ref.bytes).toBe(JSON.stringify(aggregate).length);
    expect(Date.parse(ref.expiresAt)).toBeGreaterThan(Date.now());
    // The preview keeps the small members whole.
    expect(ref.preview).toMatchObject({ child_count: 400 });
    expect(await read(ref)).toEqual(aggregate);
    expect(await read(sent.memory[2].content as ValueReference)).toEqual(aggregate);
  });

  it('a value of its own that looks like a reference is not listed as one', async () => {
    const lookalike = { $ref: 'https://example.com/x', bytes: 1, expiresAt: 'never', preview: null };
    const sent = JSON.parse(await agentRequestBody(call(lookalike, ['w'.repeat(300_000)]), links)) as AgentRequest;
    expect(sent.byReference).toEqual(['memory.0.content']);
    expect(sent.input).toEqual(lookalike);
  });

  it('without links every value goes inline; a request that cannot fit even with references fails naming the memory', async () => {
    const big = call('v'.repeat(300_000));
    expect(await agentRequestBody(big, undefined)).toContain('v'.repeat(300_000));
    // 400 entries of 900 bytes: none is worth a reference, together they are past 256 KB.
    const chatty = call('q', Array.from({ length: 400 }, () => 'm'.repeat(900)));
    const error = await agentRequestBody(chatty, links).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as PayloadTooLargeError).field).toBe('memory');
    expect((error as Error).message).toMatch(/^the request to agent Reader is \d+ bytes with its large values passed by reference, over 262144/);
  });
});

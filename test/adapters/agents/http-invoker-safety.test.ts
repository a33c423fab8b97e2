import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpInvoker, redactUrl } from '../../../adapters/agents/http-invoker';
import type { HttpAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';

const FINAL = JSON.stringify({ next_action: 'final_response', content: 'ok' });

function call(definition: Omit<HttpAgentDefinition, 'kind'>): AgentInvocation<HttpAgentDefinition> {
  return { team: 't', runId: 'r', agentName: 'A', definition: { kind: 'http', ...definition }, branchId: 'root', step: 0, input: 'hi', memory: [], allowed: [] };
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('http agents: body cap, redirects, redaction', () => {
  let main: { server: Server; url: string };
  let other: { server: Server; url: string };
  /** Bytes the streaming route managed to write before the client gave up. */
  let streamed = 0;
  const hits: string[] = [];

  beforeAll(async () => {
    other = await listen((req, res) => {
      hits.push(`other ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(FINAL);
    });
    main = await listen((req, res) => {
      hits.push(`main ${req.method} ${req.url}`);
      req.resume();
      const path = req.url!.split('?')[0];
      if (path === '/huge') {
        // 64 MiB in 64 KiB chunks, without a Content-Length; stops when the client hangs up.
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 'a');
        const write = () => {
          while (streamed < 64 * 1024 * 1024) {
            streamed += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        res.on('close', () => res.destroy());
        return write();
      }
      if (path === '/declared') return void res.writeHead(200, { 'content-length': String(50 * 1024 * 1024) }).end();
      if (path === '/hop') return void res.writeHead(307, { location: '/final' }).end();
      if (path === '/away') return void res.writeHead(302, { location: `${other.url}/steal` }).end();
      if (path === '/loop') return void res.writeHead(307, { location: '/loop' }).end();
      if (path === '/final') return void res.writeHead(200, { 'content-type': 'application/json' }).end(FINAL);
      if (path === '/echo-error') return void res.writeHead(400).end(`bad request for ${req.url}`);
      res.writeHead(500).end('boom');
    });
  });
  afterAll(() => {
    for (const s of [main.server, other.server]) {
      s.closeAllConnections();
      s.close();
    }
  });

  const http = new HttpInvoker({ backoffMs: 1 });

  it('fails a body over maxResponseBytes while it streams, without reading the rest', async () => {
    await expect(http.invoke(call({ url: `${main.url}/huge`, retries: 0, maxResponseBytes: 1024 * 1024 }))).rejects.toThrow(
      /the response of http:\/\/127\.0\.0\.1:\d+\/huge is over maxResponseBytes \(1048576 bytes\)/,
    );
    // The server was stopped well before its 64 MiB (socket buffers hold a few MiB at most).
    expect(streamed).toBeLessThan(32 * 1024 * 1024);
  });

  it('refuses a declared Content-Length over the cap before reading, with the default cap of 4 MiB', async () => {
    await expect(http.invoke(call({ url: `${main.url}/declared`, retries: 0 }))).rejects.toThrow(
      /over maxResponseBytes \(4194304 bytes\): Content-Length 52428800/,
    );
  });

  it('follows redirects within the origin, refuses one to another origin, and bounds the hops', async () => {
    expect((await http.invoke(call({ url: `${main.url}/hop`, retries: 0 }))).response).toEqual({ next_action: 'final_response', content: 'ok' });
    expect(hits).toContain('main POST /final');
    await expect(http.invoke(call({ url: `${main.url}/away`, retries: 0 }))).rejects.toThrow(
      /redirected to another origin \(http:\/\/127\.0\.0\.1:\d+\); http agents follow redirects only within/,
    );
    expect(hits.filter((h) => h.startsWith('other'))).toEqual([]);
    await expect(http.invoke(call({ url: `${main.url}/loop`, retries: 0 }))).rejects.toThrow(/more than 5 redirects/);
  });

  it('never shows credentials or the query string in an error', async () => {
    const secret = 'sk-live-123456789';
    const withSecret = (path: string, base = main.url) => base.replace('http://', 'http://user:hunter22@') + `${path}?api_key=${secret}`;
    const errors: string[] = [];
    for (const url of [withSecret('/fails'), withSecret('/echo-error'), withSecret('/x', 'http://127.0.0.1:1'), withSecret('/away')]) {
      try {
        await http.invoke(call({ url, retries: 1 }));
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
    expect(errors).toHaveLength(4);
    for (const message of errors) {
      expect(message).not.toContain(secret);
      expect(message).not.toContain('hunter22');
      expect(message).not.toContain('api_key');
    }
    expect(errors[0]).toMatch(/^HTTP 500 from http:\/\/\*\*\*@127\.0\.0\.1:\d+\/fails\?…: boom \(after 2 attempts\)$/);
    expect(errors[2]).toMatch(/^request to http:\/\/\*\*\*@127\.0\.0\.1:1\/x\?… failed/);
    expect(redactUrl('https://a:b@h.example/p?k=v#f')).toBe('https://***@h.example/p?…');
  });
});

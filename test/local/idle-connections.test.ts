/**
 * The servers users' clients talk to keep an idle connection open longer than they tell the client
 * (`Keep-Alive: timeout=N`). A client drops an idle connection by that time by its own timers; on a
 * busy machine those timers run late, and a client may send its next request on a connection the
 * server has just closed: the request is reset (`fetch failed`, `read ECONNRESET`), though the
 * client did nothing wrong.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../local/dev-server';
import { startRemoteDevServer, type RemoteDevServer } from '../../local/dev/remote-dev-server';
import type { AwsEndpoint } from '../../local/rehearsal/aws-endpoint';
import { startS3Endpoint } from '../support/s3-endpoint';

let dev: DevServer;
let remote: RemoteDevServer;
let endpoint: AwsEndpoint;
beforeAll(async () => {
  endpoint = await startS3Endpoint();
  dev = await startDevServer({ port: 0 });
  // Its target is never called: the examples are served from the folder.
  remote = await startRemoteDevServer({ target: { api: 'http://127.0.0.1:9/', region: 'us-east-1' }, examplesDir: join(import.meta.dirname, '..', '..', 'examples') });
}, 120_000);
afterAll(async () => {
  await Promise.all([dev?.close(), remote?.close(), endpoint?.close()]);
});

/** One keep-alive connection, its answers read as they come (the head of each, up to the blank line). */
class Client {
  readonly socket: Socket;
  private received = '';
  private waiting: (() => void) | undefined;
  private ended: string | undefined;
  constructor(readonly port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => ((this.received += chunk), this.waiting?.()));
    this.socket.on('error', (error: NodeJS.ErrnoException) => ((this.ended = `error ${error.code}`), this.waiting?.()));
    this.socket.on('close', () => ((this.ended ??= 'closed by the server'), this.waiting?.()));
  }
  send(path: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\nConnection: keep-alive\r\n\r\n`);
  }
  /** The next answer's status line and headers, or how the connection ended without one. */
  async answer(): Promise<string> {
    for (;;) {
      const head = /^HTTP\/1\.1 [^]*?\r\n\r\n/.exec(this.received);
      if (head) {
        const length = Number(/content-length: (\d+)/i.exec(head[0])?.[1] ?? 0);
        if (Buffer.byteLength(this.received) >= Buffer.byteLength(head[0]) + length) {
          this.received = Buffer.from(this.received).subarray(Buffer.byteLength(head[0]) + length).toString();
          return head[0];
        }
      }
      if (this.ended) return this.ended;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

describe('an idle keep-alive connection', () => {
  it("is still open when a client whose timers ran late reuses it a little after the time the server advertised (dev, dev --remote, the rehearsal's AWS endpoint)", async () => {
    const object = '/bucket/k?X-Amz-Credential=WORKERKEY%2F20260101%2Fus-east-1%2Fs3%2Faws4_request';
    const servers = [
      { port: dev.port, path: '/examples' },
      { port: remote.port, path: '/examples' },
      { port: Number(new URL(endpoint.url).port), path: object },
    ];
    const clients = servers.map(({ port }) => new Client(port));
    const advertised: number[] = [];
    for (const [i, client] of clients.entries()) {
      client.send(servers[i].path);
      const head = await client.answer();
      expect(head).toMatch(/^HTTP\/1\.1 200/);
      advertised.push(Number(/keep-alive: timeout=(\d+)/i.exec(head)?.[1]) * 1000);
    }
    expect(advertised.every((ms) => ms > 0), `Keep-Alive advertised: ${advertised}`).toBe(true);

    // The process stalls (as a starved one does) past the advertised time plus a client's usual
    // margin, then sends on the connection it still holds, before any timer of its own has run.
    // Atomics.wait blocks the thread without using the CPU.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(...advertised) + 1_500);
    for (const [i, client] of clients.entries()) client.send(servers[i].path);

    const answers = await Promise.all(clients.map((client) => client.answer()));
    for (const client of clients) client.socket.destroy();
    expect(answers.map((head) => head.split('\r\n')[0])).toEqual(servers.map(() => 'HTTP/1.1 200 OK'));
  }, 60_000);
});

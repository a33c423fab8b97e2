/**
 * Local runs' ValueLinks (core/agent-request.ts): a large value for an `http` agent is stored in
 * the run's blob store and served at `http://127.0.0.1:<port>/values/<token>` — a random,
 * unguessable token per link that answers until it expires, as an S3 presigned GET does in AWS.
 * The server starts at the first link (most runs never need one) and closes with the runtime.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Scope } from '../core/model';
import type { BlobStore, ValueLinks } from '../core/ports';

/** How long a local link answers: well past the longest agent call (270 s). */
export const LOCAL_LINK_SECONDS = 3600;

interface Link {
  scope: Scope;
  ref: string;
  expiresAt: number;
}

export class LocalValueLinks implements ValueLinks {
  private readonly links = new Map<string, Link>();
  private server: Promise<{ server: Server; base: string }> | undefined;

  constructor(
    private readonly blobs: BlobStore,
    private readonly options: { linkSeconds?: number; now?: () => number } = {},
  ) {}

  async link(scope: Scope, content: string): Promise<{ url: string; expiresAt: string }> {
    const ref = await this.blobs.put(scope, content);
    const now = this.now();
    this.forgetExpired(now);
    const expiresAt = now + (this.options.linkSeconds ?? LOCAL_LINK_SECONDS) * 1000;
    const token = randomBytes(24).toString('base64url');
    this.links.set(token, { scope: { team: scope.team, runId: scope.runId }, ref, expiresAt });
    const { base } = await this.start();
    return { url: `${base}/values/${token}`, expiresAt: new Date(expiresAt).toISOString() };
  }

  async close(): Promise<void> {
    const started = this.server;
    this.server = undefined;
    this.links.clear();
    if (!started) return;
    const { server } = await started;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private forgetExpired(now: number): void {
    for (const [token, link] of this.links) if (link.expiresAt <= now) this.links.delete(token);
  }

  private start(): Promise<{ server: Server; base: string }> {
    this.server ??= new Promise((resolve, reject) => {
      const server = createServer((req, res) => {
        const token = /^\/values\/([A-Za-z0-9_-]{32})$/.exec(new URL(req.url ?? '/', 'http://localhost').pathname)?.[1];
        const link = token ? this.links.get(token) : undefined;
        if (req.method !== 'GET' || !link || link.expiresAt <= this.now()) {
          res.writeHead(req.method !== 'GET' ? 405 : 404, { 'content-type': 'text/plain' }).end(link ? 'this link has expired\n' : 'no such value\n');
          return;
        }
        this.blobs.get(link.scope, link.ref).then(
          (content) => {
            res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(content) }).end(content);
          },
          (error: unknown) => {
            res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error)?.message ?? error}\n`);
          },
        );
      });
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
      // A run whose work is over does not stay up for its links.
      server.unref();
    });
    return this.server;
  }
}

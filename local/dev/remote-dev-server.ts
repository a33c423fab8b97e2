/**
 * `branch-spawner dev --api <url>`: the tree page served on 127.0.0.1, its API calls relayed to a
 * team's deployed API, signed here with the user's AWS credentials (or the token): the browser
 * never sees them. The page's live stream (`/events`) is fed by polling the API's events route
 * for the runs started from this page.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LifecycleEvent } from '../../core/events';
import type { RunEventsPage } from '../../core/use-cases/run-events';
import type { RunView } from '../../core/use-cases/queries';
import { errorResponse, json } from '../../functions/handlers/http-errors';
import { ApiClient, type RemoteTarget } from '../remote/api-client';
import { EventHub, type EventSource } from './event-hub';
import { loadExamples } from './examples';
import { holdIdleConnections } from '../keep-alive';
import { readBody, writeResult } from './gateway-shim';
import { createRequestGuard } from './request-guard';
import { pageRoutes, routeTable, type DevRouteResult } from './router';

/** The stream's team for the page: the events are the stack's own team's. */
const STACK = '*';

/** Polls the events route of each run of the session until its last event, as an event source for the hub. */
class RemoteEventFeed implements EventSource {
  private readonly listeners = new Set<(event: LifecycleEvent) => void>();
  private readonly cursors = new Map<string, string | undefined>();
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(
    private readonly client: ApiClient,
    pollMs: number,
    private readonly onError: (error: unknown) => void,
  ) {
    this.timer = setInterval(() => void this.poll(), pollMs);
  }

  watch(runId: string): void {
    if (!this.cursors.has(runId)) this.cursors.set(runId, undefined);
  }

  subscribe(listener: (event: LifecycleEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const [runId, cursor] of this.cursors) {
        const page = await this.client.call<RunEventsPage>('GET', `runs/${encodeURIComponent(runId)}/events`, { query: { after: cursor } });
        for (const event of page.events) for (const listener of this.listeners) listener({ ...event, team: STACK });
        if (page.done) this.cursors.delete(runId);
        else this.cursors.set(runId, page.cursor ?? undefined);
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy = false;
    }
  }
}

export interface RemoteDevServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startRemoteDevServer(options: {
  target: RemoteTarget;
  port?: number;
  examplesDir: string;
  pollMs?: number;
  onError?: (error: unknown) => void;
}): Promise<RemoteDevServer> {
  const client = ApiClient.connect(options.target);
  const examples = loadExamples(options.examplesDir);
  const sessionRuns: string[] = [];
  const feed = new RemoteEventFeed(client, options.pollMs ?? 1000, options.onError ?? (() => {}));
  const hub = new EventHub(feed);

  /** Relays the request to the API, signed here; the answer goes back as the API gave it. */
  async function relay(req: IncomingMessage, url: URL): Promise<DevRouteResult> {
    const target = new URL(url.pathname.replace(/^\//, '') + url.search, client.baseUrl);
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const name of ['content-type', 'idempotency-key']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const answer = await client.send(req.method ?? 'GET', target, body || undefined, headers);
    return { statusCode: answer.status, headers: { 'content-type': answer.headers.get('content-type') ?? 'application/json' }, body: answer.text };
  }

  const route = routeTable([
    ...pageRoutes({ examples, examplesDir: options.examplesDir }),
    {
      method: 'GET',
      pattern: /^\/runs\/?$/,
      handle: async () => {
        const runs = await Promise.all(
          [...sessionRuns].reverse().map(async (runId) => {
            const view = await client.call<RunView>('GET', `runs/${encodeURIComponent(runId)}`);
            return { runId, name: view.name, status: view.status, createdAt: view.createdAt, endedAt: view.endedAt };
          }),
        );
        return json(200, { runs });
      },
    },
    {
      method: 'POST',
      pattern: /^\/runs\/?$/,
      handle: async ({ req, url }) => {
        const answer = await relay(req, url);
        if (answer && answer !== 'handled' && answer.statusCode === 202) {
          const { runId } = JSON.parse(answer.body) as { runId: string };
          if (!sessionRuns.includes(runId)) sessionRuns.push(runId);
          feed.watch(runId);
        }
        return answer;
      },
    },
    {
      method: 'GET',
      pattern: /^\/events$/,
      handle: ({ req, res }) => {
        hub.open(req, res, STACK);
        return 'handled';
      },
    },
  ]);

  let guard: ReturnType<typeof createRequestGuard> = () => {};
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let result: DevRouteResult;
    try {
      guard(req, url.pathname);
      result = await route({ req, res, url, team: STACK });
      if (result === 'handled') return;
      if (!result) result = url.pathname.startsWith('/runs/') ? await relay(req, url) : json(404, { error: 'NotFoundError', message: `no route for ${url.pathname}` });
    } catch (error) {
      result = errorResponse(error);
    }
    if (result && result !== 'handled') writeResult(res, result);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      options.onError?.(error);
      if (!res.headersSent) writeResult(res, errorResponse(error));
      else res.end();
    });
  });
  holdIdleConnections(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  guard = createRequestGuard({ port, extraBodyTypes: { '/scenarios/parse': ['application/yaml', 'text/yaml'] } });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      feed.close();
      hub.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * The dev server's server-sent events hub: every lifecycle event on the bus goes to the open
 * streams of its team (and run, when the stream is for one run); a comment every 15 s keeps
 * proxies from closing idle streams.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LifecycleEvent } from '../../core/events';

interface EventClient {
  res: ServerResponse;
  team: string;
  runId?: string;
}

export interface EventSource {
  subscribe(listener: (event: LifecycleEvent) => void): () => void;
}

export class EventHub {
  private readonly clients = new Set<EventClient>();
  private eventId = 0;
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(bus: EventSource) {
    this.unsubscribe = bus.subscribe((event) => this.broadcast(event));
    this.heartbeat = setInterval(() => {
      for (const client of this.clients) client.res.write(': ping\n\n');
    }, 15_000);
    this.heartbeat.unref();
  }

  /** Turns the response into an event stream for `team` (and only `runId`'s events if given). */
  open(req: IncomingMessage, res: ServerResponse, team: string, runId?: string): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    // The browser reconnects after 1 s if the stream drops; the comment flushes the headers.
    res.write('retry: 1000\n: connected\n\n');
    const client: EventClient = { res, team, runId };
    this.clients.add(client);
    const drop = () => this.clients.delete(client);
    req.on('close', drop);
    res.on('close', drop);
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.heartbeat);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  private broadcast(event: LifecycleEvent): void {
    const frame = `id: ${++this.eventId}\nevent: lifecycle\ndata: ${JSON.stringify(event)}\n\n`;
    for (const client of this.clients) {
      if (client.team === event.team && (!client.runId || client.runId === event.runId)) client.res.write(frame);
    }
  }
}

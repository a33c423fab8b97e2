/**
 * How long the local HTTP servers keep an idle keep-alive connection. A server tells its clients
 * `Keep-Alive: timeout=N`, and a client drops an idle connection before then by its own timers
 * (fetch's undici at N − 2 s, Node's agent at N − 1 s). On a busy machine those timers run late: a
 * client may send its next request on a connection it still believes open just as the server
 * closes it, and the request is reset (`fetch failed`, `read ECONNRESET`) though nobody did
 * anything wrong. Node's default closes 1 s after the advertised time, which a starved process
 * overruns. Our servers close long after it instead: a connection outlives any client's use of it.
 */
import type { Server } from 'node:http';

/** The idle time advertised to clients (Node's default: clients let go of idle connections early). */
export const ADVERTISED_IDLE_MS = 5_000;
/** How much longer the server itself keeps the idle connection (a client whose timers ran a minute late is still safe). */
export const IDLE_GRACE_MS = 60_000;

export function holdIdleConnections<T extends Server>(server: T): T {
  server.keepAliveTimeout = ADVERTISED_IDLE_MS;
  // Node 22.19+ closes an idle connection keepAliveTimeout + keepAliveTimeoutBuffer after its last answer.
  if (server.keepAliveTimeoutBuffer !== undefined) server.keepAliveTimeoutBuffer = IDLE_GRACE_MS;
  else server.keepAliveTimeout += IDLE_GRACE_MS; // earlier 22.x: no buffer, so advertise the longer time
  return server;
}

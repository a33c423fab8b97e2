/**
 * What keeps a web page the developer visits from driving `dev` (which runs any agent a request
 * defines, with the developer's environment): every request must name the address `dev` printed
 * as its Host (DNS rebinding gives another name), must not come from another Origin (a
 * cross-site fetch or form), and a body must be JSON (`text/plain` and form types are the ones a
 * page may send cross-site without asking first; JSON makes the browser ask, and `dev` never
 * answers yes). Checked before anything is read or routed.
 */
import type { IncomingMessage } from 'node:http';
import { ForeignRequestError, UnsupportedMediaTypeError } from '../../functions/handlers/http-errors';

export interface RequestGuardOptions {
  /** The port `dev` listens on (after listening: port 0 picks one). */
  port: number;
  /** Media types a path takes besides application/json (e.g. YAML text to parse). */
  extraBodyTypes?: Record<string, string[]>;
}

/** Throws ForeignRequestError (403) or UnsupportedMediaTypeError (415) for a request `dev` refuses. */
export function createRequestGuard(options: RequestGuardOptions): (req: IncomingMessage, path: string) => void {
  const hosts = [`127.0.0.1:${options.port}`, `localhost:${options.port}`];
  const origins = hosts.map((host) => `http://${host}`);
  return (req, path) => {
    const host = req.headers.host?.toLowerCase();
    if (!host || !hosts.includes(host)) {
      throw new ForeignRequestError(
        `Host ${host ? `"${host}"` : '(none)'} is not this server; dev answers only to ${hosts.join(' or ')}`,
        'Host',
      );
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.includes(origin.toLowerCase())) {
      throw new ForeignRequestError(`Origin "${origin}" may not call dev; only pages it serves (${origins.join(' or ')}) may`, 'Origin');
    }
    if (!hasBody(req)) return;
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const accepted = ['application/json', ...(options.extraBodyTypes?.[path] ?? [])];
    if (!accepted.includes(type)) {
      throw new UnsupportedMediaTypeError(`Content-Type ${type ? `"${type}"` : '(none)'} is not accepted; send ${accepted.join(' or ')}`);
    }
  };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

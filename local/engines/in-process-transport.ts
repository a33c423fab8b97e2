/**
 * An in-process transport for the AWS SDK clients of the embedded engines: requests go straight
 * to the engine's request handler in this process (no socket, no HTTP parsing, no SigV4 signing),
 * while everything above the transport (the SDK's serialization, the engine's validation and
 * storage) stays the same code that talks to AWS. The engines still listen on loopback for
 * anything outside the process (the dev server's tools, a second client): only our own clients
 * take the short way.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** The parts of a smithy HttpRequest the transport reads. */
interface SdkRequest {
  method: string;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}

export interface EngineRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface EngineResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: Buffer;
}

export type EngineDispatch = (request: EngineRequest) => Promise<EngineResponse>;

/** A `requestHandler` for an SDK client that hands each request to `dispatch`. */
export function inProcessRequestHandler(dispatch: EngineDispatch) {
  return {
    async handle(request: SdkRequest) {
      const query = Object.entries(request.query ?? {})
        .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => (x === null ? k : `${k}=${encodeURIComponent(x)}`)))
        .join('&');
      const response = await dispatch({
        method: request.method,
        url: query ? `${request.path}?${query}` : request.path,
        headers: lowerCased(request.headers),
        body: toBuffer(request.body),
      });
      return { response: { statusCode: response.statusCode, headers: response.headers, body: new Uint8Array(response.body) } };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs() {
      return {};
    },
    destroy() {},
  };
}

/**
 * Client config that skips SigV4 (the engines in this process check that a signature is there,
 * never what it says): a constant Authorization header with the region and service of the client.
 */
export function unsignedAuth(region: string, service: string) {
  const credential = `local/20000101/${region}/${service}/aws4_request`;
  const signer = {
    async sign<R extends { headers: Record<string, string> }>(request: R): Promise<R> {
      request.headers.authorization = `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=host, Signature=0`;
      request.headers['x-amz-date'] = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
      return request;
    },
  };
  const identity: { accessKeyId: string; secretAccessKey: string; expiration?: Date } = { accessKeyId: 'local', secretAccessKey: 'local' };
  return {
    credentials: identity,
    httpAuthSchemes: [{ schemeId: 'aws.auth#sigv4', identityProvider: () => async () => identity, signer }],
  };
}

/** Dispatch to a node `http.Server`'s request listener (dynalite) with stand-in req/res objects. */
export function serverDispatch(server: Server): EngineDispatch {
  const listener = server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
  return (request) =>
    new Promise((resolve, reject) => {
      const req = Object.assign(new EventEmitter(), { method: request.method, url: request.url, headers: request.headers });
      const headers: Record<string, string> = {};
      const res = {
        statusCode: 200,
        setHeader(name: string, value: unknown) {
          headers[name.toLowerCase()] = String(value);
        },
        end(body?: string | Buffer) {
          resolve({ statusCode: res.statusCode, headers, body: body === undefined ? Buffer.alloc(0) : Buffer.from(body) });
        },
      };
      try {
        listener(req as unknown as IncomingMessage, res as unknown as ServerResponse);
        if (request.body.length) req.emit('data', request.body);
        req.emit('end');
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
}

/** Dispatch through fastify's inject (fauxqs): the app's routing without a socket. */
export function injectDispatch(app: {
  inject(options: { method: string; url: string; headers: Record<string, string>; payload: Buffer }): Promise<{
    statusCode: number;
    headers: Record<string, unknown>;
    rawPayload: Buffer;
  }>;
}): EngineDispatch {
  return async (request) => {
    const response = await app.inject({ method: request.method, url: request.url, headers: request.headers, payload: request.body });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(response.headers)) if (v !== undefined) headers[k] = String(v);
    return { statusCode: response.statusCode, headers, body: response.rawPayload };
  };
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}

function toBuffer(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('in-process transport: streamed request bodies are not supported');
}

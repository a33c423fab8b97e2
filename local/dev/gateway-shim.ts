/**
 * The API Gateway side of `branch-spawner dev`: a Node HTTP request becomes the REST proxy event
 * API Gateway would send, and a proxy result is written back as the HTTP response.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PayloadTooLargeError } from '../../core/errors';
import { API_METHODS } from '../../functions/handlers/api';
import { matchResource, restProxyEvent } from '../rest-proxy-event';

/** API Gateway's own REST payload cap: beyond it the request never reaches the handler. */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** The Lambda context the dev server hands the api handler. */
export const lambdaContext = {
  functionName: 'branch-spawner-dev-api',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:branch-spawner-dev-api',
  memoryLimitInMB: '512',
  awsRequestId: 'dev',
  logGroupName: 'dev',
  logStreamName: 'dev',
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} as Context;

/** The deployed API's resource paths (a request reaches one as it would on API Gateway). */
const RESOURCES = [...new Set(API_METHODS.map((m) => m.slice(m.indexOf(' ') + 1)))];

/** dev serves the API at its root: no stage in the path the client calls. */
const DEV_STAGE = { accountId: '000000000000', apiId: 'dev', stage: 'dev', basePath: '' };

/**
 * The REST proxy event API Gateway would send for this request (rest-proxy-event.ts). A path that
 * reaches none of the API's resources (API Gateway would answer 403 itself) still goes to the
 * handler, which answers it 404 naming the path.
 */
export async function toProxyEvent(req: IncomingMessage, url: URL): Promise<APIGatewayProxyEvent> {
  const body = await readBody(req);
  const headers: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) if (values) headers[name] = values;
  const query: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) (query[name] ??= []).push(value);
  const request = {
    method: req.method ?? 'GET',
    path: url.pathname,
    headers,
    query,
    body,
    sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
    protocol: `HTTP/${req.httpVersion}`,
  };
  const match = matchResource(RESOURCES, url.pathname) ?? { resource: url.pathname, pathParameters: null };
  return restProxyEvent(request, DEV_STAGE, match);
}

/** Reads the whole body as UTF-8; past API Gateway's own cap it stops reading and refuses. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > GATEWAY_MAX_BODY_BYTES) {
        refused = true;
        chunks.length = 0;
        reject(new PayloadTooLargeError(`the body is over ${GATEWAY_MAX_BODY_BYTES} bytes`, size, GATEWAY_MAX_BODY_BYTES));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function writeResult(res: ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name] = values.map(String);
  const body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
  res.writeHead(result.statusCode, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

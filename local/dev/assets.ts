/** The tree page's files (local/web) and Mermaid from node_modules, as proxy results. */
import type { APIGatewayProxyResult } from 'aws-lambda';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../../core/errors';

const WEB_DIR = fileURLToPath(new URL('../web', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export function staticFile(name: string): APIGatewayProxyResult {
  // Only files that exist in local/web by that exact name: no path is ever joined from a request.
  if (!readdirSync(WEB_DIR).includes(name)) throw new NotFoundError(`no route for /${name}`);
  return fileResult(join(WEB_DIR, name), 'no-store');
}

/** Mermaid is a devDependency: resolved on request, so `run` never needs it installed. */
export function mermaidScript(): APIGatewayProxyResult {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');
  } catch {
    throw new NotFoundError('mermaid is not installed (npm install): the diagram is not available');
  }
  return fileResult(path, 'public, max-age=3600');
}

function fileResult(path: string, cacheControl: string): APIGatewayProxyResult {
  return {
    statusCode: 200,
    headers: { 'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream', 'cache-control': cacheControl },
    body: readFileSync(path).toString('base64'),
    isBase64Encoded: true,
  };
}

/**
 * The dev-only routes next to the HTTP API: the page and its assets, the examples, the scenario
 * parser and the event streams. Everything else (runs, branches, trees) is the API handler's.
 */
import type { APIGatewayProxyResult } from 'aws-lambda';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ValidationError } from '../../core/errors';
import type { SpawnerDeps } from '../../core/use-cases/deps';
import { json } from '../../functions/handlers/http-errors';
import { mermaidScript, staticFile } from './assets';
import type { EventHub } from './event-hub';
import { parseScenarioText, type ExampleView } from './examples';
import { readBody } from './gateway-shim';

export interface DevRouteContext {
  deps: Pick<SpawnerDeps, 'store'>;
  hub: EventHub;
  examples: ExampleView[];
  /** Where the examples are: an example's relative `module` paths resolve against it. */
  examplesDir: string;
}

export interface DevRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  team: string;
}

/** What a dev route answers: a proxy result, 'handled' (it wrote the response), or not mine. */
export type DevRouteResult = APIGatewayProxyResult | 'handled' | undefined;

export type DevRoute = {
  method: string;
  pattern: RegExp;
  handle(request: DevRequest, params: string[]): DevRouteResult | Promise<DevRouteResult>;
};

const RUN_ID = '([A-Za-z0-9_-]{1,64})';

/** The folder of a named example (only the listed examples: never a path from the request). */
function exampleFolder(ctx: Pick<DevRouteContext, 'examples' | 'examplesDir'>, example: string | null): string | undefined {
  if (example === null) return undefined;
  if (!ctx.examples.some((e) => e.file === example)) {
    throw new ValidationError(`example ${JSON.stringify(example)} is not one of the examples (GET /examples lists them)`, 'example');
  }
  return ctx.examplesDir;
}

/** The page, its assets, the examples and the scenario parser: served alike by `dev` and `dev --api`. */
export function pageRoutes(ctx: Pick<DevRouteContext, 'examples' | 'examplesDir'>): DevRoute[] {
  return [
    { method: 'GET', pattern: /^\/(?:index\.html)?$/, handle: () => staticFile('index.html') },
    { method: 'GET', pattern: /^\/vendor\/mermaid\.min\.js$/, handle: () => mermaidScript() },
    { method: 'GET', pattern: /^\/([a-z0-9-]+\.(?:js|css|svg|png))$/, handle: (_r, [name]) => staticFile(name) },
    { method: 'GET', pattern: /^\/examples$/, handle: () => json(200, { examples: ctx.examples }) },
    {
      method: 'POST',
      pattern: /^\/scenarios\/parse$/,
      // `?example=<file>`: the text is (an edit of) that example; its module paths are relative to it.
      handle: async ({ req, url }) => parseScenarioText(await readBody(req), exampleFolder(ctx, url.searchParams.get('example'))),
    },
  ];
}

export function devRoutes(ctx: DevRouteContext): (request: DevRequest) => Promise<DevRouteResult> {
  return routeTable([
    ...pageRoutes(ctx),
    {
      method: 'GET',
      pattern: /^\/events$/,
      handle: ({ req, res, url, team }) => {
        ctx.hub.open(req, res, team, url.searchParams.get('runId') ?? undefined);
        return 'handled';
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/events/?$`),
      // A stream for an EventSource; any other caller gets the API's JSON page of events (after a cursor).
      handle: ({ req, res, team }, [runId]) => {
        if (!String(req.headers.accept ?? '').includes('text/event-stream')) return undefined;
        ctx.hub.open(req, res, team, runId);
        return 'handled';
      },
    },
  ]);
}

/** The first route of `table` that takes the request. */
export function routeTable(table: DevRoute[]): (request: DevRequest) => Promise<DevRouteResult> {
  return async (request) => {
    const method = request.req.method ?? 'GET';
    for (const route of table) {
      const m = route.method === method ? route.pattern.exec(request.url.pathname) : null;
      if (m) return route.handle(request, m.slice(1));
    }
    return undefined;
  };
}

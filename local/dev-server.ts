/**
 * `branch-spawner dev`: the embedded runtime behind a loopback HTTP server. The HTTP API of
 * docs/openapi.yaml goes through the SAME API Gateway handler (`runtime.api`) fed REST proxy events;
 * next to it, dev-only routes serve the tree page, the examples, a branch's details and a
 * server-sent events stream of the lifecycle events (so the page updates live).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { AggregatorFn } from '../core/aggregators';
import { errorMessage, PayloadTooLargeError, ValidationError } from '../core/errors';
import type { LifecycleEvent } from '../core/events';
import type { BranchRecord, Scope } from '../core/model';
import { parseAgentResponse } from '../core/protocol';
import { branchView } from '../core/use-cases/queries';
import { errorResponse, json } from '../functions/handlers/http-errors';
import { LocalRuntime, type LocalRuntimeOptions } from './runtime';
import { loadScenarioFile } from './scenario-file';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB_DIR = join(ROOT, 'local', 'web');
const EXAMPLES_DIR = join(ROOT, 'examples');

/** API Gateway's own REST payload cap: beyond it the request never reaches the handler. */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export interface DevServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** An already started runtime to serve (kept open by close()); one is started otherwise. */
  runtime?: LocalRuntime;
  runtimeOptions?: LocalRuntimeOptions;
  examplesDir?: string;
}

export interface DevServer {
  url: string;
  port: number;
  runtime: LocalRuntime;
  close(): Promise<void>;
}

export interface ExampleView {
  file: string;
  name: string;
  description: string;
  /** The file as written (the page shows it for editing). */
  text: string;
  document: unknown;
}

interface EventClient {
  res: ServerResponse;
  team: string;
  runId?: string;
}

const lambdaContext = {
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

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ValidationError(`--port must be an integer from 0 to 65535 (got ${port})`, 'port');
  }
  const examplesDir = options.examplesDir ?? EXAMPLES_DIR;
  const examples = loadExamples(examplesDir);
  const ownRuntime = !options.runtime;
  const runtime =
    options.runtime ??
    (await LocalRuntime.start({
      ...options.runtimeOptions,
      // The examples' registered aggregators (e.g. `median`), so every example runs from the page.
      aggregators: { ...(await exampleAggregators(examplesDir)), ...options.runtimeOptions?.aggregators },
    }));

  // Runs started during this session, oldest first (the page lists them).
  const sessionRuns = new Map<string, Scope>();
  const clients = new Set<EventClient>();
  let eventId = 0;
  const unsubscribe = runtime.bus.subscribe((event: LifecycleEvent) => {
    if (event.type === 'RunStarted') sessionRuns.set(`${event.team}/${event.runId}`, { team: event.team, runId: event.runId });
    const frame = `id: ${++eventId}\nevent: lifecycle\ndata: ${JSON.stringify(event)}\n\n`;
    for (const client of clients) {
      if (client.team === event.team && (!client.runId || client.runId === event.runId)) client.res.write(frame);
    }
  });
  const heartbeat = setInterval(() => {
    for (const client of clients) client.res.write(': ping\n\n');
  }, 15_000);
  heartbeat.unref();

  const teamOf = (req: IncomingMessage, url: URL) =>
    url.searchParams.get('team') ?? headerValue(req, 'x-team') ?? runtime.team;

  function openEventStream(req: IncomingMessage, res: ServerResponse, url: URL, runId?: string) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    // The browser reconnects after 1 s if the stream drops; the comment flushes the headers.
    res.write('retry: 1000\n: connected\n\n');
    const client: EventClient = { res, team: teamOf(req, url), runId: runId ?? url.searchParams.get('runId') ?? undefined };
    clients.add(client);
    const drop = () => clients.delete(client);
    req.on('close', drop);
    res.on('close', drop);
  }

  async function devRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<APIGatewayProxyResult | 'handled' | undefined> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/' || path === '/index.html')) return staticFile('index.html');
    if (method === 'GET' && path === '/vendor/mermaid.min.js') return mermaidScript();
    if (method === 'GET' && /^\/[a-z0-9-]+\.(js|css|svg|png)$/.test(path)) return staticFile(path.slice(1));
    if (method === 'GET' && path === '/examples') return json(200, { examples });
    if (method === 'GET' && /^\/runs\/?$/.test(path)) return json(200, { runs: await listSessionRuns(runtime, sessionRuns, teamOf(req, url)) });
    if (method === 'POST' && path === '/scenarios/parse') return parseScenarioText(await readBody(req));
    if (method === 'GET' && path === '/events') {
      openEventStream(req, res, url);
      return 'handled';
    }
    let m = /^\/runs\/([A-Za-z0-9_-]{1,64})\/events\/?$/.exec(path);
    if (method === 'GET' && m) {
      openEventStream(req, res, url, m[1]);
      return 'handled';
    }
    m = /^\/runs\/([A-Za-z0-9_-]{1,64})\/agents\/?$/.exec(path);
    if (method === 'GET' && m) {
      const branches = await runtime.deps.store.listBranches({ team: teamOf(req, url), runId: m[1] });
      return json(200, { runId: m[1], agents: Object.fromEntries(branches.map((b) => [b.id, agentChain(b)])) });
    }
    m = /^\/runs\/([A-Za-z0-9_-]{1,64})\/branches\/([A-Za-z0-9._-]{1,512})\/?$/.exec(path);
    if (method === 'GET' && m) {
      const detail = await branchDetail(runtime, { team: teamOf(req, url), runId: m[1] }, m[2]);
      return detail ? json(200, detail) : json(404, { error: 'NotFoundError', message: `branch ${m[2]} of run ${m[1]} not found` });
    }
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let result: APIGatewayProxyResult | 'handled' | undefined;
    try {
      result = await devRoute(req, res, url);
      if (result === 'handled') return;
      if (!result) result = await runtime.api(await toProxyEvent(req, url), lambdaContext);
    } catch (error) {
      result = errorResponse(error);
    }
    writeResult(res, result);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      runtime.errors.push(error);
      if (!res.headersSent) writeResult(res, errorResponse(error));
      else res.end();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    unsubscribe();
    clearInterval(heartbeat);
    if (ownRuntime) await runtime.close();
    throw error;
  }
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    runtime,
    close() {
      closing ??= (async () => {
        unsubscribe();
        clearInterval(heartbeat);
        for (const client of clients) client.res.end();
        clients.clear();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        if (ownRuntime) await runtime.close();
      })();
      return closing;
    },
  };
}

/** The REST proxy event API Gateway would send for this request. */
export async function toProxyEvent(req: IncomingMessage, url: URL): Promise<APIGatewayProxyEvent> {
  const body = await readBody(req);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    headers[name] = values.join(',');
    multiValueHeaders[name] = values;
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    (multiQuery[name] ??= []).push(value);
  }
  const hasQuery = Object.keys(query).length > 0;
  const method = req.method ?? 'GET';
  return {
    httpMethod: method,
    path: url.pathname,
    resource: '/{proxy+}',
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: { proxy: url.pathname.slice(1) },
    stageVariables: null,
    body: body.length ? body : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'dev',
      httpMethod: method,
      path: url.pathname,
      protocol: `HTTP/${req.httpVersion}`,
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'dev',
      resourcePath: '/{proxy+}',
      stage: 'dev',
      authorizer: null,
      identity: { sourceIp: req.socket.remoteAddress ?? '127.0.0.1', userAgent: headers['user-agent'] ?? null },
    } as unknown as APIGatewayProxyEvent['requestContext'],
  };
}

/** Reads the whole body as UTF-8; past API Gateway's own cap it stops reading and refuses. */
function readBody(req: IncomingMessage): Promise<string> {
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

function writeResult(res: ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name] = values.map(String);
  const body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
  res.writeHead(result.statusCode, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function staticFile(name: string): APIGatewayProxyResult {
  // Only files that exist in local/web by that exact name: no path is ever joined from a request.
  if (!readdirSync(WEB_DIR).includes(name)) return json(404, { error: 'NotFound', message: `no route for /${name}` });
  return fileResult(join(WEB_DIR, name), 'no-store');
}

/** Mermaid is a devDependency: resolved on request, so `run` never needs it installed. */
function mermaidScript(): APIGatewayProxyResult {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');
  } catch {
    return json(404, { error: 'NotFound', message: 'mermaid is not installed (npm install): the diagram is not available' });
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

/** YAML (or JSON, which is YAML) pasted on the page becomes the JSON document POST /runs takes. */
function parseScenarioText(text: string): APIGatewayProxyResult {
  if (!text.trim()) throw new ValidationError('the scenario is empty', '(root)');
  try {
    return json(200, { document: parseYaml(text, { prettyErrors: true }) });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ValidationError(`the scenario is not valid YAML or JSON${where}: ${errorMessage(error).split('\n')[0]}`, '(root)');
  }
}

function loadExamples(dir: string): ExampleView[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  } catch {
    return [];
  }
  const examples: ExampleView[] = [];
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    try {
      const document = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      const description = text
        .split('\n')
        .filter((line, i, all) => line.startsWith('#') && all.slice(0, i).every((l) => l.startsWith('#')))
        .map((line) => line.replace(/^#\s?/, ''))
        .join(' ');
      examples.push({ file, name: String(document?.name ?? file), description, text, document });
    } catch {
      // A broken example is left out of the list; `branch-spawner run` reports it properly.
    }
  }
  return examples;
}

async function exampleAggregators(dir: string): Promise<Record<string, AggregatorFn>> {
  const all: Record<string, AggregatorFn> = {};
  for (const example of loadExamples(dir)) {
    if (!(example.document as { aggregators?: unknown })?.aggregators) continue;
    try {
      Object.assign(all, (await loadScenarioFile(join(dir, example.file))).aggregators);
    } catch {
      // An example whose module does not load just cannot use its aggregator here.
    }
  }
  return all;
}

async function listSessionRuns(runtime: LocalRuntime, runs: Map<string, Scope>, team: string) {
  const mine = [...runs.values()].filter((s) => s.team === team).reverse();
  const records = await Promise.all(mine.map((scope) => runtime.deps.store.getRun(scope)));
  return records
    .filter((r) => r !== undefined)
    .map((r) => ({ runId: r.runId, name: r.name, status: r.status, createdAt: r.createdAt, endedAt: r.endedAt ?? null }));
}

/** A branch for the page's detail panel: its sync points, its steps and what it was resumed with. */
export async function branchDetail(runtime: LocalRuntime, scope: Scope, branchId: string) {
  const branch = await runtime.deps.store.getBranch(scope, branchId);
  if (!branch) return undefined;
  const children = await runtime.deps.store.listChildren(scope, branchId);
  const seqs = [...new Set([...children.map((c) => c.parentSeq ?? 0), ...(branch.spawn ? [branch.spawn.seq] : [])])].sort((a, b) => a - b);
  const syncPoints = await Promise.all(
    seqs.map(async (seq) => {
      const sp = await runtime.deps.store.getSyncPoint(scope, branchId, seq);
      const spawn = branch.spawn?.seq === seq ? branch.spawn : undefined;
      return {
        seq,
        children: children.filter((c) => c.parentSeq === seq).map((c) => ({ id: c.id, agent: c.agent, status: c.status })),
        counters: sp?.counters ?? null,
        waitFor: sp?.waitFor ?? spawn?.waitFor ?? null,
        maxFailedFraction: sp?.maxFailedFraction ?? null,
        aggregator: spawn?.aggregator ?? null,
        aggregatedAt: sp?.aggregatedAt ?? null,
        outcome: sp?.outcome ?? null,
      };
    }),
  );
  const steps = stepsOf(branch);
  const resumes = steps.filter((s) => s.resumedAfterSync);
  return {
    branch: {
      ...branchView(branch),
      entryAgent: branch.entryAgent,
      ...(branch.peers ? { peers: branch.peers } : {}),
      ...(branch.maxTurns !== undefined ? { maxTurns: branch.maxTurns } : {}),
      usage: branch.usage ?? null,
    },
    syncPoints,
    // What the agent was resumed with after its last sync point: the aggregated result.
    aggregate: resumes.length ? resumes[resumes.length - 1].input : null,
    steps,
  };
}

/** The agents a branch ran, in order: its entry agent, then each hand-off. */
export function agentChain(branch: BranchRecord): string[] {
  const chain = [branch.entryAgent];
  for (const entry of branch.memory) {
    if (!entry.inherited && entry.role === 'user' && entry.agent !== chain[chain.length - 1]) chain.push(entry.agent);
  }
  if (branch.agent !== chain[chain.length - 1]) chain.push(branch.agent);
  return chain;
}

function stepsOf(branch: BranchRecord) {
  const own = branch.memory.filter((m) => !m.inherited);
  const steps: { step: number; agent: string; input: unknown; response: unknown; decision: string; resumedAfterSync: boolean }[] = [];
  let spawned = false;
  for (let i = 0; i + 1 < own.length; i += 2) {
    const input = own[i].content;
    const response = own[i + 1].content;
    let decision: string;
    try {
      decision = parseAgentResponse(response, { currentAgent: own[i].agent, currentInput: input }).kind;
    } catch {
      decision = 'invalid';
    }
    steps.push({ step: steps.length, agent: own[i].agent, input, response, decision, resumedAfterSync: spawned });
    spawned = decision === 'spawn';
  }
  return steps;
}

/** `branch-spawner dev`: prints the address, serves until SIGINT/SIGTERM (or `until`), then stops. */
export async function runDevCommand(options: {
  port?: string | number;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  until?: Promise<unknown>;
}): Promise<number> {
  const port = Number(options.port ?? 0);
  if (String(options.port ?? 0).trim() === '' || !Number.isInteger(port)) {
    throw new ValidationError(`--port must be an integer from 0 to 65535 (got ${options.port})`, '--port');
  }
  const server = await startDevServer({ port });
  let onSignal = () => {};
  const signalled = new Promise<void>((resolve) => {
    onSignal = resolve;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  options.out.write(`${server.url}\n`);
  options.err.write(`branch-spawner dev: tree page and HTTP API at ${server.url} (Ctrl-C to stop)\n`);
  try {
    await Promise.race([signalled, ...(options.until ? [options.until] : [])]);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await server.close();
  }
  options.err.write('branch-spawner dev: stopped\n');
  return 0;
}

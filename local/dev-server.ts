/**
 * `branch-spawner dev`: the embedded runtime behind a loopback HTTP server. The HTTP API of
 * docs/openapi.yaml goes through the SAME API Gateway handler (`runtime.api`) fed REST proxy events
 * (dev/gateway-shim.ts); next to it, dev-only routes (dev/router.ts) serve the tree page, the
 * examples, a branch's details and a server-sent events stream of the lifecycle events
 * (dev/event-hub.ts) so the page updates live.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { errorMessage, ValidationError } from '../core/errors';
import { agentRegistrySchema } from '../core/agent-kinds';
import { errorResponse } from '../functions/handlers/http-errors';
import { EventHub } from './dev/event-hub';
import { exampleAggregators, exampleAggregatorModules, loadExamples } from './dev/examples';
import { headerValue, lambdaContext, toProxyEvent, writeResult } from './dev/gateway-shim';
import { createRequestGuard } from './dev/request-guard';
import { startRemoteDevServer } from './dev/remote-dev-server';
import type { RemoteTarget } from './remote/api-client';
import { devRoutes, type DevRouteResult } from './dev/router';
import { holdIdleConnections } from './keep-alive';
import { checkModuleAgents } from './module-agents';
import { LocalRuntime, type LocalRuntimeOptions } from './runtime';

export type { ExampleView } from './dev/examples';

const EXAMPLES_DIR = fileURLToPath(new URL('../examples', import.meta.url));

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

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ValidationError(`--port must be an integer from 0 to 65535 (got ${port})`, 'port');
  }
  const examplesDir = options.examplesDir ?? EXAMPLES_DIR;
  const examples = loadExamples(examplesDir);
  const ownRuntime = !options.runtime;
  // Module agents named by a request: relative to where dev started, and only inside it or the examples.
  const modules = { baseDir: process.cwd(), confineTo: [process.cwd(), examplesDir], ...options.runtimeOptions?.modules };
  const runtime =
    options.runtime ??
    (await LocalRuntime.start({
      ...options.runtimeOptions,
      modules,
      // The examples' registered aggregators (e.g. `median`), so every example runs from the page;
      // a request naming any other module is refused (it cannot bring code).
      aggregators: { ...(await exampleAggregators(examplesDir)), ...options.runtimeOptions?.aggregators },
      policy: options.runtimeOptions?.policy ?? { registry: {}, inline: 'any', aggregatorModules: exampleAggregatorModules(examples) },
    }));

  const hub = new EventHub(runtime.bus);
  const devRoute = devRoutes({ deps: runtime.deps, hub, examples, examplesDir });

  // Set once listening (the port is known then): Host, Origin and Content-Type checks.
  let guard: ReturnType<typeof createRequestGuard> = () => {};

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const team = url.searchParams.get('team') ?? headerValue(req, 'x-team') ?? runtime.team;
    let result: DevRouteResult;
    try {
      guard(req, url.pathname);
      result = await devRoute({ req, res, url, team });
      if (result === 'handled') return;
      if (!result) {
        const event = await toProxyEvent(req, url);
        // A run's module agents are loaded before it starts, as `run` does (400 naming the field).
        if (event.httpMethod === 'POST' && /^\/runs\/?$/.test(event.path)) await checkRequestModules(event.body, modules);
        result = await runtime.api(event, lambdaContext);
      }
    } catch (error) {
      result = errorResponse(error);
    }
    writeResult(res, result);
  }

  const stopAll = () => hub.close();
  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      runtime.errors.push(error);
      if (!res.headersSent) writeResult(res, errorResponse(error));
      else res.end();
    });
  });
  holdIdleConnections(server);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    stopAll();
    if (ownRuntime) await runtime.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      const why = code === 'EADDRINUSE' ? 'is in use on 127.0.0.1' : 'may not be opened by this user';
      throw new ValidationError(`--port ${port}: the port ${why}; give another one, or 0 for any free port`, '--port', { cause: error });
    }
    throw error;
  }
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  guard = createRequestGuard({ port: actualPort, extraBodyTypes: { '/scenarios/parse': ['application/yaml', 'text/yaml'] } });

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    runtime,
    close() {
      closing ??= (async () => {
        stopAll();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        if (ownRuntime) await runtime.close();
      })();
      return closing;
    },
  };
}

/**
 * The `module` agents of a POST /runs body, checked as a scenario file's are (checkModuleAgents).
 * A body that is not a JSON object with agents is left to the API handler, which names the fault.
 */
async function checkRequestModules(body: string | null, modules: { baseDir: string; confineTo?: string[] }): Promise<void> {
  let document: unknown;
  try {
    document = JSON.parse(body ?? '');
  } catch {
    return;
  }
  const agents = agentRegistrySchema.safeParse((document as { agents?: unknown } | null)?.agents);
  if (!agents.success) return;
  await checkModuleAgents(agents.data, modules);
}

/** `branch-spawner dev`: prints the address, serves until SIGINT/SIGTERM (or `until`), then stops. */
export async function runDevCommand(options: {
  port?: string | number;
  /** `dev --api`: the page against a team's deployed API (dev/remote-dev-server.ts). */
  target?: RemoteTarget;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  until?: Promise<unknown>;
}): Promise<number> {
  const port = Number(options.port ?? 0);
  if (String(options.port ?? 0).trim() === '' || !Number.isInteger(port)) {
    throw new ValidationError(`--port must be an integer from 0 to 65535 (got ${options.port})`, '--port');
  }
  const server = options.target
    ? await startRemoteDevServer({ target: options.target, port, examplesDir: EXAMPLES_DIR, onError: (error) => options.err.write(`warning: ${errorMessage(error)}\n`) })
    : await startDevServer({ port });
  let onSignal = () => {};
  const signalled = new Promise<void>((resolve) => {
    onSignal = resolve;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  options.out.write(`${server.url}\n`);
  options.err.write(
    options.target
      ? `branch-spawner dev: tree page at ${server.url}, its calls signed here and relayed to ${options.target.api} (Ctrl-C to stop)\n`
      : `branch-spawner dev: tree page and HTTP API at ${server.url} (Ctrl-C to stop)\n`,
  );
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

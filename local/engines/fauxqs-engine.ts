/**
 * fauxqs (an in-process SQS emulator) on a random loopback port, with an SQS client pointed at it.
 * We build the app ourselves instead of calling fauxqs' startFauxqs(): that one listens on 0.0.0.0,
 * and a laptop run has no reason to expose a queue to the network.
 *
 * With `dataDir`, queues and messages (ready, delayed, in flight with their visibility deadlines)
 * are kept in fauxqs' SQLite file there and restored on the next start — what startFauxqs does
 * for its own `dataDir`, wired by hand because buildApp takes the stores but not the option.
 * The store classes are not in the package's exports: they are imported from its dist folder,
 * next to the entry point (fauxqs is pinned; test/reliability/faults-and-handlers.test.ts checks
 * that a restart still restores queues and in-flight messages).
 */
import { mkdirSync } from 'node:fs';
import { SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import { MAX_VALUE_BYTES } from '../../core/input-bounds';
import { injectDispatch, inProcessRequestHandler, unsignedAuth, type EngineDispatch } from './in-process-transport';

export const FAUXQS_REGION = 'us-east-1';
/** The largest S3 body fauxqs takes here: a value's ceiling, and room for the request around it. */
export const S3_BODY_LIMIT = MAX_VALUE_BYTES + 1024 * 1024;

export interface FauxqsEngine {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  client: SQSClient;
  /** A request (SQS or S3) straight to fauxqs' routes, without a socket (the rehearsal's endpoint forwards with it). */
  dispatch: EngineDispatch;
  close(): Promise<void>;
}

export interface FauxqsOptions {
  /** Keep queues and messages in a SQLite file in this folder (restored on the next start). */
  dataDir?: string;
}

interface PersistentStores {
  stores: NonNullable<NonNullable<Parameters<typeof buildApp>[0]>['stores']>;
  close(): void;
}

/** The stores startFauxqs would build for `dataDir`, loaded from it and writing through to it. */
async function persistentStores(dataDir: string): Promise<PersistentStores> {
  mkdirSync(dataDir, { recursive: true });
  const dist = import.meta.resolve('fauxqs');
  const load = (path: string) => import(new URL(path, dist).href);
  const [{ SqsStore }, { SnsStore }, { S3Store }, { PersistenceManager }] = await Promise.all([
    load('./sqs/sqsStore.js'),
    load('./sns/snsStore.js'),
    load('./s3/s3Store.js'),
    load('./persistence.js'),
  ]);
  const sqsStore = new SqsStore();
  const snsStore = new SnsStore();
  const s3Store = new S3Store();
  const persistence = new PersistenceManager(dataDir);
  // Load first, then attach (as startFauxqs does: attaching first would rewrite what it loads).
  persistence.load(sqsStore, snsStore, s3Store);
  sqsStore.persistence = persistence;
  snsStore.persistence = persistence;
  s3Store.persistence = persistence;
  for (const queue of sqsStore.allQueues()) queue.persistence = persistence;
  return { stores: { sqsStore, snsStore, s3Store }, close: () => persistence.close() };
}

export async function startFauxqs(options: FauxqsOptions = {}): Promise<FauxqsEngine> {
  const persistent = options.dataDir ? await persistentStores(options.dataDir) : undefined;
  const app = buildApp({ logger: false, defaultRegion: FAUXQS_REGION, ...(persistent ? { stores: persistent.stores } : {}) });
  // fauxqs takes S3 bodies up to 11 MiB (its multipart part size); S3 takes one PUT up to 5 GB,
  // and a value of ours (a blob) may be 64 MB: the S3 body parser gets that limit instead.
  app.removeContentTypeParser('*');
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: S3_BODY_LIMIT }, (_req: unknown, body: Buffer, done: (error: Error | null, body?: unknown) => void) => done(null, body));
  // onClose: after the server stopped and its last requests (which still write through) ended.
  if (persistent) app.addHook('onClose', () => persistent.close());
  const endpoint = await app.listen({ host: '127.0.0.1', port: 0 });
  // Queue URLs use the host sqs.<region>.localhost, which need not resolve: an explicit endpoint
  // makes the SDK send every call here whatever the QueueUrl says. The client itself takes the
  // in-process transport (fastify's inject: no socket, no signing); the port stays open.
  const dispatch = injectDispatch(app as unknown as Parameters<typeof injectDispatch>[0]);
  const client = new SQSClient({
    endpoint,
    region: FAUXQS_REGION,
    ...unsignedAuth(FAUXQS_REGION, 'sqs'),
    requestHandler: inProcessRequestHandler(dispatch),
  });
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    client,
    dispatch,
    close() {
      closed ??= (async () => {
        // fauxqs' preClose hook ends pending long polls (they answer "no messages"), then the
        // server drops its sockets; only then the client's keep-alive sockets go.
        await app.close();
        client.destroy();
      })();
      return closed;
    },
  };
}

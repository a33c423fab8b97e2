/**
 * `show --api` reads a run and its branches at once. When the API refuses both, the message must
 * not depend on which refusal arrives first: the run's own is reported.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiClient } from '../../../local/remote/api-client';
import { remoteSource } from '../../../local/run-sources';

let server: Server;
let base: string;

beforeAll(async () => {
  // The branches route answers at once; the run's route only once the branches' answer was sent.
  let branchesAnswered: () => void = () => {};
  const branchesSent = new Promise<void>((resolve) => (branchesAnswered = resolve));
  server = createServer((req, res) => {
    const refuse = (message: string) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'ForeignRequestError', message }), branchesAnswered);
    };
    if (req.url?.startsWith('/v1/runs/nope/branches')) refuse('refused on the branches route');
    else void branchesSent.then(() => refuse('refused on the run route'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

it('a run refused on both routes reports the run route refusal, whichever came first', async () => {
  const source = remoteSource(ApiClient.connect({ api: base }, {}));
  await expect(source.describe('nope')).rejects.toThrow(/GET \/v1\/runs\/nope was refused \(403 ForeignRequestError: refused on the run route\)/);
});

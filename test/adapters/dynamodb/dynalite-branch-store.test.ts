// Long-running: started first (vitest.config.ts).
/** The store contract on dynalite (always runs: pure Node, in-process). */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTableIfMissing, DynamoBranchStore } from '../../../adapters/dynamodb';
import { MemoryBlobStore } from '../../../adapters/blobs/memory-blob-store';
import { startDynalite, type DynamoEngine } from '../../../local/engines/dynalite-engine';
import { describeBranchStoreConformance, describeBranchStorePages, describeBranchStoreRunKeys, ENGINE_WIDE_CHILDREN, newScope, runRecord } from '../branch-store-conformance';
import { describeDynamoStoreSpecifics } from './dynamo-store-specifics';

const tableName = `branches-dynalite-${randomUUID().slice(0, 8)}`;
let engine: DynamoEngine;

beforeAll(async () => {
  engine = await startDynalite();
  expect(await createTableIfMissing(engine.client, tableName)).toBe(true);
});
afterAll(async () => {
  await engine?.close();
});

describeBranchStoreConformance('DynamoBranchStore on dynalite', (meter) => new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }), {
  wideChildren: ENGINE_WIDE_CHILDREN,
});
describeBranchStorePages('DynamoBranchStore on dynalite', (meter) => new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }));
describeBranchStoreRunKeys('DynamoBranchStore on dynalite', (meter) => new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }));
describeDynamoStoreSpecifics('dynalite', () => engine, () => tableName, { batchGetRequestsFor2MB: 2 });

describe('dynalite engine', () => {
  it('keeps data in a LevelDB directory across restarts and closes without stray handles', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dynalite-'));
    // Handles (servers, sockets) still bound to or connected to an engine's port.
    const handlesOn = (port: number) =>
      (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((h) => {
        const s = h as { address?: () => unknown; remotePort?: number; localPort?: number };
        const local = typeof s.address === 'function' ? (s.address() as { port?: number } | null)?.port : undefined;
        return s.remotePort === port || s.localPort === port || local === port;
      });
    try {
      const scope = newScope();
      const first = await startDynalite({ path: dir });
      const firstPort = Number(new URL(first.endpoint).port);
      await createTableIfMissing(first.client, 'persisted');
      await new DynamoBranchStore({ client: first.doc, tableName: 'persisted' }).createRun(runRecord(scope));
      await first.close();
      await first.close(); // idempotent
      expect(handlesOn(firstPort)).toEqual([]);

      const second = await startDynalite({ path: dir });
      const secondPort = Number(new URL(second.endpoint).port);
      expect(handlesOn(secondPort).length).toBeGreaterThan(0);
      expect(await new DynamoBranchStore({ client: second.doc, tableName: 'persisted' }).getRun(scope)).toEqual(
        runRecord(scope),
      );
      await second.close();
      expect(handlesOn(secondPort)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

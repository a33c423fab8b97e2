// Long-running: started first (vitest.config.ts).
/** The store contract on Amazon's DynamoDB Local (a Java child process); skipped without Java. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTableIfMissing, DynamoBranchStore } from '../../../adapters/dynamodb';
import { MemoryBlobStore } from '../../../adapters/blobs/memory-blob-store';
import {
  javaAvailable,
  startDynamoDbLocal,
  type DynamoDbLocalEngine,
} from '../../../local/engines/dynamodb-local-engine';
import { describeBranchStoreConformance, describeBranchStorePages, describeBranchStoreRunKeys, ENGINE_WIDE_CHILDREN } from '../branch-store-conformance';
import { describeDynamoStoreSpecifics } from './dynamo-store-specifics';

const hasJava = javaAvailable();
if (!hasJava) console.warn('DynamoDB Local tests skipped: no `java` on the PATH (DynamoDB Local needs Java 17+).');

/**
 * The JVM's start is bounded by the CPU it spends (startDynamoDbLocal), not by the wall clock a
 * busy machine stretches: the hooks' and the start test's own limits are only a net above it.
 */
const START_NET_MS = 11 * 60_000;

describe.skipIf(!hasJava)('DynamoDB Local', () => {
  const tableName = `branches-ddblocal-${randomUUID().slice(0, 8)}`;
  let engine: DynamoDbLocalEngine;

  beforeAll(async () => {
    engine = await startDynamoDbLocal();
    expect(await createTableIfMissing(engine.client, tableName)).toBe(true);
  }, START_NET_MS);
  afterAll(async () => {
    await engine?.close();
  });

  describeBranchStoreConformance('DynamoBranchStore on DynamoDB Local', (meter) =>
    new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }),
    { wideChildren: ENGINE_WIDE_CHILDREN },
  );
  describeBranchStorePages('DynamoBranchStore on DynamoDB Local', (meter) => new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }));
  describeBranchStoreRunKeys('DynamoBranchStore on DynamoDB Local', (meter) => new DynamoBranchStore({ client: engine.doc, tableName, meter, blobs: new MemoryBlobStore() }));
  describeDynamoStoreSpecifics('DynamoDB Local', () => engine, () => tableName, { batchGetRequestsFor2MB: 1 });

  it('stops the Java process on close', async () => {
    const other = await startDynamoDbLocal();
    await other.close();
    expect(other.process.exitCode !== null || other.process.signalCode !== null).toBe(true);
  }, START_NET_MS);
});

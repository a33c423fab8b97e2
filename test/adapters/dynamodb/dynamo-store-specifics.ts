/**
 * What only the DynamoDB store has: the table definition, the item layout (JSON strings vs
 * native attributes, sparse GSI, TTL) and the number of requests each method makes (the
 * numbers docs/dynamodb-schema.md promises). Run on every engine.
 */
import { DescribeTableCommand, GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTableIfMissing, DynamoBranchStore, tableSchema } from '../../../adapters/dynamodb';
import { localDynamoClients, type DynamoEngine } from '../../../local/engines/dynalite-engine';
import { branchRecord, newScope, runRecord, syncPointRecord } from '../branch-store-conformance';
import { WorkMark } from '../../../core/work-mark';

export interface EngineTraits {
  /** BatchGetItem requests getBranches needs for 100 items of 20 KB (engines cap responses differently). */
  batchGetRequestsFor2MB: number;
}

export function describeDynamoStoreSpecifics(
  name: string,
  engine: () => DynamoEngine,
  tableName: () => string,
  traits: EngineTraits,
): void {
  describe(`DynamoBranchStore specifics: ${name}`, () => {
    let requests: string[] = [];
    /** When set, the next request it matches fails as a crashed worker's would (nothing written). */
    let crashOn: ((command: string, input: { Key?: { SK?: string } }) => boolean) | undefined;
    let counted: DynamoDBClient;
    let store: DynamoBranchStore;

    beforeAll(() => {
      // A client of its own whose every send is recorded (once per call, retries not counted).
      counted = localDynamoClients(engine().endpoint).client;
      counted.middlewareStack.add(
        (next, context) => async (args) => {
          const command = String(context.commandName).replace(/Command$/, '');
          requests.push(command);
          if (crashOn?.(command, args.input as { Key?: { SK?: string } })) {
            crashOn = undefined;
            throw new Error('worker crashed');
          }
          return next(args);
        },
        { step: 'initialize', name: 'countRequests' },
      );
      store = new DynamoBranchStore({ client: counted, tableName: tableName(), ttlSeconds: 3600, now: () => 1_700_000_000_000 });
    });
    afterAll(() => counted?.destroy());

    async function count<T>(work: () => Promise<T>): Promise<{ value: T; requests: string[] }> {
      requests = [];
      const value = await work();
      return { value, requests: [...requests] };
    }

    it('creates the table from the shared schema, once', async () => {
      const described = await engine().client.send(new DescribeTableCommand({ TableName: tableName() }));
      const schema = tableSchema(tableName());
      expect(described.Table?.KeySchema).toEqual(schema.KeySchema);
      expect(described.Table?.GlobalSecondaryIndexes?.map((g) => [g.IndexName, g.KeySchema, g.Projection])).toEqual(
        schema.GlobalSecondaryIndexes!.map((g) => [g.IndexName, g.KeySchema, g.Projection]),
      );
      expect(described.Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
      expect(await createTableIfMissing(engine().client, tableName())).toBe(false);
    });

    it('stores user values as JSON strings and decision fields natively, with TTL and a sparse GSI', async () => {
      const scope = newScope();
      await store.createRun(runRecord(scope));
      await store.createBranches([branchRecord(scope, 'root'), branchRecord(scope, 'root.0', 'root')]);
      await store.createSyncPoint(syncPointRecord(scope, 'root', 1, 1));
      await store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded');
      const raw = async (SK: string) =>
        (
          await engine().client.send(
            new GetItemCommand({
              TableName: tableName(),
              Key: { PK: { S: `T#${scope.team}#R#${scope.runId}` }, SK: { S: SK } },
              ConsistentRead: true,
            }),
          )
        ).Item!;
      const expiresAt = { N: String(1_700_000_000 + 3600) };

      const run = await raw('RUN');
      expect(run).toMatchObject({ status: { S: 'RUNNING' }, branchCount: { N: '1' }, expiresAt });
      expect(JSON.parse(run.request.S!)).toEqual(runRecord(scope).request);
      expect(run.agents.S).toBeDefined();

      const root = await raw('B#root');
      expect(root).toMatchObject({ status: { S: 'PENDING' }, version: { N: '0' }, depth: { N: '0' }, parentId: { NULL: true }, expiresAt });
      expect(root.input).toEqual({ S: JSON.stringify({ task: 'root' }) });
      expect(root.memory).toEqual({ S: '[]' });
      expect(root.GSI1PK).toBeUndefined();
      const child = await raw('B#root.0');
      expect(child).toMatchObject({
        parentId: { S: 'root' },
        GSI1PK: { S: `T#${scope.team}#R#${scope.runId}#P#root` },
        GSI1SK: { S: 'B#root.0' },
      });

      // The end is in its fan-in shard (index within the shard), rolled up into the sync point.
      const sp = await raw('S#root#000001');
      expect(sp).toMatchObject({ total: { N: '1' }, succeeded: { N: '1' }, k0: { N: '1' }, expiresAt });
      expect(sp.done).toBeUndefined();
      expect(sp.aggregatedAt).toBeUndefined();
      expect(await raw('F#root#000001#0')).toMatchObject({ done: { SS: ['0'] }, succeeded: { N: '1' }, expiresAt });
    });

    it('a batch pool created by its first claim carries the TTL beside the claim', async () => {
      const scope = newScope();
      expect(await store.claimBatchChild(scope, 'root', 1, 0, { ender: 0, start: 2, end: 5, mayRepeat: false })).toEqual({ index: 2, repeat: false });
      const { Item } = await engine().client.send(new GetItemCommand({ TableName: tableName(), Key: { PK: { S: `T#${scope.team}#R#${scope.runId}` }, SK: { S: 'K#root#000001#0#pool' } } }));
      expect(Item).toMatchObject({ next: { N: '3' }, expiresAt: { N: String(1_700_000_000 + 3600) } });
    });

    it('meters a new child\'s GSI1 entry (one write unit) whether or not the engine reports index units', async () => {
      const scope = newScope();
      let writeUnits = 0;
      const metered = new DynamoBranchStore({
        client: counted,
        tableName: tableName(),
        meter: { add: (_scope, usage) => void (writeUnits += usage.writeUnits ?? 0) },
      });
      const units = async (work: () => Promise<unknown>) => {
        writeUnits = 0;
        await work();
        return writeUnits;
      };
      // Same size: a root (not in the sparse index) and a child (in it).
      const root = await units(() => metered.createBranches([{ ...branchRecord(scope, 'root.0'), parentId: null }]));
      const child = await units(() => metered.createBranches([branchRecord(scope, 'root.1', 'root')]));
      expect(root).toBe(1);
      expect(child).toBe(root + 1);
      // An update of a child leaves its keys-only index entry alone: no index unit.
      expect(await units(() => metered.updateBranch(scope, 'root.1', 0, { stepCount: 1 }))).toBe(1);
    });

    it('writes the ends of one shard told together in one conditional write and one roll-up; repeats among them are refused alone', async () => {
      const scope = newScope();
      await store.createSyncPoint(syncPointRecord(scope, 'root', 1, 5));
      await store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded');
      const mixed = await count(() =>
        Promise.all([
          store.recordChildEnd(scope, 'root', 1, 'root.1', 'succeeded'),
          store.recordChildEnd(scope, 'root', 1, 'root.2', 'failed'),
          store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded'), // told before
          store.recordChildEnd(scope, 'root', 1, 'root.2', 'failed'), // told twice at once
        ]),
      );
      expect(mixed.value.map((r) => r.applied)).toEqual([true, true, false, false]);
      for (const r of mixed.value) expect(r.counters).toEqual({ total: 5, succeeded: 2, failed: 1, cancelled: 0 });
      // The group is refused (root.0 is counted), one read tells which are, the others are written together, one roll-up.
      expect(mixed.requests).toEqual(['UpdateItem', 'BatchGetItem', 'UpdateItem', 'UpdateItem']);
      const fresh = await count(() =>
        Promise.all([
          store.recordChildEnd(scope, 'root', 1, 'root.3', 'cancelled'),
          store.recordChildEnd(scope, 'root', 1, 'root.4', 'succeeded'),
        ]),
      );
      expect(fresh.requests).toEqual(['UpdateItem', 'UpdateItem']);
      expect(fresh.value).toEqual([
        { applied: true, counters: { total: 5, succeeded: 3, failed: 1, cancelled: 1 } },
        { applied: true, counters: { total: 5, succeeded: 3, failed: 1, cancelled: 1 } },
      ]);
      expect(await store.listCountedChildren(scope, 'root', 1)).toEqual(['root.0', 'root.1', 'root.2', 'root.3', 'root.4']);
    });

    it('finishes a count that crashed between the shard and the roll-up when the end is told again', async () => {
      const scope = newScope();
      await store.createSyncPoint(syncPointRecord(scope, 'root', 1, 3));
      await store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded');
      crashOn = (command, input) => command === 'UpdateItem' && String(input.Key?.SK).startsWith('S#');
      await expect(store.recordChildEnd(scope, 'root', 1, 'root.1', 'failed')).rejects.toThrow(/crashed/);
      expect((await store.getSyncPoint(scope, 'root', 1))!.counters).toEqual({ total: 3, succeeded: 1, failed: 0, cancelled: 0 });
      // The retry finds the end in its shard (not applied again) and rolls it up, once.
      expect(await store.recordChildEnd(scope, 'root', 1, 'root.1', 'failed')).toEqual({
        applied: false,
        counters: { total: 3, succeeded: 1, failed: 1, cancelled: 0 },
      });
      expect((await store.recordChildEnd(scope, 'root', 1, 'root.1', 'failed')).counters).toEqual({ total: 3, succeeded: 1, failed: 1, cancelled: 0 });
      // Or another end of the same shard rolls it up on its way.
      crashOn = (command, input) => command === 'UpdateItem' && String(input.Key?.SK).startsWith('S#');
      await expect(store.recordChildEnd(scope, 'root', 1, 'root.2', 'cancelled')).rejects.toThrow(/crashed/);
      expect(await store.listCountedChildren(scope, 'root', 1)).toEqual(['root.0', 'root.1', 'root.2']);
      expect((await store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded')).counters).toEqual({ total: 3, succeeded: 1, failed: 1, cancelled: 1 });
    });

    it('makes the documented number of requests per method', async () => {
      const scope = newScope();
      expect((await count(() => store.createRun(runRecord(scope)))).requests).toEqual(['PutItem']);
      expect((await count(() => store.getRun(scope))).requests).toEqual(['GetItem']);
      expect((await count(() => store.reserveBranches(scope, 'root#0', 2, 10))).requests).toEqual(['UpdateItem']);
      // A repeated key, or a refusal: the failed condition plus one consistent read.
      expect((await count(() => store.reserveBranches(scope, 'root#0', 2, 10))).requests).toEqual(['UpdateItem', 'GetItem']);

      const ids = Array.from({ length: 250 }, (_, i) => `root.${i}`);
      const created = await count(() => store.createBranches(ids.map((id) => branchRecord(scope, id, 'root'))));
      expect(created.requests).toEqual(ids.map(() => 'PutItem'));
      expect((await count(() => store.getBranch(scope, 'root.1'))).requests).toEqual(['GetItem']);
      expect((await count(() => store.getBranches(scope, ids))).requests).toEqual(['BatchGetItem', 'BatchGetItem', 'BatchGetItem']);
      expect((await count(() => store.updateBranch(scope, 'root.1', 0, { stepCount: 1 }))).requests).toEqual(['UpdateItem']);
      expect((await count(() => store.updateBranch(scope, 'root.1', 0, { stepCount: 1 }))).requests).toEqual(['UpdateItem']);
      expect((await count(() => store.transitionBranch(scope, 'root.1', ['PENDING'], 'RUNNING'))).requests).toEqual(['UpdateItem']);
      expect((await count(() => store.transitionBranch(scope, 'root.1', ['COMPLETED'], 'RUNNING'))).requests).toEqual([]);
      expect((await count(() => store.listBranches(scope))).requests).toEqual(['Query']);
      // Keys from the index, then the items by consistent batch reads (more rounds for unprocessed keys).
      const children = (await count(() => store.listChildren(scope, 'root'))).requests;
      expect(children[0]).toBe('Query');
      expect(children.length).toBeGreaterThan(1);
      expect(new Set(children.slice(1))).toEqual(new Set(['BatchGetItem']));

      await store.createSyncPoint(syncPointRecord(scope, 'root', 1, 2));
      // The shard, then the roll-up; a repeat: the refused shard write, then one read of the shard and the sync point.
      expect((await count(() => store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded'))).requests).toEqual(['UpdateItem', 'UpdateItem']);
      expect((await count(() => store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded'))).requests).toEqual(['UpdateItem', 'BatchGetItem']);
      expect((await count(() => store.claimAggregation(scope, 'root', 1, 'resume', 1, WorkMark.settle('root', 1)))).requests).toEqual(['UpdateItem']);
      expect((await count(() => store.listOpenSyncPoints(scope))).requests).toEqual(['Query']);
      expect((await count(() => store.getSyncPoint(scope, 'root', 1))).requests).toEqual(['GetItem']);
      expect((await count(() => store.finishRun(scope, 'COMPLETED', { endedAt: 1 }))).requests).toEqual(['UpdateItem']);
    });

    it('pages through queries and unprocessed batch keys (results over 1 MB)', async () => {
      const scope = newScope();
      const filler = 'f'.repeat(20_000);
      const ids = Array.from({ length: 100 }, (_, i) => `root.${i}`);
      await store.createBranches(ids.map((id) => branchRecord(scope, id, 'root', { input: filler })));
      const listed = await count(() => store.listBranches(scope));
      expect(listed.value.map((b) => b.id)).toEqual(ids);
      expect(listed.requests).toEqual(['Query', 'Query']);
      const read = await count(() => store.getBranches(scope, ids));
      expect(read.value.map((b) => b.id)).toEqual(ids);
      // 2 MB of items: DynamoDB answers up to 16 MB per BatchGetItem, dynalite ~1.4 MB (the rest as UnprocessedKeys).
      expect(read.requests).toEqual(Array(traits.batchGetRequestsFor2MB).fill('BatchGetItem'));
    });

    it('reads a slice of stored child specs by key, one chunk a query page; chunks keyed by their number (older stores) still read', async () => {
      const scope = newScope();
      const specs = Array.from({ length: 8_000 }, (_, i) => ({ agent: 'Leaf', input: { i, pad: 'x'.repeat(60) }, type: 'SIMPLE' as const }));
      await store.putChildSpecs(scope, 'root#1#m', specs);
      const inOne = await count(() => store.getChildSpecs(scope, 'root#1#m', 7_990, 10));
      expect(inOne.value).toEqual(specs.slice(7_990));
      expect(inOne.requests).toEqual(['Query']);
      const across = await count(() => store.getChildSpecs(scope, 'root#1#m', 2_000, 1_000));
      expect(across.value).toEqual(specs.slice(2_000, 3_000));
      expect(across.requests).toEqual(['Query', 'Query']);
      // Before chunk keys named their first index they named the chunk's number (`…#0000`, `…#0001`).
      const old = newScope();
      const pk = { S: `T#${old.team}#R#${old.runId}` };
      const chunks = [specs.slice(0, 3), specs.slice(3, 6)];
      for (const [n, chunk] of chunks.entries()) {
        await engine().client.send(
          new PutItemCommand({
            TableName: tableName(),
            Item: {
              PK: pk,
              SK: { S: `C#root%231%23m#${String(n).padStart(4, '0')}` },
              entity: { S: 'SPECS' },
              first: { N: String(n * 3) },
              count: { N: '3' },
              specs: { S: JSON.stringify(chunk) },
            },
          }),
        );
      }
      expect(await store.getChildSpecs(old, 'root#1#m', 4, 2)).toEqual(specs.slice(4, 6));
      expect(await store.getChildSpecs(old, 'root#1#m', 1, 4)).toEqual(specs.slice(1, 5));
    });

    it('refuses a too-large item before sending anything', async () => {
      const scope = newScope();
      const { requests: sent } = await count(() =>
        store.createBranches([branchRecord(scope, 'root', null, { input: 'x'.repeat(500_000) })]).catch((e) => e),
      );
      expect(sent).toEqual([]);
    });

    it('accepts a plain DynamoDBClient as well as a document client', async () => {
      const scope = newScope();
      const plain = new DynamoBranchStore({ client: engine().client, tableName: tableName() });
      const viaDoc = new DynamoBranchStore({ client: engine().doc, tableName: tableName() });
      await plain.createRun(runRecord(scope));
      expect(await viaDoc.getRun(scope)).toEqual(runRecord(scope));
    });
  });
}

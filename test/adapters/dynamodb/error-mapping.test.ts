/** mapDynamoError, alone and through the store (the only place SDK calls are mocked). */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  InternalServerError,
  ProvisionedThroughputExceededException,
  ResourceNotFoundException,
  ThrottlingException,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoBranchStore, mapDynamoError, MAX_ITEM_BYTES } from '../../../adapters/dynamodb';
import { syncKey } from '../../../adapters/dynamodb/item-codec';
import { shardKey } from '../../../adapters/dynamodb/fan-in-shards';
import {
  BranchSpawnerError,
  ConflictError,
  PayloadTooLargeError,
  TransientError,
} from '../../../core/errors';
import { runRecord } from '../branch-store-conformance';
import { WorkMark } from '../../../core/work-mark';

const meta = { $metadata: {} };
const conditionFailed = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', ...meta });
function sdkError(name: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name, $metadata: {}, ...extra });
}

describe('mapDynamoError', () => {
  const cases: [string, unknown, new (...args: any[]) => Error][] = [
    ['a failed condition', conditionFailed(), ConflictError],
    ['an item too large (put)', sdkError('ValidationException', 'Item size has exceeded the maximum allowed size'), PayloadTooLargeError],
    ['an item too large (update)', sdkError('ValidationException', 'Item size to update has exceeded the maximum allowed size'), PayloadTooLargeError],
    ['provisioned throughput exceeded', new ProvisionedThroughputExceededException({ message: 'slow down', ...meta }), TransientError],
    ['throttling', new ThrottlingException({ message: 'Rate exceeded', ...meta }), TransientError],
    ['request limit exceeded', sdkError('RequestLimitExceeded', 'account limit'), TransientError],
    ['an internal server error', new InternalServerError({ message: 'boom', ...meta }), TransientError],
    ['any 5xx', sdkError('UnknownError', 'bad gateway', { $metadata: { httpStatusCode: 502 } }), TransientError],
    ['a server fault', sdkError('Whatever', 'x', { $fault: 'server' }), TransientError],
    ['a reset connection', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), TransientError],
  ];
  it.each(cases)('maps %s', (_label, error, expected) => {
    const mapped = mapDynamoError(error, 'op root.3');
    expect(mapped).toBeInstanceOf(expected);
    expect(mapped.cause).toBe(error);
    expect(mapped.message).toContain('op root.3');
  });

  it('wraps anything else in BranchSpawnerError, keeping the cause', () => {
    for (const error of [
      new ResourceNotFoundException({ message: 'Requested resource not found', ...meta }),
      sdkError('ValidationException', 'Invalid UpdateExpression: Syntax error'),
      sdkError('AccessDeniedException', 'not allowed', { $metadata: { httpStatusCode: 400 } }),
      'a string',
    ]) {
      const mapped = mapDynamoError(error, 'op');
      expect(mapped.constructor).toBe(BranchSpawnerError);
      expect(mapped.cause).toBe(error);
    }
  });

  it('says how large the limit is and keeps core errors as they are', () => {
    const tooLarge = mapDynamoError(sdkError('ValidationException', 'Item size has exceeded the maximum allowed size'), 'createRun r1');
    expect(tooLarge).toMatchObject({ max: MAX_ITEM_BYTES });
    expect((tooLarge as PayloadTooLargeError).size).toBeGreaterThan(MAX_ITEM_BYTES);
    expect(tooLarge.message).toMatch(/^createRun r1: .*items are limited to 400 KB$/);
    const core = new TransientError('already mapped');
    expect(mapDynamoError(core, 'op')).toBe(core);
  });
});

describe('DynamoBranchStore error handling (mocked SDK)', () => {
  const mock = mockClient(DynamoDBDocumentClient);
  const raw = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const store = new DynamoBranchStore({ client: DynamoDBDocumentClient.from(raw), tableName: 't' });
  const scope = { team: 'team-a', runId: 'r1' };

  beforeEach(() => mock.reset());
  afterAll(() => {
    mock.restore();
    raw.destroy();
  });

  it('never lets a failed condition leak', async () => {
    mock.on(PutCommand).rejects(conditionFailed());
    mock.on(UpdateCommand).rejects(conditionFailed());
    expect(await store.createRun(runRecord(scope))).toBe(false);
    expect(await store.createBranches([])).toEqual([]);
    expect(await store.updateBranch(scope, 'root', 0, { stepCount: 1 })).toBeUndefined();
    expect(await store.transitionBranch(scope, 'root', ['RUNNING'], 'FAILED')).toBeUndefined();
    expect(await store.finishRun(scope, 'FAILED', {})).toBe(false);
    expect(await store.claimAggregation(scope, 'root', 1, 'fail', 1, WorkMark.settle('root', 1))).toBe(false);
    // A repeated end: its shard already counted it and the sync point already rolled that shard up (k0).
    mock.on(BatchGetCommand).resolves({
      Responses: {
        t: [
          { ...shardKey(scope, 'root', 1, '0'), done: new Set(['0']), succeeded: 1 },
          { ...syncKey(scope, 'root', 1), total: 2, succeeded: 1, failed: 0, cancelled: 0, k0: 1 },
        ],
      },
    });
    expect(await store.recordChildEnd(scope, 'root', 1, 'root.0', 'succeeded')).toEqual({
      applied: false,
      counters: { total: 2, succeeded: 1, failed: 0, cancelled: 0 },
    });
    mock.on(GetCommand).resolves({ Item: { branchCount: 7, spawnKeys: new Set(['root#1']) } });
    expect(await store.reserveBranches(scope, 'root#1', 3, 10)).toEqual({ ok: true, branchCount: 7 });
    expect(await store.reserveBranches(scope, 'root#2', 3, 10)).toEqual({ ok: false, branchCount: 7 });
  });

  it('turns throttling into TransientError with the SDK error as cause', async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', ...meta });
    mock.on(GetCommand).rejects(throttled);
    const error = await store.getRun(scope).catch((e) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect(error.cause).toBe(throttled);
    expect(error.message).toMatch(/getRun r1/);
  });

  it('turns an engine size refusal into PayloadTooLargeError', async () => {
    mock.on(UpdateCommand).rejects(sdkError('ValidationException', 'Item size to update has exceeded the maximum allowed size'));
    await expect(store.updateBranch(scope, 'root', 0, { result: 'x' })).rejects.toBeInstanceOf(PayloadTooLargeError);
  });

  it('wraps other failures in BranchSpawnerError naming the operation', async () => {
    const denied = sdkError('AccessDeniedException', 'not authorized to perform dynamodb:Query');
    mock.on(QueryCommand).rejects(denied);
    const error = await store.listBranches(scope).catch((e) => e);
    expect(error.constructor).toBe(BranchSpawnerError);
    expect(error.cause).toBe(denied);
    expect(error.message).toMatch(/^listBranches r1: AccessDeniedException/);
  });
});

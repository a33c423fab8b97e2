/**
 * The AWS behaviours the rehearsal models, piece by piece (local/rehearsal/aws-quotas.ts,
 * recursion.ts, function-host.ts, event-bus.ts): without a synth, on their own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AWS_QUOTAS } from '../../local/rehearsal/aws-quotas';
import { PutEventsTooLargeError, RehearsalEventBus, putEventsEntrySize } from '../../local/rehearsal/event-bus';
import { ConcurrencyPool, FunctionError, FunctionHost } from '../../local/rehearsal/function-host';
import { newTraceHeader, nextHop } from '../../local/rehearsal/recursion';
import { startS3Endpoint } from '../support/s3-endpoint';

const WORKER = 'arn:aws:lambda:eu-west-1:123456789012:function:step-worker';
const OTHER = 'arn:aws:lambda:eu-west-1:123456789012:function:api';

describe("Lambda's recursive loop detection (recursion.ts)", () => {
  it('counts the invocations of each function along one trace and stops the 17th unless RecursiveLoop is Allow', () => {
    // The API starts the chain; each step-worker invocation sends the next message with its header.
    let header = (nextHop(undefined, OTHER, 'Terminate') as { header: string }).header;
    const root = /Root=([^;]+)/.exec(header)![1];
    for (let i = 1; i <= AWS_QUOTAS.recursiveLoopMaxInvocations; i++) {
      const hop = nextHop(header, WORKER, 'Terminate');
      expect(hop).toMatchObject({ stopped: false, invocations: i });
      header = (hop as { header: string }).header;
      expect(header).toContain(`Root=${root}`);
    }
    expect(nextHop(header, WORKER, 'Terminate')).toEqual({ stopped: true, invocations: 17 });
    // Allowed, the chain goes on; another function on the same trace counts its own.
    expect(nextHop(header, WORKER, 'Allow')).toMatchObject({ stopped: false, invocations: 17 });
    expect(nextHop(header, OTHER, 'Terminate')).toMatchObject({ stopped: false, invocations: 2 });
    // A message without a header (sent by Step Functions) starts a new chain.
    expect(nextHop(undefined, WORKER, 'Terminate')).toMatchObject({ stopped: false, invocations: 1 });
    expect(newTraceHeader()).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/);
  });
});

describe('the function host', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aws-stack-host-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'index.mjs'),
    "export const handler = async (event) => event.big ? 'x'.repeat(event.big) : process.env._X_AMZN_TRACE_ID;\n",
  );
  const host = new FunctionHost(
    { logicalId: 'Fn', name: 'fn', arn: OTHER, handlerFile: join(dir, 'index.mjs'), handlerName: 'handler', environment: {}, timeoutSeconds: 30, memorySize: 128, roleLogicalId: 'Role', maxContainers: 1 },
    { region: 'eu-west-1', account: '123456789012' },
  );
  afterAll(() => host.close());

  it("runs each invocation with its trace header in _X_AMZN_TRACE_ID (a new chain's without one)", async () => {
    expect(await host.invoke({}, { traceHeader: 'Root=1-a-b;Parent=c;Sampled=0;Lineage=d:3' })).toBe('Root=1-a-b;Parent=c;Sampled=0;Lineage=d:3');
    expect(await host.invoke({})).toMatch(/^Root=1-/);
  });

  it('refuses a synchronous response over 6 MB, and a request over it, as Lambda does', async () => {
    const error = await host.invoke({ big: AWS_QUOTAS.lambdaSyncPayloadBytes + 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FunctionError);
    expect((error as Error).name).toBe('Function.ResponseSizeTooLarge');
    await expect(host.invoke({ pad: 'y'.repeat(AWS_QUOTAS.lambdaSyncPayloadBytes) })).rejects.toMatchObject({ name: 'RequestEntityTooLargeException' });
  }, 60_000);
});

describe('function concurrency (function-host.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aws-stack-concurrency-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // Answers when told to: invocations stay in progress until the test releases them.
  writeFileSync(join(dir, 'index.mjs'), 'export const handler = async (event) => { await new Promise((r) => setTimeout(r, event.ms)); return "done"; };\n');
  const fn = (name: string, reservedConcurrency?: number) => ({
    logicalId: name, name, arn: `arn:aws:lambda:eu-west-1:123456789012:function:${name}`, handlerFile: join(dir, 'index.mjs'), handlerName: 'handler',
    environment: {}, timeoutSeconds: 30, memorySize: 128, roleLogicalId: 'Role', maxContainers: 1, ...(reservedConcurrency === undefined ? {} : { reservedConcurrency }),
  });

  it('throttles an invocation past the reserved concurrency, and past the unreserved pool the other functions share', async () => {
    const pool = new ConcurrencyPool(2);
    const reserved = new FunctionHost(fn('reserved', 1), { region: 'eu-west-1', account: '123456789012', pool });
    const a = new FunctionHost(fn('a'), { region: 'eu-west-1', account: '123456789012', pool });
    const b = new FunctionHost(fn('b'), { region: 'eu-west-1', account: '123456789012', pool });
    try {
      const first = reserved.invoke({ ms: 300 });
      await expect(reserved.invoke({ ms: 0 })).rejects.toMatchObject({ name: 'TooManyRequestsException', message: expect.stringContaining('ReservedFunctionConcurrentInvocationLimitExceeded') });
      // Two in progress (waiting for a's one container counts) fill the pool: b is throttled.
      const inPool = [a.invoke({ ms: 300 }), a.invoke({ ms: 0 })];
      await expect(b.invoke({ ms: 0 })).rejects.toMatchObject({ name: 'TooManyRequestsException', message: expect.stringContaining('ConcurrentInvocationLimitExceeded') });
      expect(await Promise.all([first, ...inPool])).toEqual(['done', 'done', 'done']);
      // Once they ended, both run again.
      expect(await Promise.all([reserved.invoke({ ms: 0 }), b.invoke({ ms: 0 })])).toEqual(['done', 'done']);
      expect([reserved.stats.throttles, a.stats.throttles, b.stats.throttles]).toEqual([1, 0, 1]);
    } finally {
      await Promise.all([reserved.close(), a.close(), b.close()]);
    }
  });
});

describe('the event bus', () => {
  it('refuses a PutEvents request whose entries pass 256 KB, counted as EventBridge counts them', () => {
    const bus = new RehearsalEventBus([], { account: '123456789012', region: 'eu-west-1' }, async () => undefined);
    const entry = { Source: 'branch-spawner', DetailType: 'BranchCompleted', Detail: JSON.stringify({ result: 'r'.repeat(AWS_QUOTAS.eventBridgeEntriesBytes) }), EventBusName: 'default' };
    expect(putEventsEntrySize(entry)).toBeGreaterThan(AWS_QUOTAS.eventBridgeEntriesBytes);
    expect(() => bus.putEvents([entry], () => 'default')).toThrow(PutEventsTooLargeError);
    expect(() => bus.putEvents([{ ...entry, Detail: '{}' }], () => 'default')).not.toThrow();
  });
});

describe('the endpoint and presigned S3 URLs', () => {
  it("takes the caller from a presigned URL's X-Amz-Credential, authorizes the GET as theirs, and refuses it once expired", async () => {
    const authorized: string[] = [];
    const endpoint = await startS3Endpoint((caller, action, resource) => void authorized.push(`${caller.principal} ${action} ${resource}`));
    try {
      const amzDate = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
      const presigned = (signedAt: Date, expires: number) =>
        `${endpoint.url}/bucket/blobs/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${encodeURIComponent(`WORKERKEY/${amzDate(signedAt).slice(0, 8)}/eu-west-1/s3/aws4_request`)}&X-Amz-Date=${amzDate(signedAt)}&X-Amz-Expires=${expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=abc`;
      const fresh = await fetch(presigned(new Date(), 3600));
      expect(fresh.status).toBe(200);
      expect(await fresh.text()).toMatch(/^object \/bucket\/blobs\/k\?/);
      expect(authorized).toEqual(['step-worker s3:GetObject arn:aws:s3:::bucket/blobs/k']);
      const expired = await fetch(presigned(new Date(Date.now() - 2 * 3600_000), 3600));
      expect(expired.status).toBe(403);
      expect(await expired.json()).toMatchObject({ __type: 'AccessDenied', message: 'Request has expired' });
    } finally {
      await endpoint.close();
    }
  });
});

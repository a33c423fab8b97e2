/** EventBridgePublisher on a mocked EventBridge client: entry shape, batching, sizes, retries. */
import { EventBridgeClient, EventBridgeServiceException, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BranchSpawnerError, TransientError } from '../../../core/errors';
import { branchEvent, runEvent, type EventDetails, type LifecycleEvent } from '../../../core/events';
import { anEvent } from '../../support/events';
import {
  EventBridgePublisher,
  MAX_REQUEST_BYTES,
  entrySize,
  eventFromBus,
} from '../../../adapters/eventbridge/eventbridge-publisher';

const eventBridge = mockClient(EventBridgeClient);
// The mock replaces the client class's send for the whole worker: put it back for the files after this one.
afterAll(() => eventBridge.restore());
const client = new EventBridgeClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const publisher = () => new EventBridgePublisher({ client, eventBusName: 'team-a-bus' });

/** A BranchCompleted event; its detail may carry keys no event type has (the publisher sends any detail). */
const event = (i: number, detail: Partial<EventDetails['BranchCompleted']> & Record<string, unknown> = {}): LifecycleEvent =>
  anEvent('BranchCompleted', { eventId: `e${i}`, team: 'team-a', runId: 'run1', branchId: `root.${i}`, time: 1_700_000_000_000 + i, detail });

const sentEntries = () => eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);
const allOk = (entries: PutEventsRequestEntry[] | undefined) => ({
  FailedEntryCount: 0,
  Entries: (entries ?? []).map((_, i) => ({ EventId: `e${i}` })),
});

beforeEach(() => {
  eventBridge.reset();
  eventBridge.on(PutEventsCommand).callsFake((input) => allOk(input.Entries));
});

describe('EventBridgePublisher', () => {
  it('publishes source branch-spawner, detail-type = event type, detail = envelope + detail', async () => {
    const started = runEvent('RunStarted', { team: 'team-a', runId: 'run1' }, 1_700_000_000_000, { status: 'RUNNING', name: 'x' });
    const created = branchEvent(
      'BranchCreated',
      { team: 'team-a', runId: 'run1', id: 'root.0', parentId: 'root', agent: 'A', type: 'SIMPLE', depth: 1, status: 'PENDING' },
      1_700_000_000_500,
    );
    await publisher().publish([started, created]);
    const [entries] = sentEntries();
    expect(entries).toHaveLength(2);
    expect(entries[0]).toEqual({
      Time: new Date(1_700_000_000_000),
      Source: 'branch-spawner',
      DetailType: 'RunStarted',
      EventBusName: 'team-a-bus',
      Detail: expect.any(String),
    });
    expect(JSON.parse(entries[0].Detail ?? '')).toEqual({ eventId: started.eventId, runId: 'run1', team: 'team-a', time: 1_700_000_000_000, status: 'RUNNING', name: 'x' });
    expect(JSON.parse(entries[1].Detail ?? '')).toEqual({
      eventId: created.eventId,
      runId: 'run1',
      team: 'team-a',
      branchId: 'root.0',
      time: 1_700_000_000_500,
      parentId: 'root',
      agent: 'A',
      type: 'SIMPLE',
      depth: 1,
      status: 'PENDING',
    });
    expect(entries[1].DetailType).toBe('BranchCreated');
  });

  it('an event read back off the bus (eventFromBus) is the event put', () => {
    const events = [event(0), anEvent('SyncPointReached', { branchId: 'root' }), anEvent('RunCompleted')];
    for (const e of events) {
      const entry = publisher().toEntry(e);
      expect(eventFromBus(entry.DetailType!, JSON.parse(entry.Detail!))).toEqual(e);
    }
  });

  it('the envelope wins over detail keys of the same name', async () => {
    await publisher().publish([event(0, { runId: 'spoofed', time: 0 })]);
    expect(JSON.parse(sentEntries()[0][0].Detail ?? '')).toMatchObject({ eventId: 'e0', runId: 'run1', time: 1_700_000_000_000 });
  });

  it('sends nothing for no events', async () => {
    await publisher().publish([]);
    expect(eventBridge.calls()).toHaveLength(0);
  });

  it.each([
    [10, [10]],
    [11, [10, 1]],
    [25, [10, 10, 5]],
  ])('puts %i events in requests of %j', async (count, sizes) => {
    const events = Array.from({ length: count }, (_, i) => event(i));
    await publisher().publish(events);
    expect(sentEntries().map((e) => e.length)).toEqual(sizes);
    // In order, nothing lost.
    expect(sentEntries().flat().map((e) => JSON.parse(e.Detail ?? '').branchId)).toEqual(events.map((e) => e.branchId));
  });

  it('splits by size: no request goes over 256 KB', async () => {
    // Each entry ~100 KB: two fit in a request, three do not.
    const events = Array.from({ length: 5 }, (_, i) => event(i, { result: 'r'.repeat(100 * 1024) }));
    await publisher().publish(events);
    const requests = sentEntries();
    expect(requests.map((e) => e.length)).toEqual([2, 2, 1]);
    for (const entries of requests) {
      expect(entries.reduce((sum, e) => sum + entrySize(e), 0)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    }
  });

  it('fills a request up to exactly 256 KB', async () => {
    const base = publisher().toEntry(event(0, { result: '' }));
    const half = MAX_REQUEST_BYTES / 2 - entrySize(base);
    const events = [event(0, { result: 'a'.repeat(half) }), event(1, { result: 'b'.repeat(half) }), event(2)];
    const entries = events.map((e) => publisher().toEntry(e));
    expect(entrySize(entries[0]) + entrySize(entries[1])).toBe(MAX_REQUEST_BYTES);
    await publisher().publish(events);
    expect(sentEntries().map((e) => e.length)).toEqual([2, 1]);
  });

  it('counts entry size as AWS does (Time 14 + UTF-8 bytes of Source, DetailType, Detail, Resources)', () => {
    expect(entrySize({ Time: new Date(), Source: 'ab', DetailType: 'é', Detail: '{}', Resources: ['xyz'], EventBusName: 'ignored' })).toBe(
      14 + 2 + 2 + 2 + 3,
    );
  });

  it('truncates an event too big for any request to a summary instead of failing', async () => {
    const huge = event(0, { result: { text: 'x'.repeat(300 * 1024) }, agent: 'Writer', depth: 2, note: 'n'.repeat(2000) });
    await publisher().publish([huge, event(1)]);
    const [entries] = sentEntries();
    expect(entries).toHaveLength(2);
    expect(entrySize(entries[0])).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    const detail = JSON.parse(entries[0].Detail ?? '');
    expect(detail).toEqual({
      eventId: huge.eventId,
      runId: 'run1',
      team: 'team-a',
      branchId: 'root.0',
      time: huge.time,
      parentId: 'root',
      status: 'COMPLETED',
      agent: 'Writer',
      type: 'SIMPLE',
      depth: 2,
      truncated: true,
      originalBytes: expect.any(Number),
      droppedKeys: ['result', 'note'],
    });
    expect(detail.originalBytes).toBeGreaterThan(300 * 1024);
    expect(entries[0].DetailType).toBe('BranchCompleted');
  });

  it('retries failed entries once, only those', async () => {
    eventBridge
      .on(PutEventsCommand)
      .callsFakeOnce((input) => ({
        FailedEntryCount: 1,
        Entries: (input.Entries ?? []).map((_: unknown, i: number) =>
          i === 1 ? { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' } : { EventId: `e${i}` },
        ),
      }))
      .callsFake((input) => allOk(input.Entries));
    await publisher().publish([event(0), event(1), event(2)]);
    const requests = sentEntries();
    expect(requests).toHaveLength(2);
    expect(requests[1].map((e) => JSON.parse(e.Detail ?? '').branchId)).toEqual(['root.1']);
  });

  it('throws after the retry: TransientError for throttling, BranchSpawnerError otherwise', async () => {
    const failing = (code: string) => (input: { Entries?: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: input.Entries?.length,
      Entries: (input.Entries ?? []).map(() => ({ ErrorCode: code, ErrorMessage: 'no' })),
    });
    eventBridge.on(PutEventsCommand).callsFake(failing('ThrottlingException'));
    const throttled = await publisher().publish([event(0)]).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(TransientError);
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(2);

    eventBridge.reset();
    eventBridge.on(PutEventsCommand).callsFake(failing('MalformedDetail'));
    const malformed = await publisher().publish([event(0)]).catch((e: unknown) => e);
    expect(malformed).toBeInstanceOf(BranchSpawnerError);
    expect(malformed).not.toBeInstanceOf(TransientError);
    expect((malformed as Error).message).toContain('MalformedDetail');
    expect((malformed as Error).cause).toEqual([{ ErrorCode: 'MalformedDetail', ErrorMessage: 'no' }]);
  });

  it('maps request-level SDK errors to core errors', async () => {
    const sdkError = (name: string, status: number) =>
      new EventBridgeServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
    eventBridge.on(PutEventsCommand).rejectsOnce(sdkError('InternalException', 500)).rejectsOnce(sdkError('ResourceNotFoundException', 400));
    await expect(publisher().publish([event(0)])).rejects.toBeInstanceOf(TransientError);
    const notFound = await publisher().publish([event(0)]).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(BranchSpawnerError);
    expect(notFound).not.toBeInstanceOf(TransientError);
    expect(((notFound as Error).cause as Error).name).toBe('ResourceNotFoundException');
  });
});

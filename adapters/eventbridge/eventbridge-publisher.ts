/**
 * EventPublisher on EventBridge: lifecycle events as `source: "branch-spawner"`,
 * `detail-type: <event type>`, detail `{ eventId, runId, team, branchId, time, ...detail }` (the
 * envelope survives a summarized event too: consumers drop repeats by `eventId`).
 *
 * PutEvents takes at most 10 entries and 256 KB per request (entry size as AWS computes it).
 * An event whose own entry is over 256 KB (say, a huge branch result) is not dropped and does not
 * fail the run: it is published with a summary detail — its scalar fields (strings up to 1 KB)
 * plus `truncated: true`, `originalBytes` and `droppedKeys` — and consumers that need the full
 * value read it from the API. Entries the service rejects are retried once, then reported.
 */
import { isTransientAwsError, toCoreError as awsError } from '../aws-errors';
import { again, withRetries } from '../retry';
import {
  PutEventsCommand,
  type EventBridgeClient,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { jsonBytes } from '../../core/bounded-value';
import { BranchSpawnerError, TransientError } from '../../core/errors';
import { EVENT_SOURCE, type LifecycleEvent } from '../../core/events';
import type { EventPublisher } from '../../core/ports';

export const MAX_ENTRIES_PER_REQUEST = 10;
export const MAX_REQUEST_BYTES = 256 * 1024;
/** Scalar strings longer than this are left out of a truncated event's summary. */
const SUMMARY_STRING_LIMIT = 1024;
/** PutEvents attempts for entries the service failed (the first try and one retry). */
const PUT_ATTEMPTS = 2;

export interface EventBridgePublisherOptions {
  client: EventBridgeClient;
  eventBusName: string;
  /** Default "branch-spawner". */
  source?: string;
}

export class EventBridgePublisher implements EventPublisher {
  private readonly client: EventBridgeClient;
  private readonly eventBusName: string;
  private readonly source: string;

  constructor(options: EventBridgePublisherOptions) {
    this.client = options.client;
    this.eventBusName = options.eventBusName;
    this.source = options.source ?? EVENT_SOURCE;
  }

  async publish(events: LifecycleEvent[]): Promise<void> {
    const entries = events.map((event) => this.toEntry(event));
    // In order, one request after the other: consumers see events in the order they happened.
    for (const batch of batches(entries)) await this.put(batch);
  }

  /** The PutEvents entry for an event, summarized if it would not fit a request on its own. */
  toEntry(event: LifecycleEvent): PutEventsRequestEntry {
    const envelope = { eventId: event.eventId, runId: event.runId, team: event.team, branchId: event.branchId, time: event.time };
    const detail = { ...envelope, ...withoutKeys(event.detail, Object.keys(envelope)) };
    const entry: PutEventsRequestEntry = {
      Time: new Date(event.time),
      Source: this.source,
      DetailType: event.type,
      Detail: JSON.stringify(detail),
      EventBusName: this.eventBusName,
    };
    const size = entrySize(entry);
    if (size <= MAX_REQUEST_BYTES) return entry;
    return { ...entry, Detail: JSON.stringify(summarize(envelope, event.detail, size)) };
  }

  private async put(batch: PutEventsRequestEntry[]): Promise<void> {
    let pending = batch;
    await withRetries({ attempts: PUT_ATTEMPTS, baseMs: 50, maxMs: 1_000 }, async (_attempt, last) => {
      let response;
      try {
        response = await this.client.send(new PutEventsCommand({ Entries: pending }));
      } catch (error) {
        throw toCoreError(error);
      }
      if (!response.FailedEntryCount) return;
      // Results line up with the request's entries; failed ones carry an ErrorCode.
      const failed = pending
        .map((entry, i) => ({ entry, result: response.Entries?.[i] ?? { ErrorCode: 'Unknown' } }))
        .filter((f) => f.result.ErrorCode);
      if (!last) {
        pending = failed.map((f) => f.entry);
        return again();
      }
      const codes = failed.map((f) => `${f.entry.DetailType}: ${f.result.ErrorCode}${f.result.ErrorMessage ? ` (${f.result.ErrorMessage})` : ''}`);
      const message = `PutEvents failed for ${failed.length} event(s) after a retry: ${codes.join('; ')}`;
      const cause = failed.map((f) => f.result);
      // An entry's ErrorCode is an AWS error name: transient by the one rule (adapters/aws-errors.ts).
      if (failed.every((f) => isTransientAwsError({ name: f.result.ErrorCode }))) throw new TransientError(message, { cause });
      throw new BranchSpawnerError(message, { cause });
    });
  }
}

/**
 * The lifecycle event an entry of this publisher carries, read back off the bus (the rehearsal's
 * rules): toEntry's envelope fields are the event's, the rest its detail (a summarized entry's
 * detail is the summary).
 */
export function eventFromBus(detailType: string, detail: unknown): LifecycleEvent {
  const { eventId, runId, team, branchId, time, ...rest } = detail as Record<string, unknown>;
  // Put by toEntry from a LifecycleEvent: its type and detail go together as they were.
  return { eventId, type: detailType, runId, team, branchId, time, detail: rest } as LifecycleEvent;
}

/**
 * Bytes PutEvents counts for an entry: 14 for Time, plus the UTF-8 bytes of Source, DetailType,
 * Detail and each Resource (EventBusName is not counted).
 */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time ? 14 : 0;
  for (const text of [entry.Source, entry.DetailType, entry.Detail, ...(entry.Resources ?? [])]) {
    if (text) size += Buffer.byteLength(text, 'utf8');
  }
  return size;
}

/** Groups of at most 10 entries and 256 KB. Every entry is at most 256 KB by construction. */
function batches(entries: PutEventsRequestEntry[]): PutEventsRequestEntry[][] {
  const result: PutEventsRequestEntry[][] = [];
  let current: PutEventsRequestEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entrySize(entry);
    if (current.length && (current.length === MAX_ENTRIES_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES)) {
      result.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length) result.push(current);
  return result;
}

function summarize(envelope: Record<string, unknown>, detail: object, originalBytes: number) {
  const kept: Record<string, unknown> = {};
  const droppedKeys: string[] = [];
  for (const [key, value] of Object.entries(withoutKeys(detail, Object.keys(envelope)))) {
    const scalar =
      value === null ||
      typeof value === 'number' ||
      typeof value === 'boolean' ||
      (typeof value === 'string' && value.length <= SUMMARY_STRING_LIMIT);
    if (scalar) kept[key] = value;
    else droppedKeys.push(key);
  }
  const summary = { ...envelope, ...kept, truncated: true, originalBytes, droppedKeys };
  // Thousands of small fields could still be too big: then only the envelope survives.
  if (jsonBytes(summary) <= MAX_REQUEST_BYTES / 2) return summary;
  return { ...envelope, truncated: true, originalBytes, droppedKeys: Object.keys(detail) };
}

function withoutKeys(record: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !keys.includes(key)));
}

function toCoreError(error: unknown): BranchSpawnerError {
  return awsError(error, 'EventBridge PutEvents failed');
}

/**
 * EventBridge for the rehearsal: PutEvents onto the template's buses, rules' event patterns
 * applied, Lambda targets invoked asynchronously (with the function's async retries and its
 * dead-letter queue, as Lambda does).
 */
import { randomUUID } from 'node:crypto';
import { AWS_QUOTAS } from './aws-quotas';

/** Refused as EventBridge refuses it (the whole request). */
export class PutEventsTooLargeError extends Error {
  constructor(bytes: number) {
    super(`Total size of the entries in the request is over the limit (${bytes} > ${AWS_QUOTAS.eventBridgeEntriesBytes} bytes).`);
    this.name = 'ValidationException';
  }
}

/** A PutEvents entry's size as EventBridge counts it: Time 14 bytes, then Source, DetailType, Detail and Resources in UTF-8. */
export function putEventsEntrySize(entry: PutEventsEntry): number {
  const bytes = (s: string | undefined) => (s === undefined ? 0 : Buffer.byteLength(s));
  return (entry.Time === undefined ? 0 : 14) + bytes(entry.Source) + bytes(entry.DetailType) + bytes(entry.Detail) + (entry.Resources ?? []).reduce((n, r) => n + bytes(r), 0);
}

export interface BusEvent {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: unknown;
}

export interface RehearsalRule {
  arn: string;
  name: string;
  busName: string;
  pattern: Record<string, unknown>;
  enabled: boolean;
  targets: { arn: string }[];
}

/** Does an event match an EventBridge pattern (exact values, prefix, anything-but, exists, nested fields)? */
export function matchesPattern(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, expected]) => {
    const actual = event?.[key];
    if (Array.isArray(expected)) {
      const values = Array.isArray(actual) ? actual : [actual];
      return expected.some((rule) => values.some((v) => matchesValue(rule, v, actual !== undefined)));
    }
    if (expected && typeof expected === 'object') {
      return actual !== null && typeof actual === 'object' && matchesPattern(expected as Record<string, unknown>, actual as Record<string, unknown>);
    }
    return false;
  });
}

function matchesValue(rule: unknown, value: unknown, present: boolean): boolean {
  if (rule === null || typeof rule !== 'object') return present && rule === value;
  const r = rule as Record<string, unknown>;
  if ('exists' in r) return r.exists === present;
  if (!present) return false;
  if ('prefix' in r) return typeof value === 'string' && value.startsWith(String(r.prefix));
  if ('suffix' in r) return typeof value === 'string' && value.endsWith(String(r.suffix));
  if ('anything-but' in r) {
    const but = r['anything-but'];
    return Array.isArray(but) ? !but.includes(value) : but !== value;
  }
  if ('equals-ignore-case' in r) return typeof value === 'string' && value.toLowerCase() === String(r['equals-ignore-case']).toLowerCase();
  return false;
}

export interface PutEventsEntry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  EventBusName?: string;
  Resources?: string[];
  Time?: number | string;
}

export class RehearsalEventBus {
  private readonly listeners: ((event: BusEvent, bus: string) => void)[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly rules: RehearsalRule[],
    private readonly env: { region: string; account: string },
    /** Delivers an event to a rule's Lambda target (async invoke). */
    private readonly deliver: (rule: RehearsalRule, targetArn: string, event: BusEvent) => Promise<void>,
  ) {}

  /** Every event put on any bus (the rehearsal watches lifecycle events this way). */
  subscribe(listener: (event: BusEvent, bus: string) => void): void {
    this.listeners.push(listener);
  }

  putEvents(entries: PutEventsEntry[], busNameOf: (name: string | undefined) => string | undefined) {
    const total = entries.reduce((n, entry) => n + putEventsEntrySize(entry), 0);
    if (total > AWS_QUOTAS.eventBridgeEntriesBytes) throw new PutEventsTooLargeError(total);
    const results = entries.map((entry) => {
      const bus = busNameOf(entry.EventBusName);
      if (!bus) return { ErrorCode: 'ResourceNotFoundException', ErrorMessage: `Event bus ${entry.EventBusName} does not exist.` };
      let detail: unknown;
      try {
        detail = JSON.parse(entry.Detail ?? '{}');
      } catch {
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
      }
      if (!entry.Source || !entry.DetailType) return { ErrorCode: 'InvalidArgument', ErrorMessage: 'Source and DetailType are required.' };
      const time = entry.Time === undefined ? new Date() : new Date(typeof entry.Time === 'number' ? entry.Time * 1000 : entry.Time);
      const event: BusEvent = {
        version: '0',
        id: randomUUID(),
        'detail-type': entry.DetailType,
        source: entry.Source,
        account: this.env.account,
        time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        region: this.env.region,
        resources: entry.Resources ?? [],
        detail,
      };
      for (const listener of this.listeners) listener(event, bus);
      for (const rule of this.rules) {
        if (!rule.enabled || rule.busName !== bus || !matchesPattern(rule.pattern, event as unknown as Record<string, unknown>)) continue;
        for (const target of rule.targets) {
          const delivery: Promise<void> = this.deliver(rule, target.arn, event).finally(() => this.inFlight.delete(delivery));
          this.inFlight.add(delivery);
        }
      }
      return { EventId: event.id };
    });
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  }

  /** Deliveries to targets in flight now. */
  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }
}

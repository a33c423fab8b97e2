/** LocalEventBus: in-process subscribers for the embedded runtime. */
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../../core/events';
import { anEvent } from '../../support/events';
import { LocalEventBus } from '../../../adapters/events/local-event-bus';

const event = (i: number, type: 'BranchCreated' | 'BranchCompleted' = 'BranchCreated'): LifecycleEvent =>
  anEvent(type, { eventId: `e${i}`, branchId: `root.${i}`, time: 1_700_000_000_000 + i, detail: { depth: 1, agent: 'ünïcode ✓' } });

describe('LocalEventBus', () => {
  it('delivers every event, in order, to every subscriber', async () => {
    const bus = new LocalEventBus();
    const a: string[] = [];
    const b: string[] = [];
    bus.subscribe((e) => void a.push(e.branchId as string));
    bus.subscribe(async (e) => void b.push(e.branchId as string));
    await bus.publish([event(0), event(1)]);
    await bus.publish([event(2)]);
    expect(a).toEqual(['root.0', 'root.1', 'root.2']);
    expect(b).toEqual(a);
  });

  it('unsubscribe stops delivery to that subscriber only', async () => {
    const bus = new LocalEventBus();
    const seen: string[] = [];
    const stop = bus.subscribe((e) => void seen.push(`a:${e.branchId}`));
    bus.subscribe((e) => void seen.push(`b:${e.branchId}`));
    await bus.publish([event(0)]);
    stop();
    stop(); // twice is harmless
    await bus.publish([event(1)]);
    expect(seen).toEqual(['a:root.0', 'b:root.0', 'b:root.1']);
    expect(bus.subscriberCount).toBe(1);
  });

  it('a throwing or rejecting subscriber breaks neither publishing nor the others', async () => {
    const failures: [string, string][] = [];
    const bus = new LocalEventBus({ onSubscriberError: (error, e) => failures.push([(error as Error).message, e.branchId as string]) });
    const seen: string[] = [];
    bus.subscribe(() => {
      throw new Error('sync boom');
    });
    bus.subscribe(async () => {
      throw new Error('async boom');
    });
    bus.subscribe((e) => void seen.push(e.branchId as string));
    await expect(bus.publish([event(0), event(1)])).resolves.toBeUndefined();
    expect(seen).toEqual(['root.0', 'root.1']);
    expect(failures).toEqual([
      ['sync boom', 'root.0'],
      ['async boom', 'root.0'],
      ['sync boom', 'root.1'],
      ['async boom', 'root.1'],
    ]);
  });

  it('survives an error reporter that throws', async () => {
    const bus = new LocalEventBus({
      onSubscriberError: () => {
        throw new Error('reporter broken');
      },
    });
    bus.subscribe(() => {
      throw new Error('boom');
    });
    await expect(bus.publish([event(0)])).resolves.toBeUndefined();
  });

  it('awaits async subscribers before resolving (the trace is complete when publish returns)', async () => {
    const bus = new LocalEventBus();
    let handled = 0;
    bus.subscribe(async () => {
      await Promise.resolve();
      handled++;
    });
    await bus.publish([event(0), event(1)]);
    expect(handled).toBe(2);
  });

  it('a subscriber added while publishing sees the next event, not the current one', async () => {
    const bus = new LocalEventBus();
    const late: string[] = [];
    bus.subscribe(() => {
      if (late.length === 0) bus.subscribe((e) => void late.push(e.branchId as string));
    });
    await bus.publish([event(0), event(1)]);
    expect(late[0]).toBe('root.1');
  });
});

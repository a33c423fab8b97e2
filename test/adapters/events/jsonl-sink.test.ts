/** JsonlSink: the --trace file, one JSON line per lifecycle event (written to a temp dir). */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BranchSpawnerError } from '../../../core/errors';
import type { LifecycleEvent } from '../../../core/events';
import { anEvent } from '../../support/events';
import { JsonlSink } from '../../../adapters/events/jsonl-sink';
import { LocalEventBus } from '../../../adapters/events/local-event-bus';

const event = (i: number, type: 'BranchCreated' | 'BranchCompleted' = 'BranchCreated'): LifecycleEvent =>
  anEvent(type, { eventId: `e${i}`, branchId: `root.${i}`, time: 1_700_000_000_000 + i, detail: { depth: 1, agent: 'ünïcode ✓' } });

describe('JsonlSink', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jsonl-sink-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lines = async (path: string) =>
    (await readFile(path, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LifecycleEvent);

  it('appends one JSON line per event, in publish order, as a bus subscriber', async () => {
    const path = join(dir, 'nested', 'trace.jsonl');
    const sink = new JsonlSink(path);
    const bus = new LocalEventBus();
    bus.subscribe(sink.subscriber);
    const events = Array.from({ length: 50 }, (_, i) => event(i, i % 2 ? 'BranchCompleted' : 'BranchCreated'));
    await bus.publish(events.slice(0, 20));
    await bus.publish(events.slice(20));
    await sink.close();
    expect(await lines(path)).toEqual(events);
    const raw = await readFile(path, 'utf8');
    expect(raw.endsWith('\n')).toBe(true);
    expect(raw.split('\n')).toHaveLength(51);
  });

  it('keeps the order of writes issued without awaiting, and flush waits for them', async () => {
    const path = join(dir, 'trace.jsonl');
    const sink = new JsonlSink(path);
    for (let i = 0; i < 30; i++) void sink.write(event(i));
    await sink.flush();
    expect((await lines(path)).map((e) => e.branchId)).toEqual(Array.from({ length: 30 }, (_, i) => `root.${i}`));
    await sink.close();
  });

  it('appends to an existing file', async () => {
    const path = join(dir, 'trace.jsonl');
    await writeFile(path, `${JSON.stringify(event(0))}\n`);
    const sink = new JsonlSink(path);
    await sink.write(event(1));
    await sink.close();
    expect((await lines(path)).map((e) => e.branchId)).toEqual(['root.0', 'root.1']);
  });

  it('refuses writes after close; closing twice is fine; an unused sink creates no file', async () => {
    const path = join(dir, 'trace.jsonl');
    const sink = new JsonlSink(path);
    await sink.close();
    await sink.close();
    await expect(sink.write(event(0))).rejects.toBeInstanceOf(BranchSpawnerError);
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a file it cannot write on write and on flush, without crashing the bus', async () => {
    const blocker = join(dir, 'not-a-dir');
    await writeFile(blocker, 'x');
    const sink = new JsonlSink(join(blocker, 'trace.jsonl'));
    const failures: unknown[] = [];
    const bus = new LocalEventBus({ onSubscriberError: (error) => failures.push(error) });
    bus.subscribe(sink.subscriber);
    await bus.publish([event(0)]);
    expect(failures).toHaveLength(1);
    await expect(sink.flush()).rejects.toBeInstanceOf(BranchSpawnerError);
    await expect(sink.close()).resolves.toBeUndefined();
  });
});

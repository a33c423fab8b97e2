import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

/** Largest number of intervals [start, end) open at one time. */
function peakOverlap(intervals: [number, number][]): number {
  const points = intervals.flatMap(([s, e]) => [[s, 1], [e, -1]] as [number, number][]);
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // ends before starts at the same instant
  let open = 0;
  let peak = 0;
  for (const [, d] of points) peak = Math.max(peak, (open += d));
  return peak;
}

describe('a 150-child fan-out with maxConcurrentBranches 10', () => {
  it('completes with all 150 results and never runs more than 10 children at once (from the trace)', async () => {
    const trace = join(mkdtempSync(join(tmpdir(), 'bs-trace-')), 'run.jsonl');
    const io = captureIo();
    const code = await main(['run', 'examples/wide-fan-out.yaml', '--json', '--trace', trace], io);
    expect(code, io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    expect(doc.status).toBe('COMPLETED');
    expect(doc.result.child_count).toBe(150);
    expect(Object.keys(doc.result.results)).toHaveLength(150);
    expect(doc.metrics.totalCreated).toBe(151);

    const events = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LifecycleEvent);
    const ends = events.filter((e) => e.type === 'BranchCompleted').filter((e) => e.branchId !== 'root');
    expect(ends).toHaveLength(150);
    const intervals = ends.map((e): [number, number] => [e.detail.startedAt!, e.detail.endedAt!]);
    const peak = peakOverlap(intervals);
    expect(peak).toBeLessThanOrEqual(10);
    expect(peak).toBeGreaterThan(1); // they did run in parallel
  });
});

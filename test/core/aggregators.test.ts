import { describe, expect, it } from 'vitest';
import { aggregate, AggregatorRegistry, defaultAggregate, weightedAverage, type ChildResult } from '../../core/aggregators';
import { AggregationError } from '../../core/errors';

const ok = (branchId: string, result: unknown): ChildResult => ({ branchId, agent: 'A', status: 'COMPLETED', result });
const bad = (branchId: string, error: string, status: ChildResult['status'] = 'FAILED'): ChildResult => ({
  branchId, agent: 'A', status, error,
});

describe('default aggregate', () => {
  it('has the documented shape and leaves cancelled children out', () => {
    const out = defaultAggregate(
      [ok('root.0', 'a'), bad('root.1', 'boom'), bad('root.2', 'cancelled', 'CANCELLED'), bad('root.3', 'late', 'TIMED_OUT')],
      { waitFor: 'all', metadata: { pattern: 'hierarchical' } },
    );
    expect(out).toEqual({
      child_count: 3,
      results: { 'root.0': 'a' },
      failures: { 'root.1': 'boom', 'root.3': 'late' },
      metadata: { aggregation_method: 'default', succeeded: 1, failed: 2, cancelled: 1, wait_for: 'all', pattern: 'hierarchical' },
    });
  });
});

describe('weighted_average', () => {
  it('weights default to 1', () => {
    expect(weightedAverage([ok('a', { value: 10, weight: 3 }), ok('b', { value: 2 })])).toEqual({
      weighted_average: 8,
      total_weight: 4,
    });
  });

  it('ignores failed children and refuses results without a numeric value', () => {
    expect(weightedAverage([ok('a', { value: 4 }), bad('b', 'x')])).toEqual({ weighted_average: 4, total_weight: 1 });
    expect(() => weightedAverage([ok('a', 'four')])).toThrow(AggregationError);
    expect(() => weightedAverage([ok('a', { value: 1, weight: 0 })])).toThrow(/total weight/);
  });
});

describe('registry', () => {
  it('runs a registered aggregator over the included children and wraps its errors', () => {
    const registry = new AggregatorRegistry({
      count: (children) => children.length,
      broken: () => {
        throw new Error('nope');
      },
    });
    const children = [ok('a', 1), bad('b', 'c', 'CANCELLED')];
    expect(aggregate({ kind: 'registered', name: 'count' }, children, { waitFor: 'any' }, registry)).toBe(1);
    expect(() => aggregate({ kind: 'registered', name: 'broken' }, children, { waitFor: 'all' }, registry)).toThrow(/broken" threw: nope/);
    expect(() => aggregate({ kind: 'registered', name: 'missing' }, children, { waitFor: 'all' }, registry)).toThrow(AggregationError);
  });

  it('refuses reserved names', () => {
    expect(() => new AggregatorRegistry({ default: () => 1 })).toThrow(/reserved/);
  });

  it('the agent: descriptor gives the default aggregate as the aggregator agent input', () => {
    const out = aggregate({ kind: 'agent', agent: 'Judge' }, [ok('a', 1)], { waitFor: 'all' }, new AggregatorRegistry());
    expect(out).toMatchObject({ child_count: 1, results: { a: 1 } });
  });
});

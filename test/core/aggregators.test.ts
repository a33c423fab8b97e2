import { describe, expect, it } from 'vitest';
import { aggregate, AggregatorRegistry, askCompletion, continueAggregate, defaultAggregate, weightedAverage, type ChildResult } from '../../core/aggregators';
import { primaryOrBothBackups } from '../../examples/aggregators';
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

describe('completion functions (complete_when "fn:<name>")', () => {
  const running = (branchId: string): ChildResult => ({ branchId, agent: 'A', status: 'RUNNING' });
  const registry = new AggregatorRegistry({
    primaryOrBothBackups,
    throws: () => {
      throw new Error('no idea');
    },
    vague: () => 'yes',
  });
  const context = { waitFor: 'all' as const };

  it('are asked with every child as it is, and answer done or not', () => {
    expect(askCompletion(registry, 'primaryOrBothBackups', [ok('root.0', 1), running('root.1'), running('root.2')], context)).toEqual({ met: true });
    expect(askCompletion(registry, 'primaryOrBothBackups', [bad('root.0', 'x'), ok('root.1', 1), running('root.2')], context)).toEqual({ met: false });
    expect(askCompletion(registry, 'primaryOrBothBackups', [bad('root.0', 'x'), ok('root.1', 1), ok('root.2', 2)], context)).toEqual({ met: true });
  });

  it('a throw, an answer that is not a boolean or a missing function is an error (it fails the parent)', () => {
    expect(askCompletion(registry, 'throws', [], context)).toEqual({ error: 'the completion function "throws" threw: no idea' });
    expect(askCompletion(registry, 'vague', [], context)).toEqual({ error: 'the completion function "vague" must return true or false, got string' });
    expect(askCompletion(registry, 'ghost', [], context)).toEqual({ error: 'the completion function "ghost" is not registered' });
  });

  it('"fn:" names are reserved: a function is registered under its own name', () => {
    expect(() => new AggregatorRegistry({ 'fn:x': () => true })).toThrow(/reserved/);
  });
});

describe('the aggregate a parent gets with on_failure continue', () => {
  it('adds the completion reason and each child\'s agent, status and error to the aggregate', () => {
    const children = [ok('root.0', 'a'), bad('root.1', 'boom'), bad('root.2', 'the sync point was settled without it', 'CANCELLED')];
    const out = continueAggregate(defaultAggregate(children, { waitFor: 'all' }), 'FAILURE_TOLERANCE_EXCEEDED', children);
    expect(out).toMatchObject({
      results: { 'root.0': 'a' },
      failures: { 'root.1': 'boom' },
      completion_reason: 'FAILURE_TOLERANCE_EXCEEDED',
      children: {
        'root.0': { agent: 'A', status: 'COMPLETED' },
        'root.1': { agent: 'A', status: 'FAILED', error: 'boom' },
        'root.2': { agent: 'A', status: 'CANCELLED', error: 'the sync point was settled without it' },
      },
    });
  });

  it('an aggregate that is not an object is kept under "aggregate"', () => {
    expect(continueAggregate('a+b', 'ALL_COMPLETED', [ok('root.0', 'a')])).toEqual({
      aggregate: 'a+b',
      completion_reason: 'ALL_COMPLETED',
      children: { 'root.0': { agent: 'A', status: 'COMPLETED' } },
    });
  });
});

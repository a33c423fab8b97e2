/**
 * A fan-in reads what the aggregate needs of each child (its status, result and error), never
 * its input or memory: a wide fan-in of children with long conversations would otherwise hold
 * every child's whole state at once. Counted on the blob store: each child's input and memory
 * are past the claim-check threshold, so reading one is a blob read that can be seen.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../adapters/blobs/memory-blob-store';
import { RUN_SK, type Item } from '../../adapters/dynamodb/item-codec';
import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import type { Scope } from '../../core/model';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

const BLOB = '@blob:';

describe('the fan-in of a sync point', () => {
  it("reads each child's outcome, not its input or memory", async () => {
    let settling = false;
    const readWhileSettling: string[] = [];
    class CountedBlobs extends MemoryBlobStore {
      override async get(scope: Scope, ref: string): Promise<string> {
        if (settling) readWhileSettling.push(ref);
        return super.get(scope, ref);
      }
    }
    // The blobs of the children's inputs and memories, as the store wrote them; counted from the
    // settlement's start to the run's end (the test reads every branch whole after that).
    const childValues = new Map<string, string>();
    const onPut = (item: Item) => {
      if (item.SK === RUN_SK && item.status !== 'RUNNING') settling = false;
      if (item.entity !== 'BRANCH' || typeof item.parentId !== 'string') return;
      for (const field of ['input', 'memory']) {
        const value = item[field];
        if (typeof value === 'string' && value.startsWith(BLOB)) childValues.set(value.slice(BLOB.length), `${item.id} ${field}`);
      }
    };
    const store = new MemoryBranchStore({ blobs: new CountedBlobs(), onPut });
    const h = createMemoryHarness({
      store,
      faults: {
        hit: (point) => {
          if (point === 'inside-aggregate') settling = true;
        },
      },
    });
    const agents = scriptAgents({
      Boss: {
        allowed: ['Worker'],
        responses: [
          { next_action: 'parallel_invoke', branches: [0, 1, 2, 3].map((i) => ({ agent: 'Worker', input: `${i}:${'p'.repeat(3_000)}` })) },
          { next_action: 'final_response', content: '$input' },
        ],
      },
      Worker: { responses: [{ next_action: 'final_response', content: { v: 1 } }] },
    });
    try {
      const outcome = await h.run({ name: 'fan-in-reads', request: 'x', entry: 'Boss', agents });
      expect(outcome.run.status).toBe('COMPLETED');
      expect((outcome.run.result as { child_count: number }).child_count).toBe(4);
      // Each child's input and memory were stored apart (so a read of either is seen).
      expect([...childValues.values()].sort()).toEqual(['root.0 input', 'root.0 memory', 'root.1 input', 'root.1 memory', 'root.2 input', 'root.2 memory', 'root.3 input', 'root.3 memory']);
      expect(readWhileSettling.length).toBeGreaterThan(0);
      expect(readWhileSettling.map((ref) => childValues.get(ref)).filter(Boolean)).toEqual([]);
    } finally {
      h.stop();
    }
  });
});

/**
 * The run document (`run --json`, `resume --json`, the library) is read a page of branches at a
 * time, so that a wide run's inputs and memories are never all decoded at once: it must be the
 * same document as the one built from every branch read whole, across pages and in natural id
 * order (root.2 before root.10), agent chains included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalSpawner, type LocalSpawner } from '../../local/library';
import { runDocument } from '../../local/run-command';

let spawner: LocalSpawner;
beforeAll(async () => {
  spawner = await startLocalSpawner();
});
afterAll(() => spawner.close());

describe('the run document of a wide run', () => {
  it('is the document of every branch read whole, across pages, in natural id order', async () => {
    const children = 1_201;
    const doc = await spawner.run({
      name: 'wide-document',
      request: 'go',
      entry: 'Fanner',
      limits: { maxFanOut: children, maxBranches: children + 1, maxConcurrentBranches: 200 },
      agents: {
        Fanner: {
          kind: 'script',
          allowed: ['Worker', 'Helper'],
          rules: [{ when: 'child_count', responses: [{ next_action: 'final_response', content: '$input' }] }],
          responses: [{ next_action: 'parallel_invoke', branches: [{ agent: 'Helper', input: 'hand me over' }, ...Array(children - 1).fill({ agent: 'Worker', input: 'work' })] }],
        },
        // A hand-off: the child's agent chain (Helper → Worker) is worked out from its memory.
        Helper: { kind: 'script', allowed: ['Worker'], responses: [{ next_action: 'invoke_agent', agent: 'Worker', input: 'yours' }] },
        Worker: { kind: 'script', responses: [{ next_action: 'final_response', content: { v: 1 } }] },
      },
    });
    expect(doc.status).toBe('COMPLETED');
    const { runtime } = spawner;
    const run = (await runtime.deps.store.getRun({ team: runtime.team, runId: doc.runId }))!;
    const whole = runDocument(run, await runtime.deps.store.listBranches({ team: runtime.team, runId: doc.runId }));
    expect(doc).toEqual(whole);
    expect(doc.branches).toHaveLength(children + 1);
    expect(doc.branches.slice(0, 4).map((b) => b.id)).toEqual(['root', 'root.0', 'root.1', 'root.2']);
    expect(doc.branches[11].id).toBe('root.10');
    expect(doc.branches[1].agentChain).toEqual(['Helper', 'Worker']);
  });
});

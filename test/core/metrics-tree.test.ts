import { describe, expect, it } from 'vitest';
import { computeMetrics } from '../../core/metrics';
import type { BranchRecord } from '../../core/model';
import { agentLabel, buildTree, flattenTree, renderAscii, renderMermaid } from '../../core/tree';

const b = (id: string, parentId: string | null, status: BranchRecord['status'], agent = 'A'): BranchRecord => ({
  team: 't', runId: 'r', id, parentId, parentSeq: parentId ? 1 : null, depth: id.split('.').length - 1,
  type: 'SIMPLE', entryAgent: agent, agent, status, version: 1, stepCount: 1, invalidCount: 0, refusalCount: 0,
  input: null, memory: [], childCount: 0, createdAt: 0,
});

const branches = [
  b('root', null, 'COMPLETED', 'Planner'),
  b('root.0', 'root', 'COMPLETED', 'Lead'),
  b('root.1', 'root', 'FAILED', 'Lead'),
  b('root.0.0', 'root.0', 'COMPLETED', 'Worker'),
  b('root.0.1', 'root.0', 'CANCELLED', 'Worker'),
  b('root.10', 'root', 'RUNNING', 'Lead'),
];

describe('metrics', () => {
  it('computes the seed metrics from branches', () => {
    const m = computeMetrics(branches);
    expect(m).toMatchObject({
      totalCreated: 6,
      activeCount: 1,
      maxDepth: 2,
      avgDepth: 1.17,
      successRate: 75,
      completed: 3,
      failed: 1,
      cancelled: 1,
      fanOut: { spawns: 2, maxWidth: 3, avgWidth: 2.5 },
      steps: 6,
    });
  });
});

describe('metrics: success rate', () => {
  it('is null when no branch ended (0/0), e.g. all cancelled or none ended yet', () => {
    expect(computeMetrics([b('root', null, 'CANCELLED', 'A'), b('root.0', 'root', 'CANCELLED', 'B')]).successRate).toBeNull();
    expect(computeMetrics([b('root', null, 'RUNNING', 'A')]).successRate).toBeNull();
    expect(computeMetrics([]).successRate).toBeNull();
    expect(computeMetrics([b('root', null, 'FAILED', 'A'), b('root.0', 'root', 'CANCELLED', 'B')]).successRate).toBe(0);
  });
});

describe('hand-off chains: one rule in every view', () => {
  const memory = (...agents: string[]) => agents.flatMap((agent) => [
    { role: 'user' as const, agent, content: 'in' },
    { role: 'assistant' as const, agent, content: 'out' },
  ]);
  const handedOff: BranchRecord = { ...b('root', null, 'COMPLETED', 'Editor'), entryAgent: 'Writer', memory: memory('Writer', 'Editor') };

  it('the JSON tree keeps the current agent and lists the chain apart', () => {
    expect(buildTree([handedOff])[0]).toMatchObject({ agent: 'Editor', agentChain: ['Writer', 'Editor'] });
  });

  it('the ASCII tree and Mermaid show the same label', () => {
    expect(renderAscii([handedOff])).toBe('root Writer → Editor (simple) [COMPLETED]');
    expect(renderMermaid([handedOff])).toContain('n0["Writer → Editor<br/>root · COMPLETED"]');
  });

  it('shortens a long conversation and leaves inherited memory out', () => {
    expect(agentLabel(['A', 'B', 'A', 'B', 'A', 'B'])).toBe('A → … → B (6 turns)');
    const inherited = { ...b('root.0', 'root', 'RUNNING', 'Worker'), memory: [{ role: 'user' as const, agent: 'Lead', content: 'x', inherited: true }] };
    expect(buildTree([inherited])[0].agentChain).toEqual(['Worker']);
  });
});

describe('tree views', () => {
  it('ASCII orders children by spawn index and shows statuses', () => {
    expect(renderAscii(branches)).toBe(
      [
        'root Planner (simple) [COMPLETED]',
        '├─ root.0 Lead (simple) [COMPLETED]',
        '│  ├─ root.0.0 Worker (simple) [COMPLETED]',
        '│  └─ root.0.1 Worker (simple) [CANCELLED]',
        '├─ root.1 Lead (simple) [FAILED]',
        '└─ root.10 Lead (simple) [RUNNING]',
      ].join('\n'),
    );
  });

  it('Mermaid has a node per branch, an edge per parent link and status classes', () => {
    const text = renderMermaid(branches);
    expect(text.startsWith('flowchart TD')).toBe(true);
    expect(text.match(/-->/g)).toHaveLength(5);
    expect(text).toContain('classDef FAILED');
    expect(text).toContain('["Planner<br/>root · COMPLETED"]:::COMPLETED');
  });

  it('JSON nests children', () => {
    const [root] = buildTree(branches);
    expect(root.children.map((c) => c.id)).toEqual(['root.0', 'root.1', 'root.10']);
    expect(root.children[0].children).toHaveLength(2);
  });

  it('the JSON flattened again draws the same tree, also when its nodes name no parentId (an API from before tree pages)', () => {
    const nodes = buildTree(branches);
    expect(renderAscii(flattenTree(nodes))).toBe(renderAscii(branches));
    const strip = (node: any): any => ({ ...node, parentId: undefined, children: node.children.map(strip) });
    expect(renderAscii(flattenTree(nodes.map(strip)))).toBe(renderAscii(branches));
  });
});

/** Tree views of a run's branches: ASCII, Mermaid and JSON, and how every view names a branch's agents. */
import { compareIds, isTerminal, type BranchRecord, type BranchStatus, type BranchType } from './model';

export type TreeBranch = Pick<BranchRecord, 'id' | 'parentId' | 'agent' | 'type' | 'status' | 'depth'> &
  Partial<Pick<BranchRecord, 'result' | 'entryAgent' | 'memory' | 'suspended'>> & {
    error?: string | null;
    /** What the branch waits on (a branch view has it instead of `suspended`). */
    waiting?: { kind: 'wait' | 'callback'; until: number } | null;
    /** The chain already worked out (a branch view read from the API has it instead of the memory). */
    agentChain?: readonly string[];
  };

export interface TreeNode {
  id: string;
  /** The parent's id (null for the root): a page of a tree names where each of its tops hangs. */
  parentId: string | null;
  /** The current agent (the last of `agentChain`). */
  agent: string;
  /** Every agent the branch ran, first to last: its entry agent, then each hand-off. */
  agentChain: string[];
  type: BranchType;
  status: BranchStatus;
  depth: number;
  error?: string;
  /** Set while the branch is suspended: on a durable wait, or awaiting a callback. */
  waiting?: { kind: 'wait' | 'callback'; until: number };
  children: TreeNode[];
}

/** What an active branch is suspended on, if anything (a record's `suspended`, a view's `waiting`). */
export function waitingOf(b: Pick<TreeBranch, 'status' | 'suspended' | 'waiting'>): { kind: 'wait' | 'callback'; until: number } | undefined {
  const on = b.waiting ?? b.suspended;
  return on && !isTerminal(b.status) ? { kind: on.kind, until: on.until } : undefined;
}

/** The agents a branch ran, in order: its entry agent, then each hand-off; the last is `agent`. */
export function agentChain(branch: Pick<TreeBranch, 'agent' | 'entryAgent' | 'memory' | 'agentChain'>): string[] {
  if (branch.agentChain) return [...branch.agentChain];
  const chain = [branch.entryAgent ?? branch.agent];
  for (const entry of branch.memory ?? []) {
    if (!entry.inherited && entry.role === 'user' && entry.agent !== chain[chain.length - 1]) chain.push(entry.agent);
  }
  if (branch.agent !== chain[chain.length - 1]) chain.push(branch.agent);
  return chain;
}

/**
 * The one rule for showing a branch's agents (CLI tree, Mermaid, the page): the chain joined by
 * arrows, shortened past three agents (`Writer → … → Editor (6 turns)`).
 */
export function agentLabel(chain: readonly string[]): string {
  return chain.length <= 3 ? chain.join(' → ') : `${chain[0]} → … → ${chain[chain.length - 1]} (${chain.length} turns)`;
}

/** Children are ordered by their spawn index (ids are `${parent}.${index}`), not lexically: the stores' one id order. */
function childOrder(a: TreeBranch, b: TreeBranch): number {
  return compareIds(a.id, b.id);
}

/** A branch as a tree shows it (a node without its children): no result, no memory, its agents worked out. */
export function treeEntry(b: TreeBranch): Omit<TreeNode, 'children'> {
  const waiting = waitingOf(b);
  return {
    id: b.id,
    parentId: b.parentId,
    agent: b.agent,
    agentChain: agentChain(b),
    type: b.type,
    status: b.status,
    depth: b.depth,
    ...(b.error ? { error: b.error } : {}),
    ...(waiting ? { waiting } : {}),
  };
}

export function buildTree(branches: readonly TreeBranch[]): TreeNode[] {
  const byParent = new Map<string | null, TreeBranch[]>();
  const ids = new Set(branches.map((b) => b.id));
  for (const b of branches) {
    const parent = b.parentId !== null && ids.has(b.parentId) ? b.parentId : null;
    const list = byParent.get(parent) ?? [];
    list.push(b);
    byParent.set(parent, list);
  }
  const build = (b: TreeBranch): TreeNode => ({ ...treeEntry(b), children: (byParent.get(b.id) ?? []).sort(childOrder).map(build) });
  return (byParent.get(null) ?? []).sort(childOrder).map(build);
}

/** The drawings of a tree the API and the CLI give. */
export type TreeFormat = 'ascii' | 'mermaid' | 'json';
export const TREE_FORMATS: readonly TreeFormat[] = ['ascii', 'mermaid', 'json'];

/** `branches` drawn in `format`: text (ascii, mermaid) or the nested nodes (json). */
export function drawTree(branches: readonly TreeBranch[], format: TreeFormat): string | TreeNode[] {
  if (format === 'ascii') return renderAscii(branches);
  if (format === 'mermaid') return renderMermaid(branches);
  return buildTree(branches);
}

/** The branches of nested nodes (a tree's json drawing, or pages of it), flat again: what drawTree takes. */
export function flattenTree(nodes: readonly TreeNode[]): TreeBranch[] {
  const flat: TreeBranch[] = [];
  // A child's parent is the node it is nested in (an API from before pages named no parentId).
  const walk = (node: TreeNode, parentId: string | null) => {
    const { children, ...branch } = node;
    flat.push({ ...branch, parentId });
    children.forEach((child) => walk(child, node.id));
  };
  nodes.forEach((node) => walk(node, node.parentId ?? null));
  return flat;
}

export function renderAscii(branches: readonly TreeBranch[]): string {
  const lines: string[] = [];
  const walk = (node: TreeNode, prefix: string, last: boolean, root: boolean) => {
    const label = `${node.id} ${agentLabel(node.agentChain)} (${node.type.toLowerCase()}) [${node.status}${waitingLabel(node.waiting)}]${node.error ? ` ${truncate(node.error, 80)}` : ''}`;
    lines.push(root ? label : `${prefix}${last ? '└─ ' : '├─ '}${label}`);
    const childPrefix = root ? '' : `${prefix}${last ? '   ' : '│  '}`;
    node.children.forEach((child, i) => walk(child, childPrefix, i === node.children.length - 1, false));
  };
  for (const root of buildTree(branches)) walk(root, '', true, true);
  return lines.join('\n');
}

function waitingLabel(waiting: TreeNode['waiting']): string {
  if (!waiting) return '';
  const until = new Date(waiting.until).toISOString();
  return waiting.kind === 'wait' ? `, waiting until ${until}` : `, awaiting a callback until ${until}`;
}

const MERMAID_CLASSES: Record<string, string> = {
  PENDING: 'fill:#eeeeee,stroke:#999999',
  RUNNING: 'fill:#dbeafe,stroke:#2563eb',
  WAITING: 'fill:#fef9c3,stroke:#ca8a04',
  COMPLETED: 'fill:#dcfce7,stroke:#16a34a',
  FAILED: 'fill:#fee2e2,stroke:#dc2626',
  CANCELLED: 'fill:#f3f4f6,stroke:#6b7280,stroke-dasharray: 4 2',
  TIMED_OUT: 'fill:#ffedd5,stroke:#ea580c',
};

export function renderMermaid(given: readonly TreeBranch[]): string {
  // In tree order whatever the order given (a store's key order, pages joined): one text per tree.
  const branches = flattenTree(buildTree(given));
  const lines = ['flowchart TD'];
  const nodeId = new Map<string, string>();
  branches.forEach((b, i) => nodeId.set(b.id, `n${i}`));
  const used = new Set<string>();
  for (const b of branches) {
    const label = `${escapeMermaid(agentLabel(agentChain(b)))}<br/>${escapeMermaid(b.id)} · ${b.status}`;
    lines.push(`  ${nodeId.get(b.id)}["${label}"]:::${b.status}`);
    used.add(b.status);
  }
  for (const b of branches) {
    if (b.parentId !== null && nodeId.has(b.parentId)) lines.push(`  ${nodeId.get(b.parentId)} --> ${nodeId.get(b.id)}`);
  }
  for (const status of used) lines.push(`  classDef ${status} ${MERMAID_CLASSES[status]}`);
  return lines.join('\n');
}

function escapeMermaid(text: string): string {
  return text.replace(/["<>]/g, (c) => ({ '"': '#quot;', '<': '#lt;', '>': '#gt;' })[c] ?? c);
}

function truncate(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

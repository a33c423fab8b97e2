/** Read models of a run for the API, the CLI and the tree page. */
import { NotFoundError } from '../errors';
import { decodeCursor, encodeCursor, PAGE_MAX_BYTES } from '../page-cursor';
import { runCost, type CostCounters } from '../cost';
import { computeMetrics, metricBranch, type MetricBranch, type RunMetrics } from '../metrics';
import { compareIds, isTerminal, type BranchRecord, type BranchStatus, type BranchType, type RunRecord, type Scope } from '../model';
import { COMPLETION_FN_PREFIX, parseAgentResponse } from '../protocol';
import { agentChain, drawTree, treeEntry, type TreeBranch, type TreeFormat } from '../tree';
import type { SpawnerDeps } from './deps';
import { boundValue, jsonBytes } from '../bounded-value';

/**
 * How much of a run's result a view shows (the API's run, `run --json`, the dev page); past it the
 * view holds a preview and says so (`resultTruncated`, `resultBytes`), and the whole value is one
 * request away: GET /runs/{runId}/branches/{branchId}/result (docs/large-values.md).
 */
export const VIEW_VALUE_BYTES = 64 * 1024;
/** The same for each branch of a list (a run may have 10,000 of them). */
export const LIST_VALUE_BYTES = 16 * 1024;

/** `{ result }`, previewed past `maxBytes` with `resultTruncated` and `resultBytes`. */
export function shownResult(result: unknown, maxBytes: number): { result: unknown; resultTruncated?: true; resultBytes?: number } {
  const bounded = boundValue(result ?? null, maxBytes);
  return bounded.truncated ? { result: bounded.value, resultTruncated: true, resultBytes: bounded.bytes } : { result: bounded.value };
}

export interface BranchView {
  id: string;
  parentId: string | null;
  /** The current agent; `agentChain` lists every agent the branch ran (hand-offs). */
  agent: string;
  agentChain: string[];
  type: BranchType;
  depth: number;
  status: BranchStatus;
  result: unknown;
  /** Set when `result` is a preview (see VIEW_VALUE_BYTES): the whole value's size. */
  resultTruncated?: true;
  resultBytes?: number;
  error: string | null;
  stepCount: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  seq: number | null;
  waitFor: unknown;
  /**
   * Set while the branch is suspended (docs/agents.md, "Waits and callbacks"): on a durable wait
   * until `until`, or awaiting a callback — whose `token` answers it — until its timeout.
   */
  waiting?: WaitingView;
}

export interface WaitingView {
  kind: 'wait' | 'callback';
  since: number;
  until: number;
  token?: string;
  /** The agent's message for whoever answers (previewed past LIST_VALUE_BYTES). */
  message?: unknown;
}

function waitingView(b: BranchRecord): WaitingView | undefined {
  const s = b.suspended;
  if (!s || isTerminal(b.status)) return undefined;
  return {
    kind: s.kind,
    since: s.since,
    until: s.until,
    ...(s.token ? { token: s.token } : {}),
    ...(s.message !== undefined ? { message: boundValue(s.message, LIST_VALUE_BYTES).value } : {}),
  };
}

export interface RunView {
  runId: string;
  name: string;
  status: string;
  result: unknown;
  resultTruncated?: true;
  resultBytes?: number;
  error: string | null;
  createdAt: number;
  endedAt: number | null;
  metrics: RunMetrics;
}

/** A branch as the API and the CLI list it (its result previewed past LIST_VALUE_BYTES). */
export function branchView(b: BranchRecord): BranchView {
  return viewOf(b, LIST_VALUE_BYTES);
}

function viewOf(b: BranchRecord, maxResultBytes: number): BranchView {
  const { result, ...truncation } = shownResult(b.result, maxResultBytes);
  return {
    id: b.id,
    parentId: b.parentId,
    agent: b.agent,
    agentChain: agentChain(b),
    type: b.type,
    depth: b.depth,
    status: b.status,
    result,
    ...truncation,
    error: b.error ?? null,
    stepCount: b.stepCount,
    createdAt: b.createdAt,
    startedAt: b.startedAt ?? null,
    endedAt: b.endedAt ?? null,
    seq: b.parentSeq,
    waitFor: b.spawn?.waitFor ?? null,
    ...(waitingView(b) ? { waiting: waitingView(b) } : {}),
  };
}

export function runView(run: RunRecord, branches: readonly MetricBranch[], cost?: CostCounters): RunView {
  return {
    runId: run.runId,
    name: run.name,
    status: run.status,
    ...shownResult(run.result, VIEW_VALUE_BYTES),
    error: run.error ?? null,
    createdAt: run.createdAt,
    endedAt: run.endedAt ?? null,
    metrics: { ...computeMetrics(branches, run), ...(cost ? { cost: runCost(cost) } : {}) },
  };
}

/** Branches read a page at a time when a whole run is viewed (viewRun). */
const VIEW_PAGE_BRANCHES = 500;

/**
 * The run's view and every branch's view, from the store a page at a time: each page's branches
 * are made into their views (results previewed) and what the metrics count, then let go. A wide
 * run's inputs and memories (20 MB of them after a 10,000-child fan-in of 2 KB results, and the
 * parent's aggregate twice) are never all decoded at once. Branches in natural id order.
 */
export async function viewRun(deps: Pick<SpawnerDeps, 'store'>, run: RunRecord, cost?: CostCounters): Promise<{ view: RunView; branches: BranchView[] }> {
  const scope = { team: run.team, runId: run.runId };
  const branches: BranchView[] = [];
  const counted: MetricBranch[] = [];
  for (let after: string | undefined; ; ) {
    const page = await deps.store.listBranchesPage(scope, { limit: VIEW_PAGE_BRANCHES, ...(after === undefined ? {} : { after }) });
    for (const b of page.branches) {
      branches.push(branchView(b));
      counted.push(metricBranch(b));
    }
    if (!page.more || page.branches.length === 0) break;
    after = page.branches[page.branches.length - 1].id;
  }
  return { view: runView(run, counted, cost), branches: branches.sort((a, b) => compareIds(a.id, b.id)) };
}

export async function mustGetRun(deps: Pick<SpawnerDeps, 'store'>, scope: Scope): Promise<RunRecord> {
  const run = await deps.store.getRun(scope);
  if (!run) throw new NotFoundError(`run ${scope.runId} not found`);
  return run;
}

export async function describeRun(deps: Pick<SpawnerDeps, 'store'>, scope: Scope) {
  const run = await mustGetRun(deps, scope);
  // The cost first: the listing below is the view's cost, not the run's.
  const cost = await deps.store.getCost(scope);
  const branches = await deps.store.listBranches(scope);
  return { run, branches, view: runView(run, branches, cost) };
}

/** A branch id as the store keys it: `root`, then `.<index>` per level. */
const BRANCH_ID = /^root(?:\.\d{1,9}){0,100}$/;

/**
 * A tree answer's page (GET /runs/{id}/tree?limit&cursor): the branches it reads when the request
 * names no `limit`, and the most it may name. A run of up to `defaultLimit` branches is drawn
 * whole in one answer; a larger one a page at a time, each page's `cursor` asking for the next.
 */
export const TREE_PAGE = { defaultLimit: 10_000, max: 10_000 } as const;

/**
 * One page of a run's branches in the store's key order, which is depth first (a branch, then
 * its subtree): at most `limit` branches and PAGE_MAX_BYTES as `bytesOf` counts them; `cursor`
 * (null on the last page) asks for the next one. The one rule of both the branches' and the
 * tree's pages.
 */
async function branchesPage<V extends { id: string }>(
  deps: Pick<SpawnerDeps, 'store'>,
  scope: Scope,
  page: { limit: number; cursor?: string },
  view: (branch: BranchRecord) => V,
  bytesOf: (view: V) => number,
): Promise<{ items: V[]; cursor: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor, (p) => BRANCH_ID.test(p));
  await mustGetRun(deps, scope);
  const { branches, more } = await deps.store.listBranchesPage(scope, { limit: page.limit, ...(after ? { after } : {}) });
  const items: V[] = [];
  let bytes = 0;
  for (const branch of branches) {
    const item = view(branch);
    bytes += bytesOf(item);
    // Cut short past the byte bound (never empty): the cursor goes on from the last one kept.
    if (items.length > 0 && bytes > PAGE_MAX_BYTES) break;
    items.push(item);
  }
  const last = items.at(-1);
  const cursor = last && (more || items.length < branches.length) ? encodeCursor(last.id) : null;
  return { items, cursor };
}

/** One page of a run's branches (GET /runs/{id}/branches?limit&cursor): see branchesPage. */
export async function listRunBranchesPage(
  deps: Pick<SpawnerDeps, 'store'>,
  scope: Scope,
  page: { limit: number; cursor?: string },
): Promise<{ branches: BranchView[]; cursor: string | null }> {
  const { items, cursor } = await branchesPage(deps, scope, page, branchView, (view) => jsonBytes(view) + 1);
  return { branches: items, cursor };
}

/**
 * One page of a run's tree (GET /runs/{id}/tree?format&limit&cursor): whole branches in
 * depth-first order, flat (each names its `parentId`). Pages joined (wholeTree) give every branch.
 */
export async function runTreePage(
  deps: Pick<SpawnerDeps, 'store'>,
  scope: Scope,
  page: { limit: number; cursor?: string } = { limit: TREE_PAGE.defaultLimit },
): Promise<{ branches: TreeBranch[]; cursor: string | null }> {
  // Counted as the JSON of each branch plus its deepest guides: a bound of each drawing's line.
  const { items, cursor } = await branchesPage(deps, scope, page, treeEntry, (b) => jsonBytes(b) + 8 * (b.depth + 1));
  return { branches: items, cursor };
}

/**
 * One page of a run's tree drawn in `format`. A branch whose parent is on an earlier page starts
 * a top of its own (json nodes name their `parentId`); drawn from every page's branches, the tree
 * is the whole one (the CLI's `tree`).
 */
export async function runTree(deps: Pick<SpawnerDeps, 'store'>, scope: Scope, format: TreeFormat, page?: { limit: number; cursor?: string }) {
  const { branches, cursor } = await runTreePage(deps, scope, page);
  return { tree: drawTree(branches, format), cursor };
}

/** Every branch of a run's tree, read page by page through `readPage` until the last. */
export async function wholeTree(readPage: (cursor: string | undefined) => Promise<{ branches: TreeBranch[]; cursor: string | null }>): Promise<TreeBranch[]> {
  const branches: TreeBranch[] = [];
  let cursor: string | undefined;
  do {
    const page = await readPage(cursor);
    branches.push(...page.branches);
    cursor = page.cursor ?? undefined;
  } while (cursor);
  return branches;
}

export async function listRunBranches(deps: Pick<SpawnerDeps, 'store'>, scope: Scope): Promise<BranchView[]> {
  await mustGetRun(deps, scope);
  return (await deps.store.listBranches(scope)).map(branchView);
}

/** One branch's whole result (the root's is the run's): what a preview leaves out, one request away. */
export async function branchResult(deps: Pick<SpawnerDeps, 'store'>, scope: Scope, branchId: string) {
  await mustGetRun(deps, scope);
  const branch = await deps.store.getBranch(scope, branchId);
  if (!branch) throw new NotFoundError(`branch ${branchId} of run ${scope.runId} not found`);
  return { runId: scope.runId, branchId, status: branch.status, result: branch.result ?? null };
}

/** A value the run keeps by reference (a tool call's `argumentsRef` / `outputRef`), whole. */
export async function storedValue(deps: Pick<SpawnerDeps, 'store'>, scope: Scope, ref: string) {
  await mustGetRun(deps, scope);
  return { runId: scope.runId, ref, value: JSON.parse(await deps.store.getValue(scope, ref)) as unknown };
}

/** Runs of a GET /runs page when the request names no `limit`, and the most it may name. */
export const RUNS_PAGE = { defaultLimit: 50, max: 100 } as const;
const RUNS_CURSOR_MAX_CHARS = 300;

const runSummary = (r: RunRecord) => ({ runId: r.runId, name: r.name, status: r.status, createdAt: r.createdAt, endedAt: r.endedAt ?? null });

/**
 * One page of a team's runs, newest first (GET /runs?limit&cursor): one page of the store's
 * index, so `limit` bounds what a request reads. With `owner`, the runs another caller started
 * are left out (a page may then hold fewer than `limit`; its cursor goes on).
 */
export async function listTeamRunsPage(
  deps: Pick<SpawnerDeps, 'store'>,
  team: string,
  page: { limit: number; cursor?: string; owner?: string },
): Promise<{ runs: ReturnType<typeof runSummary>[]; cursor: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor, (p) => p.length > 0 && p.length <= RUNS_CURSOR_MAX_CHARS);
  const { runs, more } = await deps.store.listRunsPage(team, { limit: page.limit, ...(after ? { after } : {}) });
  const visible = runs.filter(({ run }) => page.owner === undefined || run.owner === undefined || run.owner === page.owner);
  const last = runs.at(-1);
  return { runs: visible.map(({ run }) => runSummary(run)), cursor: more && last ? encodeCursor(last.position) : null };
}

/** Short views of the given runs (newest first as given); runs not found are left out. */
export async function runSummaries(deps: Pick<SpawnerDeps, 'store'>, scopes: readonly Scope[]) {
  const records = await Promise.all(scopes.map((scope) => deps.store.getRun(scope)));
  return records
    .filter((r) => r !== undefined)
    .map(runSummary);
}

/** A branch for the page's detail panel: its sync points, its steps and what it was resumed with. */
export async function branchDetail(deps: Pick<SpawnerDeps, 'store'>, scope: Scope, branchId: string) {
  const branch = await deps.store.getBranch(scope, branchId);
  if (!branch) throw new NotFoundError(`branch ${branchId} of run ${scope.runId} not found`);
  const children = await deps.store.listChildren(scope, branchId);
  const seqs = [...new Set([...children.map((c) => c.parentSeq ?? 0), ...(branch.spawn ? [branch.spawn.seq] : [])])].sort((a, b) => a - b);
  const syncPoints = await Promise.all(
    seqs.map(async (seq) => {
      const sp = await deps.store.getSyncPoint(scope, branchId, seq);
      const spawn = branch.spawn?.seq === seq ? branch.spawn : undefined;
      return {
        seq,
        children: children.filter((c) => c.parentSeq === seq).map((c) => ({ id: c.id, agent: c.agent, status: c.status })),
        counters: sp?.counters ?? null,
        waitFor: sp?.waitFor ?? spawn?.waitFor ?? null,
        maxFailedFraction: sp?.maxFailedFraction ?? null,
        // The spawn's own options (null: the run's settings): tolerated count, on_failure, completion function.
        toleratedFailures: sp?.toleratedFailures ?? null,
        onFailure: sp ? (sp.onFailure ?? 'fail') : null,
        completeWhen: sp?.completeFn !== undefined ? `${COMPLETION_FN_PREFIX}${sp.completeFn}` : null,
        aggregator: spawn?.aggregator ?? null,
        aggregatedAt: sp?.aggregatedAt ?? null,
        outcome: sp?.outcome ?? null,
      };
    }),
  );
  const steps = stepsOf(branch);
  const resumes = steps.filter((s) => s.resumedAfterSync);
  return {
    branch: {
      ...viewOf(branch, VIEW_VALUE_BYTES),
      entryAgent: branch.entryAgent,
      ...(branch.peers ? { peers: branch.peers } : {}),
      ...(branch.maxTurns !== undefined ? { maxTurns: branch.maxTurns } : {}),
      usage: branch.usage ?? null,
    },
    syncPoints,
    // What the agent was resumed with after its last sync point: the aggregated result (previewed when large).
    aggregate: boundValue(resumes.length ? resumes[resumes.length - 1].input : null, VIEW_VALUE_BYTES).value,
    steps: steps.map((s) => ({ ...s, input: boundValue(s.input, LIST_VALUE_BYTES).value, response: boundValue(s.response, LIST_VALUE_BYTES).value })),
  };
}

export interface StepView {
  step: number;
  agent: string;
  input: unknown;
  response: unknown;
  decision: string;
  resumedAfterSync: boolean;
}

/** A branch's own steps from its memory: each input, the response and what it decided. */
export function stepsOf(branch: BranchRecord): StepView[] {
  const own = branch.memory.filter((m) => !m.inherited);
  const steps: StepView[] = [];
  let spawned = false;
  for (let i = 0; i + 1 < own.length; i += 2) {
    const input = own[i].content;
    const response = own[i + 1].content;
    let decision: string;
    try {
      decision = parseAgentResponse(response, { currentAgent: own[i].agent, currentInput: input }).kind;
    } catch {
      decision = 'invalid';
    }
    steps.push({ step: steps.length, agent: own[i].agent, input, response, decision, resumedAfterSync: spawned });
    spawned = decision === 'spawn';
  }
  return steps;
}

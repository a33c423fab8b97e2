/** Read models of a run for the API, the CLI and the tree page. */
import { NotFoundError } from '../errors';
import { computeMetrics, type RunMetrics } from '../metrics';
import type { BranchRecord, RunRecord, Scope } from '../model';
import { buildTree, renderAscii, renderMermaid } from '../tree';
import type { SpawnerDeps } from './deps';

export interface BranchView {
  id: string;
  parentId: string | null;
  agent: string;
  type: string;
  depth: number;
  status: string;
  result: unknown;
  error: string | null;
  stepCount: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  seq: number | null;
  waitFor: unknown;
}

export interface RunView {
  runId: string;
  name: string;
  status: string;
  result: unknown;
  error: string | null;
  createdAt: number;
  endedAt: number | null;
  metrics: RunMetrics;
}

export function branchView(b: BranchRecord): BranchView {
  return {
    id: b.id,
    parentId: b.parentId,
    agent: b.agent,
    type: b.type,
    depth: b.depth,
    status: b.status,
    result: b.result ?? null,
    error: b.error ?? null,
    stepCount: b.stepCount,
    createdAt: b.createdAt,
    startedAt: b.startedAt ?? null,
    endedAt: b.endedAt ?? null,
    seq: b.parentSeq,
    waitFor: b.spawn?.waitFor ?? null,
  };
}

export function runView(run: RunRecord, branches: BranchRecord[]): RunView {
  return {
    runId: run.runId,
    name: run.name,
    status: run.status,
    result: run.result ?? null,
    error: run.error ?? null,
    createdAt: run.createdAt,
    endedAt: run.endedAt ?? null,
    metrics: computeMetrics(branches),
  };
}

async function mustGetRun(deps: Pick<SpawnerDeps, 'store'>, scope: Scope): Promise<RunRecord> {
  const run = await deps.store.getRun(scope);
  if (!run) throw new NotFoundError(`run ${scope.runId} not found`);
  return run;
}

export async function describeRun(deps: Pick<SpawnerDeps, 'store'>, scope: Scope) {
  const run = await mustGetRun(deps, scope);
  const branches = await deps.store.listBranches(scope);
  return { run, branches, view: runView(run, branches) };
}

export async function listRunBranches(deps: Pick<SpawnerDeps, 'store'>, scope: Scope): Promise<BranchView[]> {
  await mustGetRun(deps, scope);
  return (await deps.store.listBranches(scope)).map(branchView);
}

export type TreeFormat = 'ascii' | 'mermaid' | 'json';

export async function runTree(deps: Pick<SpawnerDeps, 'store'>, scope: Scope, format: TreeFormat) {
  await mustGetRun(deps, scope);
  const branches = await deps.store.listBranches(scope);
  if (format === 'ascii') return renderAscii(branches);
  if (format === 'mermaid') return renderMermaid(branches);
  return buildTree(branches);
}

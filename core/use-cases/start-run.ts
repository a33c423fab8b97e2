import { branchEvent, runEvent } from '../events';
import { agentTimeoutRefusal, resolveLimits } from '../limits';
import { agentRetryRefusal } from '../retry-policy';
import {
  DEFAULT_FAILURE_POLICY,
  ROOT_BRANCH_ID,
  type AgentRegistry,
  type BranchRecord,
  type FailurePolicy,
  type Limits,
  type RunRecord,
} from '../model';
import { ValidationError } from '../errors';
import type { Scenario } from '../scenario';
import { publish, type SpawnerDeps } from './deps';
import { endBranch, endOrRetell } from './end-branch';
import { WorkMark } from '../work-mark';

export interface StartRunInput {
  team: string;
  /** Given by the caller (e.g. derived from an Idempotency-Key); random otherwise. */
  runId?: string;
  name: string;
  request: unknown;
  entry: string;
  agents: AgentRegistry;
  limits?: Partial<Limits>;
  failurePolicy?: Partial<FailurePolicy>;
  aggregators?: string;
  /** The deployment's caps on limits (a team's stack sets them). */
  limitMaxima?: Partial<Limits>;
  /** Who starts the run (the API's caller), kept on the run for reads and cancels. */
  owner?: string;
}

/** The run a scenario asks for: the same fields whoever starts it (the CLI, the library, tests). */
export function runInputOf(scenario: Scenario): Omit<StartRunInput, 'team'> {
  return {
    name: scenario.name,
    request: scenario.request ?? null,
    entry: scenario.entry,
    agents: scenario.agents,
    limits: scenario.limits,
    failurePolicy: scenario.failurePolicy,
    aggregators: scenario.aggregators,
  };
}

export interface StartRunResult {
  runId: string;
  /** False when a run with this id existed already (an idempotent repeat). */
  created: boolean;
}

/** Creates the run and its root branch and enqueues the root's first step. Safe to repeat. */
export async function startRun(deps: SpawnerDeps, input: StartRunInput): Promise<StartRunResult> {
  if (!Object.hasOwn(input.agents, input.entry)) {
    throw new ValidationError(`entry agent "${input.entry}" is not among the agents`, 'entry');
  }
  const now = deps.clock.now();
  const runId = input.runId ?? crypto.randomUUID();
  const scope = { team: input.team, runId };
  const failurePolicy = { ...DEFAULT_FAILURE_POLICY, ...input.failurePolicy };
  const limits = resolveLimits(input.limits, input.limitMaxima);
  // A stack's maximum may lower the bound below what the scenario was read against.
  for (const [name, definition] of Object.entries(input.agents)) {
    const refused = agentTimeoutRefusal(definition, limits.agentTimeoutSeconds);
    if (refused) throw new ValidationError(`agents.${name}.timeoutMs: ${refused}`, `agents.${name}.timeoutMs`);
    const retryRefused = agentRetryRefusal(definition, limits.maxAgentAttempts);
    if (retryRefused) {
      const field = `agents.${name}.${retryRefused.path}`;
      throw new ValidationError(`${field}: ${retryRefused.message}`, field);
    }
  }
  const run: RunRecord = {
    ...scope,
    name: input.name,
    status: 'RUNNING',
    request: input.request,
    entry: input.entry,
    agents: input.agents,
    limits,
    failurePolicy,
    ...(input.aggregators ? { aggregators: input.aggregators } : {}),
    ...(input.owner ? { owner: input.owner } : {}),
    createdAt: now,
    branchCount: 1,
  };
  const created = await deps.store.createRun(run);
  if (!created) {
    // A repeat: if the run ended meanwhile (a cancel), there is nothing left to start.
    const existing = await deps.store.getRun(scope);
    if (existing && existing.status !== 'RUNNING') {
      // Its root never started: the first try may have died before announcing the run.
      const existingRoot = await deps.store.getBranch(scope, ROOT_BRANCH_ID);
      if (!existingRoot?.startedAt) {
        await publish(
          deps,
          runEvent('RunStarted', scope, now, { status: 'RUNNING', name: run.name }),
          ...(existingRoot ? [branchEvent('BranchCreated', existingRoot, existingRoot.createdAt)] : []),
        );
      }
      // An earlier try wrote the root after the cancel looked for it: end it here — or, if that
      // try ended it and died before telling it, tell it again (its BranchCancelled). Under the
      // start's own mark: the cancel tells the run's end, the start only the root's.
      // (Only a root not yet started: one that started is its steps' to end; a write lost is the winner's to tell.)
      if (existingRoot) {
        await endOrRetell(deps, existingRoot, { status: 'CANCELLED', by: WorkMark.start, error: existing.error ?? `the run is ${existing.status}` }, {}, {
          mayEnd: (root) => root.status === 'PENDING',
          mine: [WorkMark.start],
          readBack: 'never',
        });
      }
      return { runId, created };
    }
  }
  const root: BranchRecord = {
    ...scope,
    id: ROOT_BRANCH_ID,
    parentId: null,
    parentSeq: null,
    depth: 0,
    type: 'SIMPLE',
    entryAgent: input.entry,
    agent: input.entry,
    status: 'PENDING',
    version: 0,
    stepCount: 0,
    invalidCount: 0,
    refusalCount: 0,
    input: input.request,
    memory: [],
    childCount: 0,
    createdAt: now,
  };
  // On a repeat these are no-ops (conditional create) except the events and the message: until
  // the root's first step has started, a repeat (a retry after a crash) sends them again, so the
  // crash of a starting process loses neither (at least once; the root's start is the acknowledgement).
  const rootCreated = (await deps.store.createBranches([root])).length > 0;
  const current = created && rootCreated ? root : await deps.store.getBranch(scope, ROOT_BRANCH_ID);
  // Never started: the first try may have died before announcing (even if a cancel ended it since).
  if (current?.startedAt === undefined) {
    await publish(deps, runEvent('RunStarted', scope, now, { status: 'RUNNING', name: run.name }), branchEvent('BranchCreated', root, now));
  }
  if (current?.status !== 'PENDING') return { runId, created };
  // A cancel that came between the run's write and the root's found no root to end: the root is
  // ended here instead of started (the cancel wrote the run first; this reads it after the root).
  // The start's own mark: whichever of the two ends the root (one conditional write) tells it, and
  // the run's end stays the cancel's to tell (it told it when it found no root).
  const latest = await deps.store.getRun(scope);
  if (latest && latest.status !== 'RUNNING') {
    await endBranch(deps, current, { status: 'CANCELLED', by: WorkMark.start, error: latest.error ?? `the run is ${latest.status}` });
    return { runId, created };
  }
  await deps.queue.send([{ ...scope, branchId: ROOT_BRANCH_ID, step: 0 }]);
  return { runId, created };
}

/**
 * Runs one tree on the embedded runtime: the real step-worker, store, queue and fan-out
 * (aws-local-stepfunctions), on the tier the system names (see SystemName: memory, journal with
 * a data folder, dynalite + fauxqs with or without one), with counters hooked on from the outside
 * (AWS requests: engines tier only, where they go through the SDK clients).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineTier } from '../local/embedded-engines';
import type { LifecycleEvent } from '../core/events';
import type { BranchRecord } from '../core/model';
import type { AgentInvoker } from '../core/ports';
import { LocalRuntime } from '../local/runtime';
import { aslTransitions, countDynamo, countEvents, countSqs, countStepFunctions, emptyCounts, type AwsCounts } from './aws-counters';
import { fanInStats, percentile, ProcessMeter, round, startProfiler, type CaseResult, type CaseSpec, processFigures, type SystemName } from './measure';
import { branchCount, QUICK_SHAPES, scenarioFor, type TreeShape } from './workloads';

interface Hooks {
  counts: AwsCounts;
  /** `${branchId}#${step}` → when the agent call of that step started (ms, Date.now like the records). */
  stepStarts: Map<string, number>;
  /** parentId → SyncPointReached time. */
  claims: Map<string, number>;
  completed: number;
}

const TIERS: Partial<Record<SystemName, { tier: EngineTier; data: boolean }>> = {
  ours: { tier: 'memory', data: false },
  'ours-data': { tier: 'journal', data: true },
  'ours-engines': { tier: 'engines', data: false },
  'ours-engines-data': { tier: 'engines', data: true },
};

export async function runOurs(spec: CaseSpec): Promise<CaseResult> {
  const { tier, data } = TIERS[spec.system]!;
  const dataDir = data ? mkdtempSync(join(tmpdir(), 'branch-spawner-bench-data-')) : undefined;
  try {
    return await runOn(spec, tier, dataDir);
  } finally {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

async function runOn(spec: CaseSpec, tier: EngineTier, dataDir: string | undefined): Promise<CaseResult> {
  const counts = emptyCounts();
  countStepFunctions(counts.stepFunctions);
  const runtime = await LocalRuntime.start({
    tier,
    dataDir,
    // The runtime's own default unless a case asks (the same as `run`).
    pollers: spec.pollers,
    // A message must not come back while a saturated CPU still works on it (Lambda's ESM asks
    // for a visibility timeout of several times the function timeout for the same reason).
    visibilityTimeoutSeconds: 300,
  });
  const hooks: Hooks = { counts, stepStarts: new Map(), claims: new Map(), completed: 0 };
  if (runtime.engines.tier === 'engines') {
    countDynamo(runtime.engines.dynamo.client, counts.dynamodb);
    countSqs(runtime.engines.sqs.client, counts.sqs);
  }
  runtime.deps.events = countEvents(runtime.deps.events, counts.eventBridge);
  runtime.deps.invoker = timedInvoker(runtime.deps.invoker, hooks.stepStarts);
  runtime.bus.subscribe((event: LifecycleEvent) => {
    if (event.type === 'SyncPointReached' && event.branchId) hooks.claims.set(event.branchId, event.time);
    if (event.type === 'BranchCompleted') hooks.completed++;
  });
  try {
    // Warm-up at 0 ms: JIT, lazy SDK modules, connection pools. Then every counter starts from zero.
    const warm = QUICK_SHAPES.balanced.fanOuts.slice(0, 2);
    await runTree(runtime, { name: spec.shape.name, fanOuts: warm }, { ...spec, latencyMs: 0 });
    await runtime.settle();
    reset(hooks);
    return await measured(runtime, spec, hooks);
  } finally {
    await Promise.race([runtime.close(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }
}

async function runTree(runtime: LocalRuntime, shape: TreeShape, spec: CaseSpec): Promise<string> {
  const runId = await runtime.startRun(scenarioFor(shape, spec.latencyMs, spec.concurrency));
  const run = await runtime.waitForRun(runId);
  if (run.status !== 'COMPLETED') throw new Error(`warm-up run ${run.status}: ${run.error ?? ''}`);
  return runId;
}

async function measured(runtime: LocalRuntime, spec: CaseSpec, hooks: Hooks): Promise<CaseResult> {
  const expected = branchCount(spec.shape);
  const stopProfiler = await startProfiler(spec.profileFile);
  const meter = new ProcessMeter();
  const runId = await runtime.startRun(scenarioFor(spec.shape, spec.latencyMs, spec.concurrency));
  const budget = spec.budgetMs ?? 15 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    runtime.waitForRun(runId).then((run) => run.status),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), budget))),
  ]);
  clearTimeout(timer);
  const m = meter.stop();
  await stopProfiler();
  const completed = outcome === 'timeout' ? hooks.completed : expected;
  const base = {
    spec,
    expectedBranches: expected,
    completedBranches: completed,
    ...processFigures(m, completed),
    runtimeErrors: runtime.errors.length,
  };
  if (outcome === 'timeout') {
    return {
      ...base,
      status: 'timeout',
      error: await diagnose(runtime, runId),
      fanIn: fanInStats([]),
      aws: snapshot(hooks.counts),
    };
  }
  // Let the last acknowledgements and the fan-out's Aggregate finish, so they count for this run.
  await runtime.settle();
  const aws = snapshot(hooks.counts);
  aws.stepFunctions.expectedFromAsl = aslTransitions(spec.shape.fanOuts, spec.concurrency);
  const branches = await runtime.deps.store.listBranches({ team: runtime.team, runId });
  const notDone = branches.filter((b) => b.status !== 'COMPLETED');
  const status = outcome === 'COMPLETED' && branches.length === expected && notDone.length === 0 ? 'completed' : 'failed';
  return {
    ...base,
    status,
    ...(status === 'failed'
      ? { error: `run ${outcome}, ${branches.length}/${expected} branches, ${notDone.length} not COMPLETED` }
      : {}),
    fanIn: fanInOf(branches, hooks),
    // AWS requests are counted on the SDK clients: the memory tier has none.
    ...(runtime.tier === 'engines' ? { aws } : {}),
  };
}

/**
 * Fan-in latency per parent: from its last child's end (the child's endedAt, stamped when its
 * agent answered) to the start of the parent's resumed agent call (the step after the spawn).
 * Everything in between is ours: the child's writes and events, the sync counter, the Map
 * ending, Aggregate, the resume write, the queue, the worker picking the step up.
 */
function fanInOf(branches: BranchRecord[], hooks: Hooks) {
  const byParent = new Map<string, number>();
  for (const b of branches) {
    if (b.parentId === null || b.endedAt === undefined) continue;
    byParent.set(b.parentId, Math.max(byParent.get(b.parentId) ?? 0, b.endedAt));
  }
  const total: number[] = [];
  const toClaim: number[] = [];
  const toResume: number[] = [];
  for (const parent of branches) {
    const lastChild = byParent.get(parent.id);
    if (lastChild === undefined || !parent.spawn) continue;
    const resumed = hooks.stepStarts.get(`${parent.id}#${parent.spawn.step + 1}`);
    if (resumed === undefined) continue;
    total.push(resumed - lastChild);
    const claim = hooks.claims.get(parent.id);
    if (claim !== undefined) {
      toClaim.push(claim - lastChild);
      toResume.push(resumed - claim);
    }
  }
  return {
    ...fanInStats(total),
    toClaimP50Ms: round(percentile(toClaim, 50)),
    claimToResumeP50Ms: round(percentile(toResume, 50)),
  };
}

/** Where a run that did not finish stands: branch statuses, queue depth, runtime errors. */
async function diagnose(runtime: LocalRuntime, runId: string): Promise<string> {
  const branches = await runtime.deps.store.listBranches({ team: runtime.team, runId });
  const statuses: Record<string, number> = {};
  for (const b of branches) statuses[b.status] = (statuses[b.status] ?? 0) + 1;
  const engines = runtime.engines;
  let queue: unknown;
  if (engines.tier === 'engines') {
    const { GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
    queue = {};
    for (const url of [engines.queues.queueUrl, engines.queues.continueUrl]) {
      const answer = await engines.sqs.client.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
      );
      (queue as Record<string, unknown>)[url] = answer.Attributes;
    }
  } else {
    queue = { start: engines.consumers.start.depth, continue: engines.consumers.continue.depth };
  }
  const errors = runtime.errors.slice(0, 3).map((e) => String((e as Error)?.message ?? e).slice(0, 300));
  return JSON.stringify({ statuses, queue, errors, errorCount: runtime.errors.length });
}

function timedInvoker(inner: AgentInvoker, starts: Map<string, number>): AgentInvoker {
  return {
    invoke(call) {
      starts.set(`${call.branchId}#${call.step}`, Date.now());
      return inner.invoke(call);
    },
  };
}

function reset(hooks: Hooks): void {
  const fresh = emptyCounts();
  Object.assign(hooks.counts.dynamodb, fresh.dynamodb);
  Object.assign(hooks.counts.sqs, fresh.sqs);
  Object.assign(hooks.counts.stepFunctions, fresh.stepFunctions);
  Object.assign(hooks.counts.eventBridge, fresh.eventBridge);
  hooks.stepStarts.clear();
  hooks.claims.clear();
  hooks.completed = 0;
}

function snapshot(counts: AwsCounts): AwsCounts {
  return structuredClone(counts);
}

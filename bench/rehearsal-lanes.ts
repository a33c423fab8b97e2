/**
 * The step lanes in the deploy rehearsal: fan-in wait of a two-level tree run through the
 * synthesized stack (bundled functions, event source mappings, the state machine), once as
 * synthesized (two lanes) and once with the template patched so that CONTINUE_QUEUE_URL names
 * the start lane's queue (one queue for every step, as before the lanes). Both event sources get
 * the MaximumConcurrency of `workerMaxConcurrency` = `--worker` (continue lane: half, at least 2).
 *
 * Usage: npx tsx bench/rehearsal-lanes.ts [--mids 6] [--leaves 10] [--delay 2000] [--worker 2] [--rounds 2]
 *
 * Fan-in wait per parent: from its last child's end (endedAt) to the moment the step-worker's
 * event source receives the parent's resumed step; split at SyncPointReached (what comes before
 * is the fan-in path; after it, the resumed step's wait in the queue, which the lane removes).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { continueLaneConcurrency } from '../core/step-lanes';
import { ENVIRONMENT_VARIABLES } from '../functions/lambda-environment';
import { RehearsalStack } from '../local/rehearsal/rehearsal-stack';
import { synthesize, type Assembly } from '../local/rehearsal/synth';

type Mode = 'lanes' | 'one queue';

interface Shape {
  mids: number;
  leaves: number;
  delayMs: number;
  worker: number;
}

/** A copy of the assembly with the event sources' concurrency set and, for 'one queue', the continue lane pointed at the start lane. */
function patched(assembly: Assembly, mode: Mode, worker: number): Assembly {
  const dir = mkdtempSync(join(tmpdir(), 'rehearsal-lanes-'));
  cpSync(assembly.dir, dir, { recursive: true });
  const file = join(dir, `${assembly.stackName}.template.json`);
  const template = JSON.parse(readFileSync(file, 'utf8')) as { Resources: Record<string, { Type: string; Properties: any }> };
  const resources = Object.values(template.Resources);
  let startQueue = '';
  for (const r of resources) {
    const vars = r.Type === 'AWS::Lambda::Function' ? r.Properties.Environment?.Variables : undefined;
    if (!vars?.[ENVIRONMENT_VARIABLES.stepQueueUrl]) continue;
    startQueue = vars[ENVIRONMENT_VARIABLES.stepQueueUrl].Ref;
    if (mode === 'one queue') vars[ENVIRONMENT_VARIABLES.continueQueueUrl] = vars[ENVIRONMENT_VARIABLES.stepQueueUrl];
  }
  for (const r of resources) {
    if (r.Type !== 'AWS::Lambda::EventSourceMapping' || !r.Properties.ScalingConfig) continue;
    const start = r.Properties.EventSourceArn['Fn::GetAtt'][0] === startQueue;
    r.Properties.ScalingConfig.MaximumConcurrency = start ? worker : continueLaneConcurrency(worker);
  }
  writeFileSync(file, JSON.stringify(template));
  return { ...assembly, dir };
}

function scenario(shape: Shape, name: string, delayMs: number) {
  const { mids, leaves } = shape;
  return {
    name,
    entry: 'Root',
    request: 'go',
    limits: { maxConcurrentBranches: leaves, maxFanOut: Math.max(mids, leaves), maxBranches: 1 + mids + mids * leaves },
    agents: {
      Root: {
        kind: 'script',
        allowed: ['Mid'],
        responses: [
          { next_action: 'parallel_invoke', agents: Array(mids).fill('Mid'), action_input: { Mid: 'x' } },
          { next_action: 'final_response', content: 'done' },
        ],
      },
      Mid: {
        kind: 'script',
        allowed: ['Leaf'],
        responses: [
          { next_action: 'parallel_invoke', agents: Array(leaves).fill('Leaf'), action_input: { Leaf: 'y' } },
          { next_action: 'final_response', content: 'mid done' },
        ],
      },
      Leaf: { kind: 'script', responses: [{ $delayMs: delayMs, next_action: 'final_response', content: 1 }] },
    },
  };
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs: number[]) => Math.max(...xs);

async function measure(assembly: Assembly, mode: Mode, shape: Shape) {
  const copy = patched(assembly, mode, shape.worker);
  const stack = await RehearsalStack.start({ assembly: copy, maxContainers: 2 * shape.worker });
  const received = new Map<string, number>();
  const claims = new Map<string, number>();
  stack.onQueueDelivery((delivery) => {
    for (const record of delivery.records) {
      const { branchId, step } = JSON.parse(record.body) as { branchId: string; step: number };
      if (step > 0 && !received.has(`${branchId}#${step}`)) received.set(`${branchId}#${step}`, Date.now());
    }
  });
  stack.onLifecycleEvent((e) => {
    if (e.type === 'SyncPointReached' && e.branchId && !claims.has(e.branchId)) claims.set(e.branchId, Date.now());
  });
  try {
    // Warm-up: every function's containers started (cold starts are not what is measured).
    for (let i = 0; i < 2; i++) {
      const warm = await stack.request('POST', '/runs', { body: scenario(shape, `warm-${i}`, 0) });
      await stack.waitForRun((JSON.parse(warm.body) as { runId: string }).runId);
    }
    await stack.settle();
    received.clear();
    claims.clear();
    const started = Date.now();
    const response = await stack.request('POST', '/runs', { body: scenario(shape, 'measured', shape.delayMs) });
    const run = await stack.waitForRun((JSON.parse(response.body) as { runId: string }).runId);
    const makespanMs = Date.now() - started;
    const branches = await stack.listBranches(run.runId);
    const lastChild = new Map<string, number>();
    for (const b of branches) if (b.parentId && b.endedAt) lastChild.set(b.parentId, Math.max(lastChild.get(b.parentId) ?? 0, b.endedAt));
    const total: number[] = [];
    const queued: number[] = [];
    for (const parent of branches.filter((b) => b.spawn)) {
      const at = received.get(`${parent.id}#${parent.spawn!.step + 1}`);
      const last = lastChild.get(parent.id);
      const claim = claims.get(parent.id);
      if (at === undefined || last === undefined || claim === undefined) continue;
      total.push(at - last);
      queued.push(at - claim);
    }
    return { mode, status: run.status, makespanMs, fanInP50Ms: p50(total), fanInMaxMs: max(total), queuedP50Ms: p50(queued), queuedMaxMs: max(queued) };
  } finally {
    await stack.close();
    rmSync(copy.dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mids: { type: 'string', default: '6' },
      leaves: { type: 'string', default: '10' },
      delay: { type: 'string', default: '2000' },
      worker: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const shape: Shape = { mids: Number(values.mids), leaves: Number(values.leaves), delayMs: Number(values.delay), worker: Number(values.worker) };
  const assembly = await synthesize({});
  console.log(`${shape.mids} parents × ${shape.leaves} leaves of ${shape.delayMs} ms, workerMaxConcurrency ${shape.worker}`);
  console.log('| mode | makespan s | fan-in wait p50 / max s | of it, resumed step queued p50 / max s |');
  console.log('|---|---|---|---|');
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of ['lanes', 'one queue'] as Mode[]) {
      const r = await measure(assembly, mode, shape);
      const s = (ms: number) => (ms / 1000).toFixed(2);
      console.log(`| ${r.mode} | ${s(r.makespanMs)} | ${s(r.fanInP50Ms)} / ${s(r.fanInMaxMs)} | ${s(r.queuedP50Ms)} / ${s(r.queuedMaxMs)} |`);
    }
  }
}

void main();

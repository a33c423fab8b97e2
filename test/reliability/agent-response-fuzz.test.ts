// Long-running: started first (vitest.config.ts).
/**
 * Bad input from agents: generated responses fed through the worker path (executeStep and the
 * fan-in it drives). The worker never crashes on them (executeStep rejects only for
 * infrastructure errors), every run ends, and every failed branch says why.
 * 10,000 responses on the in-memory ports, 300 more on the embedded engines.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentRegistry, BranchRecord, RunRecord } from '../../core/model';
import type { AgentInvocation, AgentInvoker, AgentReply } from '../../core/ports';
import { ENGINE_TIERS } from '../../local/embedded-engines';
import { LocalRuntime } from '../../local/runtime';
import { onTier } from '../support/tiers';
import { checkInvariants } from '../support/behaviours';
import { createMemoryHarness } from '../support/memory-harness';
import { CLEAR_ERROR, generatedResponses, hostileResponses, replyFor, type GeneratedResponse } from './agent-responses';
import { checkRunInvariants, outcomeOf, recordEvents } from './support';
import { report } from '../support/report';

const LONG = process.env.RELIABILITY_LONG === '1';
const MEMORY_RUNS = LONG ? 50_000 : 10_000;
const ENGINE_RUNS = LONG ? 1_000 : 300;
const SEED = Number(process.env.RELIABILITY_SEED ?? 20_261_122);
/**
 * A test's net follows its work: runs times a per-run allowance far above a run's cost on an
 * idle machine (a few ms in memory, well under a second on the engines), so a loaded machine
 * that stretches every run does not fail the test; a run that never ends still does.
 */
const netMs = (runs: number, msPerRun: number) => Math.max(60_000, runs * msPerRun);

/** Answers the root's first call with the generated response; every other call finishes its branch. */
class FuzzInvoker implements AgentInvoker {
  readonly responses = new Map<string, GeneratedResponse>();

  async invoke(call: AgentInvocation): Promise<AgentReply> {
    const generated = this.responses.get(call.runId);
    if (generated && call.branchId === 'root' && call.step === 0) return replyFor(generated) as AgentReply;
    return { response: { next_action: 'final_response', content: { done: call.agentName, step: call.step } } };
  }
}

// The fuzz invoker stands in for module code.
const agents: AgentRegistry = { A: { kind: 'module', module: 'fuzz', allowed: ['B'] }, B: { kind: 'module', module: 'fuzz' } };
/** Small limits so that every spawn a response asks for stays cheap (and some are refused). */
const limits = (n: number) => ({
  maxDepth: 2,
  maxFanOut: 6,
  maxBranches: 20,
  maxStepsPerBranch: 6,
  branchTimeoutSeconds: 30,
  // Half the runs fail an invalid response at once, half re-ask the agent (which then answers).
  maxInvalidResponses: n % 2,
});

/** How the root's first step went, for the report. */
function classify(run: RunRecord, branches: BranchRecord[]): string {
  const root = branches.find((b) => b.id === 'root')!;
  const firstInput = root.memory[2]?.content as { error?: string } | undefined;
  if (root.error?.startsWith('InvalidAgentResponse')) return 'invalid, failed';
  if (firstInput?.error === 'InvalidAgentResponse') return 'invalid, re-asked';
  if (firstInput?.error === 'LimitExceeded' || root.error?.startsWith('LimitExceeded')) return 'spawn refused';
  if (root.error?.startsWith('agent ')) return 'broken reply, failed';
  if (root.error?.includes('too large')) return 'too large, failed';
  if (root.childCount > 0) return `spawned, run ${run.status}`;
  if (root.agent !== 'A') return 'handed off';
  if (root.stepCount === 1 && run.status === 'COMPLETED') return 'completed';
  return `other, run ${run.status}`;
}

function checkErrors(branches: BranchRecord[], label: string): void {
  for (const b of branches.filter((x) => x.status === 'FAILED' || x.status === 'TIMED_OUT')) {
    expect(b.error ?? '', `${label}: error of ${b.id}`).toMatch(CLEAR_ERROR);
  }
}

const measured = { memory: new Map<string, number>(), hostile: new Map<string, number>(), engines: new Map<string, number>() };
const tally = (into: Map<string, number>, key: string) => into.set(key, (into.get(key) ?? 0) + 1);

describe('generated agent responses through executeStep (in-memory ports)', () => {
  it(`${MEMORY_RUNS} responses: no worker crash, every run ends, every failure explains itself`, async () => {
    const invoker = new FuzzInvoker();
    // A fresh harness every 500 runs: its store and event list only grow, and each run filters them.
    let h = createMemoryHarness({ invoker });
    let n = 0;
    try {
      await fc.assert(
        fc.asyncProperty(generatedResponses(), async (generated) => {
          if (n > 0 && n % 500 === 0) {
            h.stop();
            h = createMemoryHarness({ invoker });
          }
          const runId = `fuzz-${++n}`;
          invoker.responses.set(runId, generated);
          const outcome = await h.run({ runId, name: 'fuzz', request: 'go', entry: 'A', agents, limits: limits(n) });
          invoker.responses.delete(runId);
          // The harness rethrows anything executeStep or a fan-out task threw: none may.
          expect(h.errors).toEqual([]);
          expect(outcome.branches.filter((b) => ['PENDING', 'RUNNING', 'WAITING'].includes(b.status))).toEqual([]);
          checkInvariants(outcome);
          checkErrors(outcome.branches, `${generated.kind} response`);
          if (outcome.run.status === 'FAILED') expect(outcome.run.error).toMatch(CLEAR_ERROR);
          tally(measured.memory, `${generated.kind}: ${classify(outcome.run, outcome.branches)}`);
        }),
        { numRuns: MEMORY_RUNS, seed: SEED, endOnFailure: true },
      );
    } finally {
      h.stop();
    }
    report(`agent responses on the in-memory ports (seed ${SEED}):`, Object.fromEntries([...measured.memory].sort()));
    expect([...measured.memory.values()].reduce((a, b) => a + b, 0)).toBe(MEMORY_RUNS);
  }, netMs(MEMORY_RUNS, 100));
});

describe('every hostile response, in every mode (in-memory ports)', () => {
  const cases = hostileResponses().flatMap((h) =>
    (['plain', 'junk-usage'] as const).flatMap((reply) => [0, 1].map((invalid) => ({ ...h, reply, invalid }))),
  );
  it(`${cases.length} runs: each ends, and a failure names its cause`, async () => {
    const invoker = new FuzzInvoker();
    const h = createMemoryHarness({ invoker });
    try {
      for (const [i, c] of cases.entries()) {
        const runId = `hostile-${i}`;
        invoker.responses.set(runId, { kind: 'hostile', response: c.value, reply: c.reply });
        const outcome = await h.run({ runId, name: 'hostile', request: 'go', entry: 'A', agents, limits: limits(c.invalid) });
        expect(h.errors).toEqual([]);
        checkInvariants(outcome);
        checkErrors(outcome.branches, c.label);
        if (outcome.run.status === 'FAILED') expect(outcome.run.error, c.label).toMatch(CLEAR_ERROR);
        tally(measured.hostile, classify(outcome.run, outcome.branches));
      }
    } finally {
      h.stop();
    }
    report(`every hostile response (${cases.length} runs):`, Object.fromEntries([...measured.hostile].sort()));
  }, netMs(cases.length, 5_000));
});

describe.each(ENGINE_TIERS)('generated agent responses through the local runtime on the %s tier (step-worker, store, queues, fan-out)', (tier) => {
  let runtime: LocalRuntime | undefined;
  afterAll(async () => runtime?.close());

  it(`${ENGINE_RUNS} responses: no failed delivery, every run ends with exact counters`, async () => {
    const invoker = new FuzzInvoker();
    runtime = await LocalRuntime.start({ ...onTier(tier), invokers: { module: invoker }, visibilityTimeoutSeconds: 2 });
    const events = recordEvents(runtime);
    const samples = fc.sample(generatedResponses(), { numRuns: ENGINE_RUNS, seed: SEED + 1 });
    const rt = runtime;
    for (let start = 0; start < samples.length; start += 50) {
      const batch = samples.slice(start, start + 50);
      const runs = await Promise.all(
        batch.map(async (generated, i) => {
          const runId = `fuzz-engine-${start + i}`;
          invoker.responses.set(runId, generated);
          await rt.startRun({ runId, name: 'fuzz', request: 'go', entry: 'A', agents, limits: limits(start + i) });
          return { generated, run: await rt.waitForRun(runId) };
        }),
      );
      for (const { generated, run } of runs) {
        const outcome = await outcomeOf(rt, run, events);
        checkRunInvariants(outcome, `${generated.kind} response`);
        checkErrors(outcome.branches, `${generated.kind} response`);
        tally(measured.engines, `${generated.kind}: ${classify(outcome.run, outcome.branches)}`);
      }
    }
    // executeStep threw for no delivery (a throw is reported as a failed delivery and retried).
    expect(rt.deliveries.failed).toBe(0);
    expect(rt.deliveries.handled).toBeGreaterThan(ENGINE_RUNS);
    expect(rt.errors).toEqual([]);
    report('agent responses on the embedded engines:', Object.fromEntries([...measured.engines].sort()));
  }, netMs(ENGINE_RUNS, 2_000));
});

// Long-running: started first (vitest.config.ts).
/**
 * Poison messages: a step that fails on every delivery goes to the DLQ after maxReceiveCount
 * receives; the DLQ consumer fails its branch ("poison message") and tells its parent, so the run
 * ends instead of hanging. Or, kept in the DLQ, `redrive` puts it back after a fix and `resume`
 * finishes the run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { failPoisonedStep, type SpawnerDeps } from '../../core/use-cases';
import { main } from '../../local/cli';
import { ENGINE_TIERS } from '../../local/embedded-engines';
import { LocalRuntime, type LocalRuntimeOptions } from '../../local/runtime';
import { loadScenarioFile } from '../../local/scenario-file';
import { runInputOf } from '../../core/use-cases/start-run';
import { captureIo } from '../support/io';
import { onTier } from '../support/tiers';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';
import { checkRunInvariants, EXAMPLES_DIR, outcomeOf, recordEvents, runToEnd } from './support';

const POISON = /^poison message: step 0 of branch (root|root\.1) kept failing after \d+ deliveries and went to the dead-letter queue$/;

const handoff = {
  name: 'handoff',
  request: 'draft',
  entry: 'Writer',
  agents: scriptAgents({
    Writer: { allowed: ['Editor'], responses: [{ next_action: 'invoke_agent', action_input: { agent: 'Editor', input: 'draft v1' } }] },
    Editor: { responses: [{ next_action: 'final_response', content: { edited: '$input' } }] },
  }),
};

/** A runtime closed when its test ends (the tests of this table run at once: they mostly wait on redeliveries). */
async function started(onTestFinished: (fn: () => Promise<void>) => void, options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const runtime = await LocalRuntime.start(options);
  onTestFinished(() => runtime.close());
  return runtime;
}

describe.concurrent.each(ENGINE_TIERS)('poison messages on the %s tier', (tier) => {
  it('a child whose step always fails is dead-lettered, FAILED as poison, and its parent goes on', async ({ onTestFinished }) => {
    const runtime = await started(onTestFinished, { ...onTier(tier), chaos: { poison: ['root.1'] }, maxReceiveCount: 2, visibilityTimeoutSeconds: 1 });
    const events = recordEvents(runtime);
    const { scenario } = await loadScenarioFile(`${EXAMPLES_DIR}simple-parallel.yaml`);
    const outcome = await runToEnd(runtime, scenario, events);

    expect(outcome.run.status).toBe('COMPLETED');
    const parts = (outcome.run.result as { parts: { results: object; failures: Record<string, string> } }).parts;
    expect(Object.keys(parts.results).sort()).toEqual(['root.0', 'root.2']);
    expect(parts.failures['root.1']).toMatch(POISON);
    // The count is the step queue's deliveries (maxReceiveCount), not the dead-letter queue's one.
    expect(parts.failures['root.1']).toContain('kept failing after 2 deliveries');
    // Received maxReceiveCount (2) times, each a failure, then moved on the third receive.
    expect(runtime.faults.injected.poison).toBe(2);
    expect(runtime.deadLetters).toEqual({ failed: 1, told: 0, dropped: 0, malformed: 0 });
    checkRunInvariants(outcome, 'poisoned child');
    expect(runtime.errors).toEqual([]);
    // Its own budget: three deliveries, two of them after the step worker's backoff (up to 2 s,
    // then 4 s), beside the table's other cases starting their engines at once.
  }, 120_000);

  it('a poisoned root fails the run (it does not hang)', async ({ onTestFinished }) => {
    const runtime = await started(onTestFinished, { ...onTier(tier), chaos: { poison: ['root'] }, maxReceiveCount: 1, visibilityTimeoutSeconds: 1 });
    const events = recordEvents(runtime);
    const runId = await runtime.startRun(handoff);
    const outcome = await outcomeOf(runtime, await runtime.waitForRun(runId), events);
    expect(outcome.run.status).toBe('FAILED');
    expect(outcome.run.error).toBe('poison message: step 0 of branch root kept failing after 1 delivery and went to the dead-letter queue');
    checkRunInvariants(outcome, 'poisoned root');
  }, 120_000);

  // A data folder is kept by the journal tier (`--data`'s) or the engines tier (the memory tier
  // keeps nothing); redrive and resume then open it on the tier that wrote it.
  if (tier !== 'memory') it('kept in the DLQ, redrive moves it back after the fix and resume completes the run', async ({ onTestFinished }) => {
    const data = mkdtempSync(join(tmpdir(), 'bs-redrive-'));
    const runtime = await started(onTestFinished, {
      tier,
      dataDir: data,
      chaos: { poison: ['root'] },
      poison: 'keep',
      maxReceiveCount: 2,
      visibilityTimeoutSeconds: 1,
    });
    const runId = await runtime.startRun(handoff);
    // Long-poll the DLQ itself: returns as soon as the third receive moved the message there
    // (a peek: visibility 0 leaves it where it is).
    const [parked] = await runtime.engines.dlqConsumer.receive({ max: 1, waitSeconds: 20, visibilityTimeout: 0 });
    expect(JSON.parse(parked.body)).toMatchObject({ runId, branchId: 'root', step: 0 });
    expect((await runtime.deps.store.getRun({ team: runtime.team, runId }))!.status).toBe('RUNNING');
    await runtime.close();

    // "The fix": the next process runs without the fault.
    const moved = captureIo();
    expect(await main(['redrive', '--data', data], moved)).toBe(0);
    expect(moved.outText()).toMatch(/^moved 1 message\(s\) from the dead-letter queue back to the step queue/);
    const empty = captureIo();
    expect(await main(['redrive', '--data', data], empty)).toBe(0);
    expect(empty.outText()).toMatch(/^moved 0 message\(s\)/);

    const io = captureIo();
    expect(await main(['resume', runId, '--data', data, '--json'], io), io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    expect(doc).toMatchObject({ status: 'COMPLETED', result: { edited: 'draft v1' } });
    expect(doc.branches).toEqual([expect.objectContaining({ id: 'root', status: 'COMPLETED', agent: 'Editor' })]);
    // Its own budget: four processes open the folder one after another (each starts the engines).
  }, 180_000);

  // Stopped while the child's last allowed delivery waits out its backoff: the message is not in
  // the DLQ yet, but its next receive would put it there. redrive must give it fresh deliveries
  // (it moved 0 messages, and resume then dead-lettered it beside the fan-out's new dispatch and
  // failed the child as poison). The journal tier's (`--data`'s) redrive does it; the engines
  // tier (folders of earlier versions) keeps in-flight deadlines, and its redrive moves the DLQ only.
  // The first process allows many deliveries, so that however late it stops after the second
  // failed one, none reaches the DLQ; the next process (maxReceiveCount 2) is the one for which
  // that message is on its last delivery.
  if (tier === 'journal') it('a child stopped on its last delivery: redrive, then resume, completes every child', async ({ onTestFinished }) => {
    const data = mkdtempSync(join(tmpdir(), 'bs-redrive-child-'));
    const runtime = await started(onTestFinished, {
      tier,
      dataDir: data,
      chaos: { poison: ['root.1'] },
      poison: 'keep',
      maxReceiveCount: 50,
      visibilityTimeoutSeconds: 1,
    });
    const retried = new Promise<void>((resolve) =>
      runtime.bus.subscribe((e) => {
        if (e.type === 'BranchRetryScheduled' && e.branchId === 'root.1' && e.detail.attempt === 2) resolve();
      }),
    );
    const { scenario } = await loadScenarioFile(`${EXAMPLES_DIR}simple-parallel.yaml`);
    const runId = await runtime.startRun(runInputOf(scenario));
    await retried;
    await runtime.close();

    const moved = captureIo();
    expect(await main(['redrive', '--data', data], moved)).toBe(0);
    expect(moved.outText()).toMatch(/^moved 0 message\(s\) from the dead-letter queue back to the step queue; 1 step message\(s\) that had failed deliveries get them back/);
    // resume, on the folder's queue settings (maxReceiveCount 2) and without the fault.
    const resumed = await started(onTestFinished, { tier, dataDir: data, maxReceiveCount: 2, visibilityTimeoutSeconds: 1 });
    await resumed.resume(runId);
    const outcome = await outcomeOf(resumed, await resumed.waitForRun(runId), []);
    const parts = (outcome.run.result as { parts: { results: object; failures: Record<string, string> } }).parts;
    expect(parts.failures).toEqual({});
    expect(Object.keys(parts.results).sort()).toEqual(['root.0', 'root.1', 'root.2']);
    expect(outcome.run.status).toBe('COMPLETED');
  }, 90_000);

  it('redrive needs --data', async () => {
    const io = captureIo();
    expect(await main(['redrive'], io)).toBe(2);
    expect(io.errText()).toMatch(/redrive needs --data/);
  });
});

// Timing-bound (a heartbeat must beat a 1 s visibility timeout): one tier after another, not at
// once with the other cases, so a busy event loop does not decide it.
describe.each(ENGINE_TIERS)('a slow step on the %s tier', (tier) => {
  it('a slow step that outlasts the visibility timeout is neither delivered twice nor dead-lettered', async ({ onTestFinished }) => {
    let calls = 0;
    const slow = {
      async invoke() {
        calls++;
        // Longer than visibility × maxReceiveCount: without the heartbeat it would be redelivered and dead-lettered.
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        return { response: { next_action: 'final_response', content: 'done' } };
      },
    };
    const runtime = await started(onTestFinished, { ...onTier(tier), invokers: { module: slow }, visibilityTimeoutSeconds: 1, maxReceiveCount: 1 });
    const runId = await runtime.startRun({ name: 'slow', request: 'x', entry: 'A', agents: { A: { kind: 'module', module: 'slow' } } });
    expect((await runtime.waitForRun(runId)).status).toBe('COMPLETED');
    expect(calls).toBe(1);
    // The run may end before the worker's invocation returns: wait for its acknowledgement.
    await runtime.settle();
    expect(runtime.deliveries).toEqual({ handled: 1, failed: 0, repeated: 0 });
    expect(runtime.deadLetters).toEqual({ failed: 0, told: 0, dropped: 0, malformed: 0 });
  });
});

describe('failPoisonedStep (use case)', () => {
  /** Runs until the child is waiting on its first step, then hands the case to `check`. */
  async function withWaitingTree(check: (deps: SpawnerDeps, runId: string) => Promise<void>) {
    const h = createMemoryHarness();
    const agents = scriptAgents({
      Boss: { allowed: ['Slow'], responses: [{ next_action: 'parallel_invoke', agents: ['Slow', 'Slow'] }, { next_action: 'final_response', content: '$input' }] },
      Slow: { responses: [{ $delayMs: 60_000, next_action: 'final_response', content: 'late' }] },
    });
    const ended = h.run({ runId: 'p1', name: 'p', request: 'x', entry: 'Boss', agents });
    while (h.events.filter((e) => e.type === 'BranchCreated').length < 3) await new Promise((r) => setImmediate(r));
    await check(h.deps, 'p1');
    return { h, ended };
  }

  it('fails a WAITING parent whose spawn step was poisoned, cancels its children, ends the run', async () => {
    const { h, ended } = await withWaitingTree(async (deps) => {
      const outcome = await failPoisonedStep(deps, { team: 'team-a', runId: 'p1', branchId: 'root', step: 0 }, { messageId: 'm', receiveCount: 5 });
      expect(outcome).toBe('failed');
    });
    const { run, branches } = await ended;
    expect(run.status).toBe('FAILED');
    expect(run.error).toBe('poison message: step 0 of branch root kept failing after 5 deliveries and went to the dead-letter queue');
    expect(branches.map((b) => b.status)).toEqual(['FAILED', 'CANCELLED', 'CANCELLED']);
    h.stop();
  });

  it('drops a stale message (its branch moved on) and re-tells the end of an ended branch', async () => {
    const { h, ended } = await withWaitingTree(async (deps) => {
      // root is WAITING on its step-0 spawn: a step-3 message is nobody's current work.
      expect(await failPoisonedStep(deps, { team: 'team-a', runId: 'p1', branchId: 'root', step: 3 }, { messageId: 'm' })).toBe('dropped');
      expect(await failPoisonedStep(deps, { team: 'team-a', runId: 'nope', branchId: 'root', step: 0 }, { messageId: 'm' })).toBe('dropped');
      // A child running its first step: its message is current; after it failed, a repeat only re-tells.
      expect(await failPoisonedStep(deps, { team: 'team-a', runId: 'p1', branchId: 'root.0', step: 0 }, { messageId: 'm' })).toBe('failed');
      expect(await failPoisonedStep(deps, { team: 'team-a', runId: 'p1', branchId: 'root.0', step: 0 }, { messageId: 'm' })).toBe('told');
      expect(await failPoisonedStep(deps, { team: 'team-a', runId: 'p1', branchId: 'root.1', step: 0 }, { messageId: 'm' })).toBe('failed');
    });
    const { run, branches } = await ended;
    // Both children failed: over the failure policy, the root fails too, naming the cause.
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/^children failed: 2 of 2 children failed .* — first failure root\.0: poison message: step 0 of branch root\.0/);
    expect(branches.map((b) => [b.id, b.status])).toEqual([['root', 'FAILED'], ['root.0', 'FAILED'], ['root.1', 'FAILED']]);
    h.stop();
  });
});

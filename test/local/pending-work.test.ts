/**
 * What a runtime's work waits on (LocalRuntime.pendingWork, local/pending-work.ts), as the hang
 * guard of a test prints it: a run held by a child whose agent call does not return.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentInvoker } from '../../core/ports';
import { LocalRuntime } from '../../local/runtime';

describe('pendingWork', () => {
  let runtime: LocalRuntime | undefined;
  afterEach(async () => {
    await runtime?.close();
    runtime = undefined;
  });

  it('names the branch not ended, the sync point not settled and the batch its fan-out waits for', async () => {
    let called!: () => void;
    const hung = new Promise<void>((resolve) => (called = resolve));
    // An agent whose call returns only when its branch is aborted (the run's cancel, below).
    const gate: AgentInvoker = {
      invoke: (call) => {
        called();
        return new Promise((_, reject) => call.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
      },
    };
    runtime = await LocalRuntime.start({ invokers: { module: gate } });
    const runId = await runtime.startRun({
      name: 'held',
      request: 'go',
      entry: 'Boss',
      agents: {
        Boss: { kind: 'script', allowed: ['Fast', 'Held'], responses: [{ next_action: 'parallel_invoke', agents: ['Fast', 'Held'] }, { next_action: 'final_response', content: '$input' }] },
        Fast: { kind: 'script', responses: [{ next_action: 'final_response', content: 'ok' }] },
        Held: { kind: 'module', module: 'gate' },
      },
    });
    await hung;
    const text = await LocalRuntime.describeLive();
    expect(text).toMatch(/steps being handled: [1-9]/);
    expect(text).toMatch(new RegExp(`run ${runId}: RUNNING; [23] branches not ended, 1 sync points waited on`));
    expect(text).toMatch(/ {2}root WAITING on sync point 1 \(agent Boss/);
    expect(text).toMatch(/ {2}root\.1 RUNNING \(agent Held, step 0\)/);
    expect(text).toMatch(/sync point root#1: [01] of 2 counted/);
    expect(text).toMatch(/-root-s1 \(root#1 of run .*\): not stopped; waiting on batch-0/);
    expect(text).toMatch(/batch-0: [01] of 2 children counted; the store has the token waited for/);
    await runtime.cancel(runId);
    await runtime.waitForRun(runId);
    expect(await runtime.pendingWork()).toMatch(/fan-out executions running: 0[\s\S]*: CANCELLED; 0 branches not ended, 0 sync points waited on/);
  });
});

/**
 * A callback answered on every engine tier of the local runtime (memory, journal, engines:
 * dynalite and fauxqs), through the use case the API and `callback` call: the first answer is
 * taken and the run completes with it, a second one is refused as answered already, and one after
 * a cancel or after its timeout as gone.
 * Each step awaits the run's events or its end, never time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, GoneError } from '../../core/errors';
import type { LifecycleEvent } from '../../core/events';
import { answerCallback } from '../../core/use-cases/suspend';
import { ENGINE_TIERS } from '../../local/embedded-engines';
import { LocalRuntime } from '../../local/runtime';
import { recordEvents, WATCHED_TEST_TIMEOUT_MS, watchRun } from '../reliability/support';
import { onTier, RUNTIME_START_TIMEOUT_MS } from '../support/tiers';

const APPROVAL = {
  name: 'approval',
  request: 'deploy v2',
  entry: 'Approver',
  agents: {
    Approver: {
      kind: 'script' as const,
      responses: [
        { next_action: 'wait_for_callback', timeout_seconds: 600, message: 'deploy v2?' },
        { next_action: 'final_response', content: { decision: '$input' } },
      ],
    },
  },
};

describe.each(ENGINE_TIERS)('callbacks on the %s tier', { concurrent: true }, (tier) => {
  let runtime: LocalRuntime;
  let events: LifecycleEvent[];
  beforeAll(async () => {
    runtime = await LocalRuntime.start(onTier(tier));
    events = recordEvents(runtime);
  }, RUNTIME_START_TIMEOUT_MS);
  afterAll(() => runtime?.close());

  /** The run's callback token, once its branch awaits the answer. */
  const asked = (runId: string) =>
    new Promise<string>((resolve) => {
      const find = () => events.filter((e) => e.type === 'BranchWaitingForCallback').find((e) => e.runId === runId);
      const seen = find();
      if (seen) return resolve(String(seen.detail.token));
      const stop = runtime.bus.subscribe(() => {
        const event = find();
        if (!event) return;
        stop();
        resolve(String(event.detail.token));
      });
    });
  const answer = (runId: string, token: string, value: unknown) => answerCallback(runtime.deps, { team: runtime.team, runId }, token, value);

  it('answered once: the run completes with the answer; a second answer is refused as answered already', { timeout: WATCHED_TEST_TIMEOUT_MS }, async () => {
    const runId = await runtime.startRun(APPROVAL);
    const token = await asked(runId);
    await expect(answer(runId, token, 'approved')).resolves.toEqual({ runId, branchId: 'root', status: 'ANSWERED' });
    await expect(answer(runId, token, 'refused')).rejects.toThrow(ConflictError);
    const outcome = await watchRun(runtime, runId, events);
    expect(outcome.run).toMatchObject({ status: 'COMPLETED', result: { decision: 'approved' } });
    expect(outcome.events.filter((e) => e.type === 'BranchResumed').map((e) => e.detail.reason)).toEqual(['callback-answered']);
    expect(runtime.errors).toEqual([]);
  });

  it('answered after its timeout: refused as gone, the branch FAILED with CallbackTimeout', { timeout: WATCHED_TEST_TIMEOUT_MS }, async () => {
    const late = structuredClone(APPROVAL);
    late.agents.Approver.responses[0].timeout_seconds = 1;
    const runId = await runtime.startRun(late);
    const token = await asked(runId);
    const outcome = await watchRun(runtime, runId, events);
    expect(outcome.run).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^CallbackTimeout: /) });
    await expect(answer(runId, token, 'approved')).rejects.toThrow(GoneError);
    await expect(answer(runId, token, 'approved')).rejects.toThrow(/ended FAILED \(CallbackTimeout: /);
    expect(runtime.errors).toEqual([]);
  });

  it('answered after a cancel: refused as gone, the branch CANCELLED', { timeout: WATCHED_TEST_TIMEOUT_MS }, async () => {
    const runId = await runtime.startRun(APPROVAL);
    const token = await asked(runId);
    await runtime.cancel(runId);
    const outcome = await watchRun(runtime, runId, events);
    expect(outcome.run.status).toBe('CANCELLED');
    await expect(answer(runId, token, 'approved')).rejects.toThrow(GoneError);
    await expect(answer(runId, token, 'approved')).rejects.toThrow(/the branch was cancelled/);
    expect(outcome.branches.map((b) => b.status)).toEqual(['CANCELLED']);
    expect(runtime.errors).toEqual([]);
  });
});

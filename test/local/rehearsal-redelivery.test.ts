/**
 * Redelivery in the rehearsal, on its queue clock (queue time runs 60 times as fast: the step
 * queue's 1,800 s visibility timeout lasts 30 s). The branch timeout is set to the default's
 * 900 s on the same clock (15 s), so the ratio of the two is AWS's: a failed step left to the
 * visibility timeout would come back after its branch timed out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { DEFAULT_LIMITS } from '../../core/model';
import { DEFAULT_QUEUE_TIME_SCALE } from '../../local/rehearsal/queue-clock';
import type { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import { loadScenarioFile } from '../../local/scenario-file';
import { rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';

let stack: RehearsalStack;
const events: LifecycleEvent[] = [];

beforeAll(async () => {
  stack = await startRehearsedStack({ maxContainers: 2 });
  stack.onLifecycleEvent((e) => void events.push(e));
}, 900_000);

afterAll(async () => {
  await stack?.close();
});

describe('a transient agent failure in the rehearsed stack', () => {
  it('is retried after a backoff within seconds, and the branch completes before its timeout', async () => {
    const { scenario } = await loadScenarioFile('examples/transient-failures.yaml');
    const branchTimeoutSeconds = Math.round(DEFAULT_LIMITS.branchTimeoutSeconds * DEFAULT_QUEUE_TIME_SCALE);
    const body = { ...runRequestBody(scenario), limits: { branchTimeoutSeconds } };
    const { run, branches } = await rehearseRun(stack, body);
    const runId = run.runId;
    const researcher = branches.find((b) => b.agent === 'Researcher')!;
    expect([researcher.status, researcher.error]).toEqual(['COMPLETED', undefined]);
    expect(run.status).toBe('COMPLETED');
    const retries = events.filter((e) => e.type === 'BranchRetryScheduled').filter((e) => e.runId === runId);
    expect(retries.map((e) => [e.branchId, e.detail.attempt])).toEqual([
      [researcher.id, 1],
      [researcher.id, 2],
    ]);
    for (const e of retries) expect(e.detail.delaySeconds).toBeGreaterThanOrEqual(1);
  }, 120_000);
});

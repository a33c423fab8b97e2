/**
 * Redelivery in the rehearsal, on its queue clock. The branch timeout is the default's 900 s on
 * the same clock as the step queue's 1,800 s visibility timeout, so the ratio of the two is AWS's:
 * a failed step left to the visibility timeout would come back after its branch timed out, and the
 * run would end with the branch TIMED_OUT. The clock runs 4 times as fast (not the default 60):
 * the branch timeout is real time, and at 225 s it is far above what the run's work takes on a
 * busy machine, while still half the 450 s the visibility timeout lasts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { DEFAULT_LIMITS } from '../../core/model';
import type { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import { loadScenarioFile } from '../../local/scenario-file';
import { rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';

/** Queue time 4 times as fast as real time (see above). */
const QUEUE_TIME_SCALE = 1 / 4;

let stack: RehearsalStack;
const events: LifecycleEvent[] = [];

beforeAll(async () => {
  stack = await startRehearsedStack({ maxContainers: 2, queueTimeScale: QUEUE_TIME_SCALE });
  stack.onLifecycleEvent((e) => void events.push(e));
}, 900_000);

afterAll(async () => {
  await stack?.close();
});

describe('a transient agent failure in the rehearsed stack', () => {
  it('is retried after a backoff within seconds, and the branch completes before its timeout', async () => {
    const { scenario } = await loadScenarioFile('examples/transient-failures.yaml');
    const branchTimeoutSeconds = Math.round(DEFAULT_LIMITS.branchTimeoutSeconds * QUEUE_TIME_SCALE);
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
  }, 420_000); // past the branch timeout: a step left to the visibility timeout fails as TIMED_OUT, not by the test's limit
});

/**
 * Every agent call is bounded: by the run's `limits.agentTimeoutSeconds` (the branch fails), and
 * below the step worker's remaining time (the step comes back later, with a backoff).
 */
import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { startRun } from '../../core/use-cases';
import type { LifecycleEvent } from '../../core/events';
import type { StepReceipt } from '../../core/ports';
import { createStepWorkerHandler } from '../../functions/handlers/step-worker';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

describe('the agent call bound', () => {
  it('a call that does not answer within limits.agentTimeoutSeconds is aborted and fails its branch', async () => {
    const h = createMemoryHarness();
    const { run, branches } = await h.run({
      name: 'hang',
      request: 'x',
      entry: 'A',
      agents: scriptAgents({ A: { responses: [{ $hang: true }] } }),
      limits: { agentTimeoutSeconds: 1 },
    });
    expect(run.status).toBe('FAILED');
    expect(branches[0].error).toBe('agent A failed: AgentTimeoutError: no answer within limits.agentTimeoutSeconds (1 s)');
    h.stop();
  });

  it("a call still running when the step worker's invocation nears its end is aborted, and the step comes back", async () => {
    const h = createMemoryHarness();
    await startRun(h.deps, { team: 't', runId: 'w1', name: 'w', request: 'x', entry: 'A', agents: scriptAgents({ A: { responses: [{ $hang: true }] } }) });
    const asked: number[] = [];
    const published: LifecycleEvent[] = [];
    const deps = {
      ...h.deps,
      queue: { send: h.deps.queue.send.bind(h.deps.queue), redeliverAfter: async (_r: StepReceipt, seconds: number) => void asked.push(seconds) },
      events: { publish: async (events: LifecycleEvent[]) => void published.push(...events) },
    };
    const worker = createStepWorkerHandler(deps);
    const record: SQSRecord = {
      messageId: 'm1', receiptHandle: 'rh', body: JSON.stringify({ team: 't', runId: 'w1', branchId: 'root', step: 0 }),
      attributes: { ApproximateReceiveCount: '1' } as never, messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:1:q', awsRegion: 'us-east-1',
    };
    // 30.2 s left: the call gets 200 ms (the step worker keeps 30 s for the step's own work).
    const response = await worker({ Records: [record] }, { getRemainingTimeInMillis: () => 30_200 });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }]);
    expect(asked).toHaveLength(1);
    expect(published.find((e) => e.type === 'BranchRetryScheduled')?.detail.error).toMatch(/invocation ended before the call could/);
    expect((await h.store.getBranch({ team: 't', runId: 'w1' }, 'root'))?.status).toBe('RUNNING');
    h.stop();
  });
});

/**
 * A step that runs longer than its queue's (scaled) visibility timeout. In AWS the queue's
 * visibility is at least the function's timeout, so a message cannot come back while the
 * invocation holding it runs; the rehearsal's fast queue clock must not make it come back either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseScenario } from '../../core/scenario';
import type { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import { rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';

let stack: RehearsalStack;
const deliveries = new Map<string, number>();

beforeAll(async () => {
  // The step queue's 1,800 s visibility lasts 2 s here; the steps below take 5 s.
  stack = await startRehearsedStack({ maxContainers: 2, queueTimeScale: 1 / 900 });
  stack.onQueueDelivery((d) => {
    for (const r of d.records) deliveries.set(r.messageId, (deliveries.get(r.messageId) ?? 0) + 1);
  });
}, 900_000);

afterAll(async () => {
  await stack?.close();
});

/** A one-agent run whose only step takes 5 s, started as a client starts one; its deliveries counted afresh. */
function fiveSecondStep(name: string) {
  const scenario = parseScenario(
    {
      name,
      request: 'take your time',
      entry: 'Slow',
      agents: { Slow: { kind: 'script', responses: [{ $delayMs: 5000, next_action: 'final_response', content: 'done' }] } },
    },
    `${name}.yaml`,
  );
  deliveries.clear();
  return rehearseRun(stack, runRequestBody(scenario));
}

describe('a step longer than the scaled visibility timeout', () => {
  it('is delivered once while its invocation runs, and the run completes', async () => {
    const { run } = await fiveSecondStep('long-step');
    expect(run.status).toBe('COMPLETED');
    expect([...deliveries.values()].filter((n) => n > 1)).toEqual([]);
  }, 120_000);

  it('comes back once the invocation holding it has timed out', async () => {
    const worker = stack.functionOf('step-worker');
    const timeout = worker.timeoutSeconds;
    // The step outlasts the worker's timeout: every invocation holding it dies.
    worker.timeoutSeconds = 3;
    try {
      const { run } = await fiveSecondStep('dead-step');
      expect(run.status).toBe('FAILED');
      expect(Math.max(...deliveries.values())).toBeGreaterThan(1);
    } finally {
      worker.timeoutSeconds = timeout;
    }
  }, 120_000);
});

/**
 * The step worker handles concurrent invocations (the local runtime's pollers share one handler):
 * each invocation reports its own failed records, no other. A failure reported to the wrong
 * invocation is a message deleted although its step failed: a lost step and a hung run.
 */
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { startRun } from '../../core/use-cases';
import { createStepWorkerHandler } from '../../functions/handlers/step-worker';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

function record(runId: string, messageId: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: JSON.stringify({ team: 't', runId, branchId: 'root', step: 0 }),
    attributes: {} as never,
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:1:q',
    awsRegion: 'us-east-1',
  };
}

describe('step-worker under concurrent invocations', () => {
  it('reports each invocation its own failures', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({ A: { responses: [{ $delayMs: 30, next_action: 'final_response', content: 'ok' }] } });
    for (const runId of ['slow-1', 'slow-2']) await startRun(h.deps, { team: 't', runId, name: 'n', request: 'x', entry: 'A', agents });
    // Steps of runs named "broken-*" fail (an infrastructure error), at once.
    const store = new Proxy(h.deps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'getBranch') return typeof value === 'function' ? value.bind(target) : value;
        return async (scope: { team: string; runId: string }, id: string) => {
          if (scope.runId.startsWith('broken')) throw new Error('store unavailable');
          return target.getBranch(scope, id);
        };
      },
    });
    const worker = createStepWorkerHandler({ ...h.deps, store });
    const slow: SQSEvent = { Records: [record('slow-1', 'a1'), record('slow-2', 'a2')] };
    const broken: SQSEvent = { Records: [record('broken-1', 'b1'), record('broken-2', 'b2')] };
    const [slowAnswer, brokenAnswer] = await Promise.all([worker(slow), worker(broken)]);
    expect(slowAnswer.batchItemFailures).toEqual([]);
    expect(brokenAnswer.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['b1', 'b2']);
    h.stop();
  });
});

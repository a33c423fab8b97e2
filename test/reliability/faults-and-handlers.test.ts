/**
 * The pieces the reliability suites stand on: fault injection is deterministic and bounded, the
 * dlq-handler Lambda sorts dead-lettered records, and the embedded engines keep queues, messages
 * (in flight ones included) and the table across a restart with `dataDir`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { startRun } from '../../core/use-cases';
import { createDlqHandler } from '../../functions/handlers/dlq-handler';
import { createFaults, InjectedCrash, parseChaos } from '../../local/chaos';
import { startLocalEngines } from '../../local/embedded-engines';
import { createMemoryHarness, scriptAgents } from '../support/memory-harness';

describe('fault injection', () => {
  it('parses every fault and names the known ones when one is wrong', () => {
    expect(parseChaos('duplicate-delivery,crash=before-enqueue,crash=inside-aggregate,agent-flaky=0.25,poison=root.1', 9)).toEqual({
      seed: 9,
      duplicateDelivery: true,
      crash: ['before-enqueue', 'inside-aggregate'],
      agentFlaky: 0.25,
      poison: ['root.1'],
    });
    expect(() => parseChaos('crash=nowhere')).toThrow(/the points are after-read-branch, /);
    expect(() => parseChaos('poison=')).toThrow(/poison=<branchId>/);
    expect(() => parseChaos('meteor')).toThrow(/known faults are duplicate-delivery, crash=<point>, agent-flaky=<p>, poison=<branchId>/);
  });

  it('crashes each piece of work once per point, whatever the order of the hits', () => {
    const faults = createFaults({ crash: ['before-enqueue'] });
    const hits = ['t/r/root@1', 't/r/root.0@1', 't/r/root@1', 't/r/root.0@1', 't/r/root@1'];
    const crashed = hits.map((key) => {
      try {
        faults.hit('before-enqueue', key);
        return false;
      } catch (error) {
        expect(error).toBeInstanceOf(InjectedCrash);
        return true;
      }
    });
    expect(crashed).toEqual([true, true, false, false, false]);
    expect(() => faults.hit('after-read-branch', 't/r/root@0')).not.toThrow(); // not a chosen point
    expect(faults.injected).toEqual({ 'before-enqueue': 2 });
  });

  it('poisons every step of the named branch, and only it', () => {
    const faults = createFaults({ poison: ['root.1'] });
    for (let i = 0; i < 3; i++) expect(() => faults.hit('after-read-branch', 'team/run/root.1@0')).toThrow(InjectedCrash);
    expect(() => faults.hit('after-read-branch', 'team/run/root.10@0')).not.toThrow();
    expect(() => faults.hit('before-enqueue', 'team/run/root.1@1')).not.toThrow();
    expect(faults.injected).toEqual({ poison: 3 });
  });

  it('flaky agents fail by branch, step and agent from the seed, not by call order', async () => {
    const ok = { invoke: async () => ({ response: 'fine' }) };
    const calls = Array.from({ length: 200 }, (_, i) => ({ branchId: `root.${i % 20}`, step: i % 3, agentName: `A${i % 2}` }));
    const outcomes = async (seed: number, order: typeof calls) => {
      const invoker = createFaults({ agentFlaky: 0.3, seed }).wrapInvoker(ok);
      const result = new Map<string, boolean>();
      for (const c of order) {
        const failed = await invoker.invoke(c as never).then(() => false, () => true);
        result.set(`${c.branchId}@${c.step}:${c.agentName}`, failed);
      }
      return result;
    };
    const forward = await outcomes(7, calls);
    expect(await outcomes(7, [...calls].reverse())).toEqual(forward);
    const failures = [...forward.values()].filter(Boolean).length;
    expect(failures).toBeGreaterThan(0);
    expect(failures).toBeLessThan(forward.size);
    expect(await outcomes(8, calls)).not.toEqual(forward);
  });
});

function dlqRecord(body: string, messageId: string, receiveCount = '3'): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body,
    attributes: { ApproximateReceiveCount: receiveCount } as never,
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:1:q-dlq',
    awsRegion: 'us-east-1',
  };
}

describe('dlq-handler', () => {
  it('fails the branch of a current poisoned step, drops stale and malformed records, retries on infrastructure errors', async () => {
    const h = createMemoryHarness();
    const agents = scriptAgents({ A: { responses: [{ next_action: 'final_response', content: 'x' }] } });
    await startRun(h.deps, { team: 't', runId: 'r1', name: 'n', request: 'x', entry: 'A', agents });
    const outcomes: string[] = [];
    const store = new Proxy(h.deps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'getBranch') return typeof value === 'function' ? value.bind(target) : value;
        return async (scope: { team: string; runId: string }, id: string) => {
          if (scope.runId === 'unreachable') throw new Error('store unavailable');
          return target.getBranch(scope, id);
        };
      },
    });
    const handler = createDlqHandler({ ...h.deps, store }, undefined, { onHandled: (o) => void outcomes.push(o) });
    const response = await handler({
      Records: [
        dlqRecord(JSON.stringify({ team: 't', runId: 'r1', branchId: 'root', step: 0 }), 'current', '6'),
        dlqRecord(JSON.stringify({ team: 't', runId: 'r1', branchId: 'root', step: 4 }), 'stale'),
        dlqRecord('{"not":"a step"}', 'malformed'),
        dlqRecord(JSON.stringify({ team: 't', runId: 'unreachable', branchId: 'root', step: 0 }), 'unreachable'),
      ],
    });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'unreachable' }]);
    expect(outcomes.sort()).toEqual(['dropped', 'failed', 'malformed']);
    const run = await h.store.getRun({ team: 't', runId: 'r1' });
    expect(run).toMatchObject({ status: 'FAILED', error: 'poison message: step 0 of branch root kept failing after 6 deliveries and went to the dead-letter queue' });
    h.stop();
  });
});

describe.each(['journal', 'engines'] as const)('the %s tier with a data folder', (tier) => {
  it('keeps the table, the queues and their messages (in flight ones come back) across a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bs-engines-'));
    const first = await startLocalEngines({ tier, dataDir, visibilityTimeoutSeconds: 1 });
    const scope = { team: 't', runId: 'kept' };
    await first.store.createRun({
      ...scope, name: 'kept', status: 'RUNNING', request: 'x', entry: 'A', agents: {}, limits: {} as never,
      failurePolicy: { maxFailedFraction: 0.5 }, createdAt: 1, branchCount: 1,
    });
    await first.queue.send([{ ...scope, branchId: 'root', step: 0 }, { ...scope, branchId: 'root', step: 1 }]);
    const [inFlight] = await first.consumers.start.receive({ max: 1, waitSeconds: 0 });
    expect(inFlight).toBeDefined();
    await first.close();

    // Different settings on the same data: the existing queue takes them (opened on the tier that wrote it).
    const second = await startLocalEngines({ dataDir, visibilityTimeoutSeconds: 2, maxReceiveCount: 3 });
    expect(second.tier).toBe(tier);
    try {
      expect((await second.store.getRun(scope))?.name).toBe('kept');
      const bodies: number[] = [];
      while (bodies.length < 2) {
        // Step 0 takes the start lane's queue, step 1 the continue lane's (core/step-lanes).
        for (const consumer of [second.consumers.start, second.consumers.continue]) {
          for (const r of await consumer.receive({ max: 10, waitSeconds: 1 })) bodies.push(JSON.parse(r.body).step);
        }
      }
      expect(bodies.sort()).toEqual([0, 1]);
    } finally {
      await second.close();
    }
  }, 30_000);
});

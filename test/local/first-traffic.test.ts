/**
 * "First traffic" through the rehearsal: what a deployed stack meets first, with the AWS
 * behaviours the rehearsal models (local/rehearsal/recursion.ts, step-functions.ts). A long
 * hand-off chain (Lambda's recursive loop detection), a wide fan-out on the batched path (one Map
 * iteration per batch of children), and a fan-out whose execution fails (its Catch).
 * The 10,000-child fan-out itself is a CLI run (`npx branch-spawner run
 * examples/first-traffic/fan-out-10000.yaml --rehearse`) and a model test
 * (rehearsal-step-functions.test.ts); here a scaled one takes the same path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flattenTree } from '../../core/tree';
import { AWS_QUOTAS } from '../../local/rehearsal/aws-quotas';
import { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { branchRecord, runRecord } from '../adapters/branch-store-conformance';
import { synthesize } from '../../local/rehearsal/synth';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import { loadScenarioFile } from '../../local/scenario-file';
import { REHEARSAL_AGGREGATORS, rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';

let stack: RehearsalStack;

beforeAll(async () => {
  // The same assembly as rehearsal.test.ts (reused when it is up to date).
  stack = await startRehearsedStack();
}, 900_000);

afterAll(async () => {
  await stack?.close();
});

const rehearse = (body: Record<string, unknown>) => rehearseRun(stack, body);

function stepWorkerResource() {
  const [, resource] = stack.template
    .ofType('AWS::Lambda::Function')
    .find(([, f]) => f.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'step-worker')!;
  return resource as { Properties: Record<string, unknown> };
}

describe('a 40-step hand-off chain', () => {
  it('completes: every hand-off is one more step-worker invocation along one trace, and RecursiveLoop is Allow', async () => {
    const { scenario } = await loadScenarioFile('examples/first-traffic/hand-off-chain-40.yaml');
    expect(stepWorkerResource().Properties.RecursiveLoop).toBe('Allow');
    const { run, branches } = await rehearse(runRequestBody(scenario));
    expect(run.status).toBe('COMPLETED');
    expect(run.result).toBe('step 39');
    expect(branches).toHaveLength(1);
    expect(stack.recursionStops).toEqual([]);
    expect(stack.denials).toEqual([]);
  }, 120_000);

  it('with Lambda\'s default (no RecursiveLoop, as before) is stopped at its 17th invocation: dead-lettered, the branch FAILED', async () => {
    const { scenario } = await loadScenarioFile('examples/first-traffic/hand-off-chain-40.yaml');
    const worker = stepWorkerResource();
    const allowed = worker.Properties.RecursiveLoop;
    delete worker.Properties.RecursiveLoop;
    try {
      const { run, branches } = await rehearse({ ...runRequestBody(scenario), name: 'loop-detected' });
      expect(run.status).toBe('FAILED');
      expect(branches[0].status).toBe('FAILED');
      expect(branches[0].error).toMatch(/^poison message: step 16 of branch root /);
      expect(stack.recursionStops).toEqual([{ functionName: stack.functionOf('step-worker').name, messageId: expect.any(String), invocations: 17 }]);
    } finally {
      worker.Properties.RecursiveLoop = allowed;
      stack.recursionStops.length = 0;
    }
  }, 120_000);
});

describe('a run listed page by page through API Gateway', () => {
  // Branches of about 1.3 KB (a result of 900 bytes, kept in the item): a page of 1,000 is more
  // than one DynamoDB Query answers (1 MB), the tree's page of all 3,000 four times more. Written
  // to the stack's table directly: running 3,000 branches would only make the test slow. (The
  // 30,000-branch run is test/functions/api-pagination.test.ts, on the handler.)
  it("reads each page in as many Queries as it takes, every answer under Lambda's 6 MB; the branch pages and the tree's join to exactly its branches", async () => {
    const scope = { team: stack.team, runId: 'listed-3k' };
    const ids = ['root', ...Array.from({ length: 2_999 }, (_, i) => `root.${i}`)];
    await stack.store.createRun(runRecord(scope, { branchCount: ids.length }));
    const result = { summary: 'x'.repeat(900) };
    await stack.store.createBranches(ids.map((id) => branchRecord(scope, id, id === 'root' ? null : 'root', { status: 'COMPLETED', result })));
    const readPages = async (path: string, take: (body: any) => string[]) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await stack.request('GET', path, cursor ? { query: { cursor } } : {});
        expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
        expect(Buffer.byteLength(response.body)).toBeLessThan(AWS_QUOTAS.lambdaSyncPayloadBytes);
        const body = JSON.parse(response.body) as { cursor: string | null };
        seen.push(...take(body));
        cursor = body.cursor;
        pages++;
      } while (cursor && pages <= ids.length);
      return { seen, pages };
    };
    const branches = await readPages(`/runs/${scope.runId}/branches`, (body) => body.branches.map((b: { id: string }) => b.id));
    // DynamoDB may end a full last page with a key to go on from: then one more, empty page.
    expect(branches.pages).toBeGreaterThanOrEqual(3);
    expect(branches.pages).toBeLessThanOrEqual(4);
    expect(branches.seen.sort()).toEqual([...ids].sort());
    const tree = await readPages(`/runs/${scope.runId}/tree`, (body) => flattenTree(body.tree).map((b) => b.id));
    expect(tree.pages).toBe(1);
    expect(tree.seen.sort()).toEqual([...ids].sort());
    expect(stack.errors).toEqual([]);
  }, 300_000);
});

describe('a wide fan-out on the batched path', () => {
  // From two children on, the stack dispatches children in batches (core/fan-out-plan.ts): 200
  // children at 50 at a time are one batch whose window is 50, so one Map iteration, not 200.
  it('200 children at 50 at a time: one batch, 4 transitions, every child once, the parent resumed once', async () => {
    const children = 200;
    const body = {
      name: 'batched',
      request: 'score',
      entry: 'Fanner',
      limits: { maxFanOut: children, maxBranches: children + 1, maxConcurrentBranches: 50 },
      agents: {
        Fanner: {
          kind: 'script',
          allowed: ['Scorer'],
          rules: [{ when: 'child_count', responses: [{ next_action: 'final_response', content: 'all scored' }] }],
          responses: [{ next_action: 'parallel_invoke', agents: Array.from({ length: children }, () => 'Scorer') }],
        },
        Scorer: { kind: 'script', responses: [{ next_action: 'final_response', content: 1 }] },
      },
    };
    const { run, branches } = await rehearse(body);
    expect(run.status).toBe('COMPLETED');
    expect(run.result).toBe('all scored');
    expect(branches.filter((b) => b.status === 'COMPLETED')).toHaveLength(children + 1);
    // The parent stepped twice (the spawn, then once on the aggregate); each child once.
    expect(branches.find((b) => b.id === 'root')).toMatchObject({ stepCount: 2 });
    expect(branches.filter((b) => b.id !== 'root').every((b) => b.stepCount === 1)).toBe(true);
    expect(stack.sfn.transitionsOfRun(stack.team, run.runId)).toBe(4);
    expect(stack.denials).toEqual([]);
  }, 300_000);
});

describe('payload quotas at the edges of the stack', () => {
  it('API Gateway refuses a request over 10 MB before any function runs', async () => {
    const response = await stack.request('POST', '/runs', { body: JSON.stringify({ name: 'big', entry: 'A', pad: 'p'.repeat(10 * 1024 * 1024) }) });
    expect(response).toMatchObject({ statusCode: 413, body: JSON.stringify({ message: 'Request Too Long' }) });
  });

  it('the step queues take messages up to the SQS default (256 KiB), as the template names no size', async () => {
    const { GetQueueAttributesCommand, GetQueueUrlCommand } = await import('@aws-sdk/client-sqs');
    const sqs = (stack as unknown as { sqs: { client: { send(c: unknown): Promise<any> } } }).sqs.client;
    const name = stack.functionOf('step-worker').environment.STEP_QUEUE_URL.split('/').pop();
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['MaximumMessageSize'] }));
    expect(Number(Attributes.MaximumMessageSize)).toBe(256 * 1024);
  });
});

describe('a fan-out whose execution fails', () => {
  it('records the parent\'s failure (the Catch of Aggregate): the run ends FAILED instead of waiting forever', async () => {
    const aggregate = stack.functionOf('aggregate');
    const timeout = aggregate.timeoutSeconds;
    // Every Aggregate invocation times out: its retries run out, then its Catch.
    aggregate.timeoutSeconds = 0.001;
    try {
      const { run, branches } = await rehearse({
        name: 'aggregate-fails',
        request: 'go',
        entry: 'Boss',
        agents: {
          Boss: { kind: 'script', allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: ['Worker', 'Worker'] }] },
          Worker: { kind: 'script', responses: [{ next_action: 'final_response', content: 'done' }] },
        },
      });
      expect(run.status).toBe('FAILED');
      const root = branches.find((b) => b.id === 'root')!;
      expect(root.status).toBe('FAILED');
      expect(root.error).toMatch(/^the fan-out of sync point 1 failed: Sandbox\.Timedout/);
      expect(stack.denials).toEqual([]);
    } finally {
      aggregate.timeoutSeconds = timeout;
    }
  }, 120_000);
});

describe('a step-worker container killed mid-batch', () => {
  it('the whole batch comes back after the visibility timeout and the run completes with every child once', async () => {
    // Fast and slow children in turn: a batch of two or more holds both, so a kill once one of
    // its children completed finds another still running (the worker runs a batch's records at once).
    const width = 24;
    const children = Array.from({ length: width }, (_, i) => (i % 2 ? 'Slow' : 'Fast'));
    const stepWorker = stack.template.ofType('AWS::Lambda::Function').find(([, f]) => f.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'step-worker')![0];
    let runId: string | undefined;
    type Delivered = { messageId: string; runId: string; branchId: string; receiveCount: number };
    const batches: Delivered[][] = [];
    const completed = new Set<string>();
    let killed: { batch: Delivered[]; containers: number } | undefined;
    const stopDeliveries = stack.onQueueDelivery((d) => {
      if (d.functionId !== stepWorker) return;
      batches.push(d.records.map((r) => {
        const body = JSON.parse(r.body) as { runId: string; branchId: string };
        return { messageId: r.messageId, runId: body.runId, branchId: body.branchId, receiveCount: Number(r.attributes.ApproximateReceiveCount) };
      }));
    });
    const stopEvents = stack.onLifecycleEvent((e) => {
      if (e.type !== 'BranchCompleted' || e.runId !== runId || killed) return;
      completed.add(e.branchId!);
      const batch = batches.find((b) => b.length >= 2 && b.every((r) => r.runId === runId && r.receiveCount === 1) && b.some((r) => completed.has(r.branchId)) && b.some((r) => !completed.has(r.branchId)));
      if (batch) killed = { batch, containers: stack.killBusyContainers('step-worker') };
    });
    try {
      const response = await stack.request('POST', '/runs', {
        body: {
          name: 'killed-mid-batch',
          request: 'go',
          entry: 'Boss',
          agents: {
            Boss: { kind: 'script', allowed: ['Fast', 'Slow'], responses: [{ next_action: 'parallel_invoke', agents: children }, { next_action: 'final_response', content: '$input' }] },
            Fast: { kind: 'script', responses: [{ $delayMs: 50, next_action: 'final_response', content: 'fast' }] },
            Slow: { kind: 'script', responses: [{ $delayMs: 3000, next_action: 'final_response', content: 'slow' }] },
          },
        },
      });
      expect(response.statusCode, response.body).toBe(202);
      runId = (JSON.parse(response.body) as { runId: string }).runId;
      const run = await stack.waitForRun(runId);
      const branches = await stack.listBranches(runId);

      expect(killed, `no batch of two or more: ${batches.map((b) => b.length).join(',')}`).toBeDefined();
      expect(killed!.containers).toBeGreaterThanOrEqual(1);
      // Every record of the killed batch, the completed ones too, was delivered again.
      for (const record of killed!.batch) {
        const again = batches.flat().filter((r) => r.messageId === record.messageId && r.receiveCount > 1);
        expect(again.length, `${record.branchId} was not delivered again`).toBeGreaterThanOrEqual(1);
      }
      expect(run.status).toBe('COMPLETED');
      const parts = (run.result as { parts?: unknown }).parts ?? run.result;
      const { results, failures, metadata } = parts as { results: Record<string, string>; failures: object; metadata: { succeeded: number; failed: number } };
      expect(failures).toEqual({});
      expect(Object.keys(results)).toHaveLength(width);
      for (let i = 0; i < width; i++) expect(results[`root.${i}`]).toBe(children[i] === 'Fast' ? 'fast' : 'slow');
      // Each child counted once, each made its one step once.
      expect([metadata.succeeded, metadata.failed]).toEqual([width, 0]);
      for (const child of branches.filter((b) => b.parentId === 'root')) expect([child.id, child.status, child.stepCount]).toEqual([child.id, 'COMPLETED', 1]);
      expect(stack.denials).toEqual([]);
    } finally {
      stopDeliveries();
      stopEvents();
    }
  }, 240_000);
});

describe('function concurrency', () => {
  it('a new account (concurrency 10) cannot give the step-worker its reserved concurrency: the stack is refused, as CloudFormation refuses it', async () => {
    const assembly = await synthesize({ aggregators: REHEARSAL_AGGREGATORS });
    await expect(RehearsalStack.start({ assembly, accountConcurrency: 10 })).rejects.toThrow(
      /^function \w+: Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of \[100\] \(the account's concurrency is 10; this stack reserves 900\)$/,
    );
  }, 300_000);

  it('a throttled batch goes back to its queue and comes back after the visibility timeout, counted as a receive', async () => {
    const worker = stack.functionOf('step-worker');
    const reserved = worker.reservedConcurrency;
    // Fewer than the event sources' pollers: twelve children due at once come in two batches at
    // least (10 records a batch), and the second one is throttled while the first runs.
    worker.reservedConcurrency = 1;
    const deliveries: { messageId: string; branchId: string; receiveCount: number }[] = [];
    const stop = stack.onQueueDelivery((d) => {
      for (const r of d.records) deliveries.push({ messageId: r.messageId, branchId: (JSON.parse(r.body) as { branchId: string }).branchId, receiveCount: Number(r.attributes.ApproximateReceiveCount) });
    });
    const throttledBefore = stack.throttles.length;
    try {
      const { run, branches } = await rehearse({
        name: 'throttled',
        request: 'go',
        entry: 'Boss',
        agents: {
          Boss: { kind: 'script', allowed: ['Worker'], responses: [{ next_action: 'parallel_invoke', agents: Array.from({ length: 12 }, () => 'Worker') }, { next_action: 'final_response', content: '$input' }] },
          Worker: { kind: 'script', responses: [{ $delayMs: 1500, next_action: 'final_response', content: 'done' }] },
        },
      });
      const throttled = stack.throttles.slice(throttledBefore);
      expect(throttled.length).toBeGreaterThanOrEqual(1);
      expect(throttled.every((t) => t.functionName === worker.name && t.caller !== 'Step Functions')).toBe(true);
      // What was throttled was received again later: its receive count went up.
      expect(deliveries.some((d) => d.receiveCount > 1)).toBe(true);
      expect(run.status).toBe('COMPLETED');
      expect(branches.filter((b) => b.status === 'COMPLETED')).toHaveLength(13);
    } finally {
      stop();
      worker.reservedConcurrency = reserved;
    }
  }, 240_000);
});

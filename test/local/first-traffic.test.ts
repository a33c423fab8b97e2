/**
 * "First traffic" through the rehearsal: what a deployed stack meets first, with the AWS
 * behaviours the rehearsal models (local/rehearsal/recursion.ts, step-functions.ts). A long
 * hand-off chain (Lambda's recursive loop detection), a fan-out on the Distributed Map path (child
 * executions whose outputs the Map collects), and a fan-out whose execution fails (its Catch).
 * The 10,000-child fan-out itself is a CLI run (`npx branch-spawner run
 * examples/first-traffic/fan-out-10000.yaml --rehearse`) and a model test
 * (rehearsal-step-functions.test.ts); here a scaled one takes the same path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import { loadScenarioFile } from '../../local/scenario-file';
import { rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';

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

describe('a fan-out on the Distributed Map path', () => {
  // 40 children in flight are the most one inline Map runs: past that, child executions of 40.
  // (At 5 at a time the Distributed path starts past 1,000 children: the CLI run and the model test.)
  it('200 children at 50 at a time: 5 child executions of 40, every child once, the parent resumed once', async () => {
    const children = 200;
    const body = {
      name: 'distributed',
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
    const executions = stack.childExecutionsOf(run.runId, 'root', 1);
    expect(executions).toHaveLength(children / 40);
    expect(executions.every((e) => e.status === 'SUCCEEDED')).toBe(true);
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

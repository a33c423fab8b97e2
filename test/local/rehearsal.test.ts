// Long-running: started first (vitest.config.ts).
/**
 * The deploy rehearsal (local/rehearsal/): the synthesized stack created on the embedded engines,
 * every function run from its bundled asset with its role enforced. One synth for this file (the
 * rehearsal team with the tests' aggregators module), one rehearsed stack shared by the cases.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import { LAMBDA_PLATFORM_LOG_BYTES } from '../../core/cost';
import { RehearsalError, RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { runRequestBody } from '../../local/rehearsal/rehearse-command';
import type { Assembly } from '../../local/rehearsal/synth';
import { runDocument } from '../../local/run-command';
import { LocalRuntime } from '../../local/runtime';
import { loadScenarioFile } from '../../local/scenario-file';
import { behaviours, checkInvariants } from '../support/behaviours';
import { LARGE_READER, REHEARSAL_AGGREGATORS as AGGREGATORS, rehearsalAssembly, rehearseRun, startRehearsedStack } from '../support/rehearsed-stack';
import { wideAggregateScenario } from '../support/wide-aggregate';
import { runInputOf } from '../../core/use-cases/start-run';

// The LLM example needs a model server; `module` agents are refused in AWS by design (local runs
// only); wide-10000 is a benchmark workload (npm run bench -- --wide), not a test-sized run.
const EXAMPLES = readdirSync('examples')
  .filter((f) => f.endsWith('.yaml') && !['llm-research.yaml', 'wide-10000.yaml'].includes(f))
  .filter((f) => !readFileSync(join('examples', f), 'utf8').includes('kind: module'))
  .sort();

let assembly: Assembly;
let stack: RehearsalStack;
const events: LifecycleEvent[] = [];

beforeAll(async () => {
  assembly = await rehearsalAssembly();
  stack = await startRehearsedStack();
  stack.onLifecycleEvent((e) => void events.push(e));
}, 900_000);

afterAll(async () => {
  await stack?.close();
});

const rehearse = (body: Record<string, unknown>) => rehearseRun(stack, body);

/**
 * The net under a test that rehearses runs: each awaits its runs' terminal states (the stack
 * tells an IAM denial or a failed execution at once), and a loaded machine stretches the
 * functions' containers, not the work; this only bounds a run that never ends.
 */
const RUNS = { timeout: 10 * 60_000 };

/** The run document without what differs between two runs of the same scenario (the run id, the seconds used). */
function comparable(doc: ReturnType<typeof runDocument>) {
  const { runId: _runId, ...rest } = structuredClone(doc);
  const budgets = (rest.metrics as { budgets?: Record<string, { used?: number }> }).budgets;
  if (budgets?.maxRunSeconds) delete budgets.maxRunSeconds.used;
  return rest;
}

describe('the rehearsed stack', () => {
  it('is created from the template: table with its GSI, queues with their redrive, API routes', async () => {
    const t = stack.template;
    const [, table] = t.ofType('AWS::DynamoDB::Table')[0];
    const { DescribeTableCommand } = await import('@aws-sdk/client-dynamodb');
    const described = await (stack as unknown as { dynamo: { client: { send(c: unknown): Promise<any> } } }).dynamo.client.send(
      new DescribeTableCommand({ TableName: t.physicalOf(t.ofType('AWS::DynamoDB::Table')[0][0]).ref }),
    );
    expect(described.Table.KeySchema).toEqual(table.Properties!.KeySchema);
    expect(described.Table.GlobalSecondaryIndexes.map((g: { IndexName: string }) => g.IndexName)).toEqual(
      table.Properties!.GlobalSecondaryIndexes.map((g: { IndexName: string }) => g.IndexName),
    );
    const missing = await stack.request('GET', '/nothing');
    expect(missing.statusCode).toBe(403);
    const unknownRun = await stack.request('GET', '/runs/nope');
    expect(unknownRun.statusCode).toBe(404);
  });
});

describe('the bundles', () => {
  it('were built by the local esbuild: ESM, minified, with the require banner and a source map', () => {
    const functions = stack.template.ofType('AWS::Lambda::Function').filter(([, f]) => f.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME);
    expect(functions.length).toBeGreaterThanOrEqual(6);
    for (const [, fn] of functions) {
      const assetDir = join(assembly.dir, `asset.${String(fn.Properties!.Code.S3Key).replace(/\.zip$/, '')}`);
      const code = readFileSync(join(assetDir, 'index.mjs'), 'utf8');
      expect(code.startsWith("import { createRequire as __bsCreateRequire } from 'node:module';")).toBe(true);
      expect(code).toMatch(/\bexport\s*\{[^}]*\bas handler\b|export\s*\{\s*\w+\s+as\s+handler/);
      // Minified: a few very long lines (what newlines remain sit inside template literals).
      expect(code.length / code.split('\n').length).toBeGreaterThan(1000);
      expect(existsSync(join(assetDir, 'index.mjs.map'))).toBe(true);
    }
  });
});

describe('examples: the same result document as run', RUNS, () => {
  let local: LocalRuntime;
  beforeAll(async () => {
    const aggregators = await import(AGGREGATORS);
    local = await LocalRuntime.start({ aggregators });
  });
  afterAll(async () => {
    await local?.close();
  });

  it('metrics.cost is what the deployed functions metered: the transitions, SQS requests and events of the local run', async () => {
    const { scenario } = await loadScenarioFile('examples/hierarchical.yaml');
    const localRunId = await local.startRun(runInputOf(scenario));
    await local.waitForRun(localRunId);
    const expected = await local.costOf(localRunId);
    const { run } = await rehearse({ ...runRequestBody(scenario), name: 'cost' });
    const cost = await stack.costOf(run.runId);
    expect(cost.stepFunctionsTransitions).toBe(expected.stepFunctionsTransitions);
    expect(cost.eventBridgeEntries).toBe(expected.eventBridgeEntries);
    // Sums of fractions (each message's share of the event source's receive and delete).
    expect(cost.sqsRequests).toBeCloseTo(expected.sqsRequests, 6);
    expect(cost.stepFunctionsTransitions).toBeGreaterThan(0);
    // DynamoDB units as the engine reported them to each function's store.
    expect(cost.writeUnits).toBeGreaterThanOrEqual(3 * (await stack.listBranches(run.runId)).length);
    expect(cost.readUnits).toBeGreaterThan(0);
    // Lambda as the bundled functions metered themselves: every invocation billed at least 1 ms
    // at the template's memory (512 MB the least), with Lambda's own log lines.
    expect(cost.lambdaRequests).toBeGreaterThan(0);
    expect(cost.lambdaGbSeconds).toBeGreaterThanOrEqual(cost.lambdaRequests * 0.001 * 0.5);
    expect(cost.logBytes).toBeGreaterThanOrEqual(cost.lambdaRequests * LAMBDA_PLATFORM_LOG_BYTES - 1);
    const doc = runDocument(run, await stack.listBranches(run.runId), cost);
    expect(doc.metrics.cost).toMatchObject({ stepFunctionsTransitions: expected.stepFunctionsTransitions, eventBridgeEntries: expected.eventBridgeEntries });
    expect(doc.metrics.cost?.usd).toBeGreaterThan(0);
  });

  for (const file of EXAMPLES) {
    it(file, async () => {
      const { scenario } = await loadScenarioFile(join('examples', file));
      const localRunId = await local.startRun(runInputOf(scenario));
      const localRun = await local.waitForRun(localRunId);
      const expected = runDocument(localRun, await local.deps.store.listBranches({ team: local.team, runId: localRunId }));
      const { run, branches } = await rehearse(runRequestBody(scenario));
      expect(comparable(runDocument(run, branches))).toEqual(comparable(expected));
      expect(stack.denials).toEqual([]);
    });
  }
});

describe('the behaviours table through the rehearsal', RUNS, () => {
  for (const behaviour of behaviours) {
    it(behaviour.name, async () => {
      const { run, branches } = await rehearse({ ...behaviour.run });
      const outcome = { run, branches, events: events.filter((e) => e.runId === run.runId) };
      behaviour.check(outcome);
      checkInvariants(outcome);
      expect(stack.denials).toEqual([]);
    });
  }
});

describe('callbacks through the stack', RUNS, () => {
  it("a callback answered through API Gateway (IAM-signed): 202 once, 409 again, the run completes with the answer; 410 after a cancel and after the timeout", async () => {
    const scenario = {
      name: 'rehearsed-approval',
      request: 'ship',
      entry: 'Approver',
      agents: { Approver: { kind: 'script', responses: [{ next_action: 'wait_for_callback', timeout_seconds: 600 }, { next_action: 'final_response', content: '$input' }] } },
    };
    // Every callback event of this test's runs (the bus tells it; a run's id is known after its POST).
    const asked = new Map<string, (token: string) => void>();
    const tokens = new Map<string, string>();
    const stop = stack.onLifecycleEvent((e) => {
      if (e.type !== 'BranchWaitingForCallback') return;
      tokens.set(e.runId, String(e.detail.token));
      asked.get(e.runId)?.(String(e.detail.token));
    });
    const awaiting = async (body: typeof scenario = scenario) => {
      const started = await stack.request('POST', '/runs', { body });
      expect(started.statusCode, started.body).toBe(202);
      const { runId } = JSON.parse(started.body) as { runId: string };
      const token = await new Promise<string>((resolve) => {
        asked.set(runId, resolve);
        if (tokens.has(runId)) resolve(tokens.get(runId)!);
      });
      return { runId, path: `/runs/${runId}/callbacks/${token}` };
    };
    try {
      const { runId, path } = await awaiting();
      const first = await stack.request('POST', path, { body: { approved: true } });
      expect(first.statusCode, first.body).toBe(202);
      const again = await stack.request('POST', path, { body: { approved: false } });
      expect(again.statusCode, again.body).toBe(409);
      const run = await stack.waitForRun(runId);
      expect(run).toMatchObject({ status: 'COMPLETED', result: { approved: true } });

      const cancelled = await awaiting();
      const cancel = await stack.request('POST', `/runs/${cancelled.runId}/cancel`);
      expect(cancel.statusCode, cancel.body).toBe(202);
      const late = await stack.request('POST', cancelled.path, { body: { approved: true } });
      expect(late.statusCode, late.body).toBe(410);
      expect(JSON.parse(late.body)).toMatchObject({ error: 'GoneError', message: expect.stringMatching(/the branch was cancelled/) });
      expect((await stack.waitForRun(cancelled.runId)).status).toBe('CANCELLED');

      const timedOut = await awaiting({ ...scenario, agents: { Approver: { kind: 'script', responses: [{ next_action: 'wait_for_callback', timeout_seconds: 1 }, scenario.agents.Approver.responses[1]] } } });
      expect(await stack.waitForRun(timedOut.runId)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^CallbackTimeout: /) });
      const tooLate = await stack.request('POST', timedOut.path, { body: { approved: true } });
      expect(tooLate.statusCode, tooLate.body).toBe(410);
      expect(JSON.parse(tooLate.body)).toMatchObject({ error: 'GoneError', message: expect.stringMatching(/CallbackTimeout/) });
      expect(stack.denials).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe('step lanes', RUNS, () => {
  it('both step queues are created with their redrive to the one DLQ; first steps take the start lane, resumed parents the continue lane', async () => {
    const t = stack.template;
    const [, worker] = t.ofType('AWS::Lambda::Function').find(([, f]) => f.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'step-worker')!;
    const env = worker.Properties!.Environment.Variables as Record<string, { Ref: string }>;
    const lanes = { start: env.STEP_QUEUE_URL.Ref, continue: env.CONTINUE_QUEUE_URL.Ref };
    expect(lanes.start).not.toBe(lanes.continue);

    // On the SQS engine: both queues redrive to the same DLQ after 5 receives.
    const { GetQueueUrlCommand, GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
    const sqs = (stack as unknown as { sqs: { client: { send(c: unknown): Promise<any> } } }).sqs.client;
    const redrives = await Promise.all(
      Object.values(lanes).map(async (id) => {
        const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: t.physicalOf(id).attributes.QueueName }));
        const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['RedrivePolicy'] }));
        return JSON.parse(Attributes.RedrivePolicy) as { deadLetterTargetArn: string; maxReceiveCount: number };
      }),
    );
    expect(redrives[0]).toEqual(redrives[1]);
    expect(Number(redrives[0].maxReceiveCount)).toBe(5);

    // The step-worker has one event source per lane; a fan-out's steps arrive on the right one.
    const steps: Record<string, number[]> = { [lanes.start]: [], [lanes.continue]: [] };
    const stop = stack.onQueueDelivery((delivery) => {
      for (const record of delivery.records) steps[delivery.queueId]?.push((JSON.parse(record.body) as { step: number }).step);
    });
    try {
      const { scenario } = await loadScenarioFile('examples/simple-parallel.yaml');
      const { run, branches } = await rehearse({ ...runRequestBody(scenario), name: 'lanes' });
      expect(run.status).toBe('COMPLETED');
      const parents = branches.filter((b) => b.spawn);
      expect(parents.length).toBeGreaterThan(0);
      expect(steps[lanes.start].length).toBeGreaterThanOrEqual(branches.length);
      expect(steps[lanes.start].every((step) => step === 0)).toBe(true);
      // Each parent's step after its fan-in came through the continue lane.
      expect(steps[lanes.continue].length).toBeGreaterThanOrEqual(parents.length);
      expect(steps[lanes.continue].every((step) => step > 0)).toBe(true);
    } finally {
      stop();
    }
  });
});

describe('values of any size', RUNS, () => {
  it("an aggregate past 400 KB completes through the stack's bucket, every S3 call checked against the caller's role", async () => {
    const bucket = stack.template.ofType('AWS::S3::Bucket');
    expect(bucket).toHaveLength(1);
    const children = 120;
    const { run } = await rehearse(wideAggregateScenario(children, 4_000, { maxConcurrentBranches: 20 }));
    expect(run.error ?? null).toBeNull();
    expect(run.status).toBe('COMPLETED');
    expect(stack.denials).toEqual([]);
    // The API previews it, and gives it whole on its own route.
    const view = JSON.parse((await stack.request('GET', `/runs/${run.runId}`)).body);
    expect(view).toMatchObject({ resultTruncated: true, result: { child_count: children } });
    expect(view.resultBytes).toBeGreaterThan(400 * 1024);
    const whole = await stack.request('GET', `/runs/${run.runId}/branches/root/result`);
    expect(whole.statusCode).toBe(200);
    expect(Object.keys(JSON.parse(whole.body).result.results)).toHaveLength(children);

    // Without s3:GetObject the api function cannot read it: denied, naming the action and the object.
    const { roleLogicalId, statements } = stack.roleStatementsOf('api');
    try {
      stack.setRoleStatements(
        roleLogicalId,
        statements.map((st) => ({ ...st, Action: ([] as string[]).concat(st.Action ?? []).filter((a) => a !== 's3:GetObject') })),
      );
      const denied = await stack.request('GET', `/runs/${run.runId}/branches/root/result`);
      expect(denied.statusCode).toBeGreaterThanOrEqual(500);
      expect(stack.denials.map((d) => `${d.action} ${d.resource}`)).toContainEqual(
        expect.stringMatching(new RegExp(`^s3:GetObject arn:aws:s3:::${escape(stack.template.physicalOf(bucket[0][0]).ref)}/blobs/.+/[0-9a-f]{64}$`)),
      );
    } finally {
      stack.setRoleStatements(roleLogicalId, statements);
      stack.denials.length = 0;
    }
  });

  it("a lambda agent handed a 6.6 MB aggregate gets its large values by presigned URL, within Lambda's 6 MB request", async () => {
    // 110 children x 60,000 characters: whole, the agent's request (the input, and the memory that
    // holds it) is over 6 MB, and Lambda refuses it (RequestEntityTooLargeException) before the function runs.
    const children = 110;
    const { run, branches } = await rehearse(wideAggregateScenario(children, 60_000, { maxConcurrentBranches: 20, handOffTo: LARGE_READER.agent }));
    expect(run.error ?? null).toBeNull();
    expect(run.status).toBe('COMPLETED');
    expect(stack.denials).toEqual([]);
    const root = branches.find((b) => b.id === 'root')!;
    expect(root.agent).toBe(LARGE_READER.agent);
    const answer = run.result as { byReference: string[]; childCount: number; resultsRead: number; textBytes: number; inputBytes: number };
    expect(answer.byReference).toContain('input');
    expect(answer).toMatchObject({ childCount: children, resultsRead: children, textBytes: children * 60_000 });
    expect(answer.inputBytes).toBeGreaterThan(6 * 1024 * 1024);
  });
});

describe('IAM', RUNS, () => {
  it('a role that lacks a permission its code needs fails the rehearsal naming the function, action and resource', async () => {
    const own = await RehearsalStack.start({ assembly, maxContainers: 2 });
    try {
      const { roleLogicalId, statements } = own.roleStatementsOf('step-worker');
      const withoutStart = statements
        .map((s) => ({ ...s, Action: ([] as string[]).concat(s.Action ?? []).filter((a) => a !== 'states:StartExecution') }))
        .filter((s) => s.Action.length > 0);
      expect(statements.some((s) => ([] as string[]).concat(s.Action ?? []).includes('states:StartExecution'))).toBe(true);
      own.setRoleStatements(roleLogicalId, withoutStart);
      const { scenario } = await loadScenarioFile('examples/simple-parallel.yaml');
      const response = await own.request('POST', '/runs', { body: runRequestBody(scenario) });
      const { runId } = JSON.parse(response.body) as { runId: string };
      const failure = await own.waitForRun(runId).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(RehearsalError);
      const stepWorker = own.roleStatementsOf('step-worker');
      expect((failure as Error).message).toMatch(
        new RegExp(`${escape(stepWorkerName(own))} is not authorized to perform states:StartExecution on arn:aws:states:[^ ]+:stateMachine:branch-spawner-rehearsal-fan-out`),
      );
      expect(stepWorker.roleLogicalId).toBe(roleLogicalId);

      // Given back, the same scenario completes.
      own.setRoleStatements(roleLogicalId, statements);
      own.denials.length = 0;
      const again = await own.request('POST', '/runs', { body: { ...runRequestBody(scenario), name: 'again' } });
      const run = await own.waitForRun((JSON.parse(again.body) as { runId: string }).runId);
      expect(run.status).toBe('COMPLETED');
    } finally {
      await own.close();
    }
    // Its own budget: it starts a second stack beside the file's (containers, engines).
  }, 180_000);
});

function stepWorkerName(s: RehearsalStack): string {
  const [id] = s.template.ofType('AWS::Lambda::Function').find(([, r]) => r.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'step-worker')!;
  return s.template.physicalOf(id).ref;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

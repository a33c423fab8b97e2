import type { APIGatewayProxyEvent, Context, EventBridgeEvent, SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { API_METHODS, createApiHandler } from '../../functions/handlers/api';
import { createFanOutTaskHandlers } from '../../functions/handlers/fan-out-tasks';
import { createStepWorkerHandler, stepRetryDelaySeconds, STEP_RETRY_MAX_SECONDS } from '../../functions/handlers/step-worker';
import type { LifecycleEvent } from '../../core/events';
import type { StepReceipt } from '../../core/ports';
import { createTriggerHandler } from '../../functions/handlers/trigger';
import { runIdFor } from '../../functions/messages';
import { ValidationError } from '../../core/errors';
import { createMemoryHarness } from '../support/memory-harness';
import type { AgentRegistry } from '../../core/agent-kinds';

const agents: AgentRegistry = { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'done' }] } };
const scenario = { name: 's', request: 'x', entry: 'A', agents };

function record(body: string, messageId: string): SQSRecord {
  return {
    messageId, receiptHandle: `rh-${messageId}`, body, attributes: {} as never, messageAttributes: {},
    md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:1:q', awsRegion: 'us-east-1',
  };
}

function apiEvent(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): APIGatewayProxyEvent {
  return {
    httpMethod: method, path, headers, body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    isBase64Encoded: false, queryStringParameters: null, multiValueHeaders: {}, multiValueQueryStringParameters: null,
    pathParameters: null, stageVariables: null, resource: path, requestContext: {} as never,
  };
}

describe('step-worker', () => {
  it('reports exactly the records that failed (batchItemFailures) and drops unreadable ones', async () => {
    const h = createMemoryHarness();
    const { startRun } = await import('../../core/use-cases');
    await startRun(h.deps, { team: 't', runId: 'r1', ...scenario });
    // A store that fails for one branch: its record must come back, the others not.
    const failing = { ...h.deps, store: new Proxy(h.deps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'getBranch') return typeof value === 'function' ? value.bind(target) : value;
        return async (scope: { runId: string }, id: string) => {
          if (scope.runId === 'broken') throw new Error('store unavailable');
          return target.getBranch(scope as never, id);
        };
      },
    }) };
    const worker = createStepWorkerHandler(failing);
    const event: SQSEvent = {
      Records: [
        record(JSON.stringify({ team: 't', runId: 'r1', branchId: 'root', step: 0 }), 'ok'),
        record(JSON.stringify({ team: 't', runId: 'broken', branchId: 'root', step: 0 }), 'bad'),
        record('{not json', 'garbage'),
        record(JSON.stringify({ team: 't', runId: 'r1', branchId: 'root', step: -1 }), 'invalid'),
      ],
    };
    const response = await worker(event);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'bad' }]);
    expect((await h.store.getRun({ team: 't', runId: 'r1' }))?.status).toBe('COMPLETED');
    h.stop();
  });
});

describe('step-worker: a failed step comes back after a backoff', () => {
  it('sets the record visible again after a delay growing with its receive count, and says so in an event', async () => {
    const h = createMemoryHarness();
    const asked: { receipt: StepReceipt; seconds: number }[] = [];
    const published: LifecycleEvent[] = [];
    const store = new Proxy(h.deps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'getRun') return typeof value === 'function' ? value.bind(target) : value;
        return async () => {
          throw new Error('store unavailable');
        };
      },
    });
    const deps = {
      ...h.deps,
      store,
      queue: { send: h.deps.queue.send.bind(h.deps.queue), redeliverAfter: async (receipt: StepReceipt, seconds: number) => void asked.push({ receipt, seconds }) },
      events: { publish: async (events: LifecycleEvent[]) => void published.push(...events) },
    };
    // No jitter (random 0): half of each capped exponential.
    const worker = createStepWorkerHandler(deps, { random: () => 0 });
    const body = JSON.stringify({ team: 't', runId: 'r9', branchId: 'root.2', step: 0 });
    const failures = [];
    for (const count of [1, 3, 9]) {
      const r = { ...record(body, `m${count}`), attributes: { ApproximateReceiveCount: String(count) } as never };
      failures.push(...(await worker({ Records: [r] })).batchItemFailures);
    }
    expect(failures).toEqual([{ itemIdentifier: 'm1' }, { itemIdentifier: 'm3' }, { itemIdentifier: 'm9' }]);
    expect(asked.map((a) => [a.receipt.receiptHandle, a.seconds])).toEqual([['rh-m1', 1], ['rh-m3', 4], ['rh-m9', 30]]);
    expect(asked[0].receipt.message).toEqual({ team: 't', runId: 'r9', branchId: 'root.2', step: 0 });
    const retries = published.filter((e) => e.type === 'BranchRetryScheduled');
    expect(retries).toHaveLength(published.length);
    expect(retries.map((e) => [e.type, e.branchId, e.detail.attempt, e.detail.delaySeconds])).toEqual([
      ['BranchRetryScheduled', 'root.2', 1, 1],
      ['BranchRetryScheduled', 'root.2', 3, 4],
      ['BranchRetryScheduled', 'root.2', 9, 30],
    ]);
    expect(retries[0].detail.error).toMatch(/store unavailable/);
    h.stop();
  });

  it('the backoff has jitter, doubles with each delivery and stays capped well under the branch timeout', () => {
    expect(stepRetryDelaySeconds(1, () => 1)).toBe(2);
    expect(stepRetryDelaySeconds(2, () => 0)).toBe(2);
    expect(stepRetryDelaySeconds(2, () => 1)).toBe(4);
    expect(stepRetryDelaySeconds(50, () => 1)).toBe(STEP_RETRY_MAX_SECONDS);
    expect(STEP_RETRY_MAX_SECONDS * 10).toBeLessThanOrEqual(900);
  });

  it('a backoff that cannot be set leaves the failure reported (the visibility timeout brings it back)', async () => {
    const h = createMemoryHarness();
    const deps = {
      ...h.deps,
      store: { ...h.deps.store, getRun: async () => { throw new Error('store unavailable'); } } as typeof h.deps.store,
      queue: { send: async () => undefined, redeliverAfter: async () => { throw new Error('sqs down'); } },
    };
    const worker = createStepWorkerHandler(deps);
    const response = await worker({ Records: [record(JSON.stringify({ team: 't', runId: 'r', branchId: 'root', step: 0 }), 'x')] });
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'x' }]);
    h.stop();
  });
});

describe('trigger', () => {
  const event = (detail: unknown, detailType = 'RunRequested', id = 'evt-1'): EventBridgeEvent<string, unknown> => ({
    id, version: '0', account: '1', time: '', region: 'us-east-1', resources: [], source: 'branch-spawner.client',
    'detail-type': detailType, detail,
  });

  it('starts a run from a RunRequested event, once per event id', async () => {
    const h = createMemoryHarness();
    const trigger = createTriggerHandler(h.deps, { team: 't', policy: { registry: agents, inline: 'none' } });
    const first = await trigger(event({ name: 'from-event', request: 'go', entry: 'A' }));
    const again = await trigger(event({ name: 'from-event', request: 'go', entry: 'A' }));
    expect(first.created).toBe(true);
    expect(again).toEqual({ runId: first.runId, created: false });
    h.stop();
  });

  it("an event's run id does not follow from its idempotency key (kept apart, as the API keeps a caller's)", async () => {
    const h = createMemoryHarness();
    const trigger = createTriggerHandler(h.deps, { team: 't', policy: { registry: agents, inline: 'none' } });
    const first = await trigger(event({ name: 'nightly', request: 'go', entry: 'A', idempotencyKey: 'nightly-2026-12-07' }, 'RunRequested', 'evt-a'));
    // The same key in another event (EventBridge's retry, a second publish) is the same run.
    const again = await trigger(event({ name: 'nightly', request: 'go', entry: 'A', idempotencyKey: 'nightly-2026-12-07' }, 'RunRequested', 'evt-b'));
    expect(again).toEqual({ runId: first.runId, created: false });
    // Nobody who guesses the key can compute the id (it was the hash of team and key).
    expect(first.runId).not.toBe(runIdFor('t', 'nightly-2026-12-07'));
    expect(first.runId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    h.stop();
  });

  it('refuses a malformed event or a wrong detail-type with a ValidationError (bounded retries, then DLQ)', async () => {
    const h = createMemoryHarness();
    const trigger = createTriggerHandler(h.deps, { team: 't', policy: { registry: agents, inline: 'none' } });
    await expect(trigger(event({ entry: 'A' }))).rejects.toThrow(/name/);
    await expect(trigger(event({ name: 'x', entry: 'A' }, 'Other'))).rejects.toThrow(ValidationError);
    await expect(trigger(event({ name: 'x', entry: 'A', agents: { Evil: { kind: 'http', url: 'http://attacker' } } }))).rejects.toThrow(
      /inline http agents are not accepted/,
    );
    h.stop();
  });
});

describe('api', () => {
  const context = {} as Context;

  it('starts a run (202), honours Idempotency-Key, and serves run, branches, tree and metrics', async () => {
    const h = createMemoryHarness();
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't' });
    const started = await api(apiEvent('POST', '/runs', scenario, { 'Idempotency-Key': 'k1' }), context);
    expect(started.statusCode).toBe(202);
    const { runId } = JSON.parse(started.body);
    const repeat = await api(apiEvent('POST', '/runs', scenario, { 'idempotency-key': 'k1' }), context);
    expect(JSON.parse(repeat.body)).toEqual({ runId, created: false });
    expect(JSON.parse((await api(apiEvent('GET', `/runs/${runId}`), context)).body)).toMatchObject({ runId, status: 'RUNNING' });
    expect(JSON.parse((await api(apiEvent('GET', `/runs/${runId}/branches`), context)).body).branches).toHaveLength(1);
    const tree = await api({ ...apiEvent('GET', `/runs/${runId}/tree`), queryStringParameters: { format: 'mermaid' } }, context);
    expect(tree.body).toMatch(/^flowchart TD/);
    expect(JSON.parse((await api(apiEvent('GET', `/runs/${runId}/metrics`), context)).body)).toMatchObject({ totalCreated: 1 });
    h.stop();
  });

  it('maps errors to JSON 400/404/405/409/413 in one place', async () => {
    const h = createMemoryHarness();
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'none' }, teamOf: () => 't', maxBodyBytes: 1000 });
    const status = async (e: APIGatewayProxyEvent) => {
      const r = await api(e, context);
      expect(r.headers?.['content-type']).toBe('application/json');
      return [r.statusCode, JSON.parse(r.body).error];
    };
    expect(await status(apiEvent('POST', '/runs', '{oops'))).toEqual([400, 'ValidationError']);
    expect(await status(apiEvent('POST', '/runs', { ...scenario, agents: { A: { kind: 'http', url: 'http://x' } } }))).toEqual([400, 'ForbiddenError']);
    expect(await status(apiEvent('GET', '/runs/nope'))).toEqual([404, 'NotFoundError']);
    expect(await status(apiEvent('GET', '/nowhere'))).toEqual([404, 'NotFoundError']);
    expect(await status(apiEvent('DELETE', '/runs/abc'))).toEqual([405, 'MethodNotAllowedError']);
    expect(await status(apiEvent('POST', '/runs', 'x'.repeat(2000)))).toEqual([413, 'PayloadTooLargeError']);
    h.stop();
  });
});

describe('api: its methods', () => {
  it('routes each method of API_METHODS (the resources API Gateway has), and no other', async () => {
    const h = createMemoryHarness();
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't' });
    const sample: Record<string, string> = { id: 'r1', branchId: 'root.0', ref: 'a'.repeat(64), token: 'tok' };
    const routed = async (method: string, path: string) => {
      const r = await api(apiEvent(method, path), {} as Context);
      const message = String(JSON.parse(r.body).message ?? '');
      return r.statusCode !== 405 && !message.startsWith('no route for');
    };
    for (const entry of API_METHODS) {
      const [method, resource] = entry.split(' ');
      expect(await routed(method, resource.replace(/\{(\w+)\}/g, (_m, name: string) => sample[name])), entry).toBe(true);
    }
    expect(await routed('DELETE', '/runs/r1')).toBe(false);
    expect(await routed('GET', '/runs/r1/nothing')).toBe(false);
    h.stop();
  });
});

describe('api: limits', () => {
  const context = {} as Context;
  const answer = async (api: ReturnType<typeof createApiHandler>, limits: Record<string, number>) => {
    const r = await api(apiEvent('POST', '/runs', { ...scenario, limits }), context);
    return { status: r.statusCode, body: JSON.parse(r.body) };
  };

  it('refuses a limit over its ceiling with 400 naming limits.<field>, whatever the stack allows', async () => {
    const h = createMemoryHarness();
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't', limitMaxima: {} });
    for (const [field, value] of [['maxStepsPerBranch', 1e9], ['branchTimeoutSeconds', 31_536_000], ['maxInvalidResponses', 1e9]] as const) {
      const { status, body } = await answer(api, { [field]: value });
      expect(status, field).toBe(400);
      expect(body.field).toBe(`limits.${field}`);
      expect(body.message).toMatch(/ceiling/);
    }
    h.stop();
  });

  it("refuses a limit over the team's maximum with 400 naming limits.<field>", async () => {
    const h = createMemoryHarness();
    const api = createApiHandler(h.deps, { policy: { registry: {}, inline: 'any' }, teamOf: () => 't', limitMaxima: { maxStepsPerBranch: 30 } });
    const { status, body } = await answer(api, { maxStepsPerBranch: 31 });
    expect(status).toBe(400);
    expect(body).toMatchObject({ error: 'LimitExceededError', field: 'limits.maxStepsPerBranch' });
    expect(body.message).toMatch(/this stack allows at most 30/);
    expect((await answer(api, { maxStepsPerBranch: 30 })).status).toBe(202);
    h.stop();
  });
});

describe('fan-out tasks', () => {
  it('validate their input and name the bad field', async () => {
    const h = createMemoryHarness();
    const tasks = createFanOutTaskHandlers(h.deps);
    await expect(tasks.aggregate({ team: 't', runId: 'r', parentId: 'root', seq: 0 })).rejects.toThrow(/seq/);
    await expect(tasks.recordChildFailure({ team: 't', runId: 'r', parentId: 'root', seq: 1 })).rejects.toThrow(/branchId/);
    await expect(tasks.aggregate({ team: 't', runId: 'missing', parentId: 'root', seq: 1 })).resolves.toBeUndefined();
    // The failed-iteration tasks take their retry count ($$.State.RetryCount) from the ASL.
    const child = { team: 't', runId: 'missing', parentId: 'root', seq: 1, branchId: 'root.0', error: 'States.Timeout' };
    await expect(tasks.recordChildFailure({ ...child, retryCount: 0 })).resolves.toBeUndefined();
    await expect(tasks.recordChildFailure({ ...child, retryCount: -1 })).rejects.toThrow(/retryCount/);
    const batch = { team: 't', runId: 'missing', parentId: 'root', seq: 1, first: 0, count: 2, error: 'States.Timeout' };
    await expect(tasks.recordBatchFailure({ ...batch, retryCount: 2 })).resolves.toBeUndefined();
    await expect(tasks.recordBatchFailure({ ...batch, retryCount: 1.5 })).rejects.toThrow(/retryCount/);
    h.stop();
  });
  it('share one function: a payload with a task token dispatches a batch, one with a range records the batch\'s failure', async () => {
    const h = createMemoryHarness();
    const tasks = createFanOutTaskHandlers(h.deps);
    const scope = { team: 't', runId: 'r' };
    // DispatchBatch: the token is kept, the first `window` children of the batch are sent with the batch.
    await tasks.recordFailure({ ...scope, parentId: 'root', seq: 1, first: 10, count: 5, window: 2, taskToken: 'tok-1' });
    expect(await h.deps.store.getBatchToken(scope, 'root', 1, 10)).toBe('tok-1');
    const sent = [(await h.queue.receive()).body, (await h.queue.receive()).body];
    const batch = { first: 10, count: 5, window: 2 };
    expect(sent).toEqual([
      { ...scope, branchId: 'root.10', step: 0, batch },
      { ...scope, branchId: 'root.11', step: 0, batch },
    ]);
    expect(h.queue.depth).toBe(0);
    // RecordBatchFailure: a range and no token (no child of it exists here: nothing to end).
    await expect(tasks.recordFailure({ ...scope, parentId: 'root', seq: 1, first: 10, count: 5, error: 'States.Timeout' })).resolves.toBeUndefined();
    await expect(tasks.recordFailure({ ...scope, parentId: 'root', seq: 1, first: 10, count: 5, window: 0, taskToken: 'x' })).rejects.toThrow(/window/);
    h.stop();
  });
});

/**
 * Cancel through the public contract: `dev`'s HTTP API and its event stream only. A three-level
 * tree (10 Mid copies, each spawning 5 Leaf copies that each spawn 2 more: 161 branches, 10 at a
 * time) is cancelled with `POST /runs/{id}/cancel` at seeded random moments (after the k-th event
 * of the run, plus a few ms). After the cancel has answered, nothing may start or end other than
 * CANCELLED, nothing may be left PENDING/RUNNING/WAITING, every branch has its events, and once
 * the server's work is quiescent the tree is still exactly what it was.
 *
 * The seed of each trial is in every assertion message; CONTRACT_SEED=<n> replays one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import { startDevServer, type DevServer } from '../../local/dev-server';
import { between, expectEveryLifecycleEvent, seededRandom, trialSeeds, within } from './contract-support';

const TOP_WIDTH = 10;
const SCENARIO = {
  name: 'three-levels',
  request: 'go',
  entry: 'Top',
  limits: { maxConcurrentBranches: 10 },
  agents: {
    Top: {
      kind: 'script',
      allowed: ['Mid'],
      responses: [
        { next_action: 'parallel_invoke', agents: Array(TOP_WIDTH).fill('Mid'), action_input: { Mid: 'mid' } },
        { next_action: 'final_response', content: '$input' },
      ],
    },
    // One agent, three levels of copies (the next_actions dialect): mid → 5 leaves → 2 twigs each.
    // The short delays spread the run over a second or so, so that a cancel can land anywhere in it.
    Mid: {
      kind: 'script',
      rules: [
        { when: 'child_count', responses: [{ next_actions: [], content: '$input' }] },
        { when: 'mid', responses: [{ $delayMs: 10, next_actions: [['leaf', 'leaf', 'leaf', 'leaf', 'leaf']] }] },
        { when: 'leaf', responses: [{ $delayMs: 20, next_actions: [['twig', 'twig']] }] },
        { when: 'twig', responses: [{ $delayMs: 30, next_actions: [], content: 'twig done' }] },
      ],
      responses: [{ next_actions: [], content: 'no rule matched' }],
    },
  },
};
const BRANCHES = 1 + TOP_WIDTH + TOP_WIDTH * 5 + TOP_WIDTH * 5 * 2;
/** The same tree with each Mid's 5 Leaf copies in two groups run one after the other (3, then 2). */
const TWO_GROUPS = structuredClone(SCENARIO);
TWO_GROUPS.agents.Mid.rules[1] = { when: 'mid', responses: [{ $delayMs: 10, next_actions: [['leaf', 'leaf', 'leaf'], ['leaf', 'leaf']] }] };

interface Branch {
  id: string;
  parentId: string | null;
  status: string;
  stepCount: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

let server: DevServer;
/** Every lifecycle event of the team, from one `GET /events` stream opened before any run. */
const events: LifecycleEvent[] = [];
const listeners = new Set<() => void>();
const stream = new AbortController();

beforeAll(async () => {
  server = await startDevServer({ port: 0 });
  const response = await fetch(`${server.url}/events`, { signal: stream.signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  void (async () => {
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (frame.includes(': connected')) connected();
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (frame.includes('event: lifecycle') && data) events.push(JSON.parse(data.slice(6)) as LifecycleEvent);
      }
      for (const listener of listeners) listener();
    }
  })();
  await ready;
});

afterAll(async () => {
  stream.abort();
  await server?.close();
});

const api = async (method: string, path: string, body?: unknown) => {
  const response = await fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  return { status: response.status, body: (await response.json()) as any };
};

/** Resolves once the stream has carried `count` events of the run (or its end). */
function afterEvents(runId: string, count: number): Promise<number> {
  return new Promise((resolve) => {
    const check = () => {
      const mine = events.filter((e) => e.runId === runId);
      if (mine.length >= count || mine.some(isRunEnd)) {
        listeners.delete(check);
        resolve(mine.length);
      }
    };
    listeners.add(check);
    check();
  });
}

/** The server's work is over (no step queued or running, no fan-out left): nothing can change any more. */
const quiescent = (label: string) =>
  within(server.runtime.settle(), 30_000, () => `${label}: the server still had work 30 s after the cancel (a fan-out or step left running)`);

/** A run's view without its cost (every request, a repeated cancel's included, is metered). */
const withoutCost = (run: any) => ({ ...run, metrics: { ...run.metrics, cost: undefined } });

const tree = async (runId: string): Promise<Branch[]> => (await api('GET', `/runs/${runId}/branches`)).body.branches;

describe('cancel through dev: POST /runs/{id}/cancel at random moments', () => {
  let eventsOfCleanRun = 0;

  it('the tree runs to its end uncancelled (the reference for where a cancel can land)', async () => {
    const started = await api('POST', '/runs', SCENARIO);
    expect(started.status).toBe(202);
    const runId = started.body.runId;
    await afterEvents(runId, Number.MAX_SAFE_INTEGER);
    await quiescent('clean run');
    const run = (await api('GET', `/runs/${runId}`)).body;
    const branches = await tree(runId);
    expect(run.status).toBe('COMPLETED');
    expect(branches).toHaveLength(BRANCHES);
    expect(branches.every((b) => b.status === 'COMPLETED')).toBe(true);
    expectEveryLifecycleEvent(events, run, branches, 'clean run');
    eventsOfCleanRun = events.filter((e) => e.runId === runId).length;
  });

  it.each(trialSeeds(1, 4))('seed %i: after the cancel nothing starts or ends but CANCELLED, nothing is left active, and it stays so', async (seed) => {
    expect(eventsOfCleanRun, 'the clean run ran first').toBeGreaterThan(0);
    const random = seededRandom(seed);
    // Anywhere from the first event to late in the run (well before its end: the run must still be cancellable).
    const afterEvent = between(random, 1, Math.floor(eventsOfCleanRun * 0.7));
    const extraMs = between(random, 0, 15);
    // Even seeds: each Mid's leaves in two groups (the second one is opened by the first's settlement).
    const scenario = seed % 2 === 0 ? TWO_GROUPS : SCENARIO;
    let label = `seed ${seed} (${seed % 2 === 0 ? 'two groups, ' : ''}cancel after event ${afterEvent} + ${extraMs} ms)`;

    // A cancel that came after the run's end (a slow machine) is no trial: a smaller k is tried, at most three times.
    let runId = '';
    let answeredAt = 0;
    let at = '';
    for (let k = afterEvent, attempt = 0; !answeredAt; k = Math.max(1, Math.floor(k / 2)), attempt++) {
      expect(attempt, `${label}: the run ended before every cancel of three tries`).toBeLessThan(3);
      const started = await api('POST', '/runs', scenario);
      expect(started.status, label).toBe(202);
      runId = started.body.runId;
      const seen = await afterEvents(runId, k);
      if (extraMs) await new Promise((resolve) => setTimeout(resolve, extraMs));
      const cancel = await api('POST', `/runs/${runId}/cancel`);
      at = `${label}, try ${attempt + 1}: cancel after ${seen} events, run ${runId}`;
      if (cancel.status === 409 && /already COMPLETED/.test(cancel.body.message)) continue;
      answeredAt = Date.now();
      expect(cancel, `${at}: the cancel is accepted`).toEqual({ status: 202, body: { runId, status: 'CANCELLED' } });
    }
    label = at;

    const run = (await api('GET', `/runs/${runId}`)).body;
    expect(run.status, label).toBe('CANCELLED');
    const cancelledAt: number = run.endedAt;
    expect(cancelledAt, label).toBeLessThanOrEqual(answeredAt);

    await quiescent(label);
    const branches = await tree(runId);
    const active = branches.filter((b) => ['PENDING', 'RUNNING', 'WAITING'].includes(b.status)).map((b) => `${b.id}:${b.status}`);
    expect(active, `${label}: branches left active`).toEqual([]);
    expect(branches.some((b) => b.status === 'CANCELLED'), `${label}: the cancel cut the tree`).toBe(true);
    expect(branches.length, `${label}: no more branches than the whole tree`).toBeLessThanOrEqual(BRANCHES);

    // The cancel's own call is the grace: once it answered, nothing ends any other way.
    const endedOtherwiseAfter = branches
      .filter((b) => b.status !== 'CANCELLED' && (b.endedAt ?? 0) > answeredAt)
      .map((b) => `${b.id}:${b.status} ended ${b.endedAt! - answeredAt} ms after the cancel answered`);
    expect(endedOtherwiseAfter, `${label}: ended other than CANCELLED after the cancel`).toEqual([]);
    // A spawn already under way may still write children after the run was cancelled: none of
    // them may run a step or end other than CANCELLED.
    const ranAfter = branches
      .filter((b) => b.createdAt > cancelledAt && (b.status !== 'CANCELLED' || b.stepCount > 0))
      .map((b) => `${b.id}:${b.status} steps ${b.stepCount}, created ${b.createdAt - cancelledAt} ms after the cancel`);
    expect(ranAfter, `${label}: created after the cancel and ran`).toEqual([]);
    const startedAfter = branches
      .filter((b) => b.startedAt !== null && b.startedAt > answeredAt)
      .map((b) => `${b.id}:${b.status} started ${b.startedAt! - answeredAt} ms after the cancel answered`);
    expect(startedAfter, `${label}: started after the cancel`).toEqual([]);

    // The events say the same: no completion after the cancel answered, every branch told.
    const mine = events.filter((e) => e.runId === runId);
    const lateEnds = mine
      .filter((e) => (e.type === 'BranchCompleted' || e.type === 'BranchFailed') && e.time > answeredAt)
      .map((e) => `${e.type} ${e.branchId} at +${e.time - answeredAt} ms`);
    expect(lateEnds, `${label}: end events other than BranchCancelled after the cancel`).toEqual([]);
    expectEveryLifecycleEvent(events, run, branches, label);

    // It stays so: the run and every branch are as they were, and cancelling again changes nothing.
    const again = await api('POST', `/runs/${runId}/cancel`);
    expect(again.status, `${label}: a second cancel`).toBe(202);
    await quiescent(label);
    expect(withoutCost((await api('GET', `/runs/${runId}`)).body), `${label}: the run after all work ended`).toEqual(withoutCost(run));
    expect(await tree(runId), `${label}: the tree after all work ended`).toEqual(branches);
  });
});

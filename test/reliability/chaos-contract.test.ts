// Long-running: started first (vitest.config.ts).
/**
 * Faults combined, through the CLI only (`branch-spawner run --chaos … --seed n --trace f --json`):
 * what a user sees — the exit code, the `--json` document and the `--trace` JSONL — must be the
 * same as without the faults, with every lifecycle event there.
 *
 * - duplicate delivery + a crash after reading a branch + a crash after marking it complete, on
 *   examples/simple-parallel.yaml: a delivery that finished a branch and crashed before telling
 *   it must still get its BranchCompleted out (the duplicate sees the branch finished).
 * - a crash after marking complete + flaky agents on a ~100-branch tree: the CLI exits only
 *   once the retries are done, so every child is counted on its parent's sync point (the
 *   SyncPointReached event's counters and results) and has its end event.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../core/events';
import type { RunStatus } from '../../core/model';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { expectEveryLifecycleEvent, readTrace, ROOT, stuckReport, within } from './contract-support';

const dir = mkdtempSync(join(tmpdir(), 'bs-chaos-contract-'));

interface RunDoc {
  runId: string;
  status: RunStatus;
  result: unknown;
  error: string | null;
  branches: { id: string; parentId: string | null; status: string; error: string | null }[];
}

/** Each test's budget; its runs give up 10 s before it, saying what they wait on. */
const BUDGET_MS = 120_000;
const deadline = () => Date.now() + BUDGET_MS - 10_000;

let traces = 0;
/**
 * `branch-spawner run <scenario> --json --trace <new file> ...extra`: exit code, document, events.
 * Past `until` it fails with what the run is stuck on (a run that hangs says why, in CI too).
 */
async function run(scenario: string, extra: string[], until: number): Promise<{ code: number; doc: RunDoc; events: LifecycleEvent[]; stderr: string }> {
  const trace = join(dir, `trace-${++traces}.jsonl`);
  const io = captureIo();
  const label = `run ${scenario} ${extra.join(' ')}`.trim();
  const code = await within(main(['run', scenario, '--json', '--trace', trace, ...extra], io), until - Date.now(), () => stuckReport(label, trace));
  return { code, doc: JSON.parse(io.outText()) as RunDoc, events: readTrace(trace), stderr: io.errText() };
}

// The tests of this file run at once: most of their time is spent waiting for crashed deliveries
// to come back (the CLI's visibility timeout), not computing.
describe('faults combined, through run --chaos', () => {
  const example = join(ROOT, 'examples', 'simple-parallel.yaml');
  const CHAOS = 'duplicate-delivery,crash=after-read-branch,crash=after-mark-complete';

  it.concurrent(`simple-parallel under ${CHAOS}, several seeds: the clean result, every BranchCreated, BranchCompleted and RunCompleted in the trace`, async () => {
    const until = deadline();
    const reference = await run(example, [], until);
    expect(reference.code).toBe(0);
    expectEveryLifecycleEvent(reference.events, reference.doc, reference.doc.branches, 'clean');
    // Several runs at once, so their steps interleave differently from one seed to the next.
    const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
    const faulted = await Promise.all(seeds.map((seed) => run(example, ['--chaos', CHAOS, '--seed', String(seed)], until)));
    faulted.forEach((outcome, i) => {
      const label = `--chaos ${CHAOS} --seed ${seeds[i]}`;
      expect(outcome.code, `${label}: ${outcome.stderr}`).toBe(0);
      expect(outcome.doc.status, label).toBe('COMPLETED');
      expect(outcome.doc.result, label).toEqual(reference.doc.result);
      expect(outcome.doc.branches.map((b) => [b.id, b.status]), label).toEqual(reference.doc.branches.map((b) => [b.id, b.status]));
      expectEveryLifecycleEvent(outcome.events, outcome.doc, outcome.doc.branches, label);
      const completed = outcome.events.filter((e) => e.type === 'BranchCompleted').map((e) => e.branchId);
      expect(new Set(completed), `${label}: a BranchCompleted per branch, the root's included`).toEqual(new Set(['root', 'root.0', 'root.1', 'root.2']));
    });
  }, BUDGET_MS);

  // A 131-branch tree: 10 Mid copies, each spawning 3 Leaf copies that spawn 3 more (1 + 10 +
  // 30 + 90). A flaky agent fails its branch (fewer branches below it).
  const tree = (failurePolicy: string) => `
name: hundred-thirty-one
request: go
entry: Top
${failurePolicy}
limits: { maxConcurrentBranches: 20 }
agents:
  Top:
    kind: script
    allowed: [Mid]
    responses:
      - { next_action: parallel_invoke, agents: [Mid, Mid, Mid, Mid, Mid, Mid, Mid, Mid, Mid, Mid], action_input: { Mid: "mid" } }
      - { next_action: final_response, content: "$input" }
  Mid:
    kind: script
    rules:
      - when: child_count
        responses: [ { next_actions: [], content: "$input" } ]
      - when: "mid"
        responses: [ { next_actions: [["leaf", "leaf", "leaf"]] } ]
      - when: "leaf"
        responses: [ { next_actions: [["twig", "twig", "twig"]] } ]
      - when: "twig"
        responses: [ { next_actions: [], content: "twig done" } ]
    responses: [ { next_actions: [], content: "no rule matched" } ]
`;
  const CRASHED = ['--chaos', 'crash=after-mark-complete,agent-flaky=0.1', '--seed', '7'];
  const label = 'crash=after-mark-complete,agent-flaky=0.1 --seed 7';

  it.concurrent(`${label}, no failure fails a parent: the uncrashed run's result, and every child counted on its sync point`, async () => {
    // Every sync point waits for all its children (maxFailedFraction 1), so the counters its
    // SyncPointReached event carries are final, and the run is deterministic for a flaky seed.
    const scenario = join(dir, 'tolerant.yaml');
    writeFileSync(scenario, tree('failurePolicy: { maxFailedFraction: 1 }'));
    const until = deadline();
    const [reference, crashed] = await Promise.all([run(scenario, ['--chaos', 'agent-flaky=0.1', '--seed', '7'], until), run(scenario, CRASHED, until)]);
    const statuses = reference.doc.branches.map((b) => b.status);
    expect(statuses.filter((s) => s === 'FAILED').length, 'flaky agents failed some branches').toBeGreaterThan(0);
    expect(statuses.length, 'the tree is about a hundred branches').toBeGreaterThan(80);

    expect(crashed.code, `${label}: ${crashed.stderr}`).toBe(reference.code);
    expect(crashed.doc.status, label).toBe(reference.doc.status);
    expect(crashed.doc.result, `${label}: the result (every level's aggregate) of the uncrashed run`).toEqual(reference.doc.result);
    expect(crashed.doc.branches.map((b) => [b.id, b.status, b.error]), label).toEqual(reference.doc.branches.map((b) => [b.id, b.status, b.error]));

    for (const [which, outcome] of [['agent-flaky=0.1 --seed 7', reference], [label, crashed]] as const) {
      expectEveryLifecycleEvent(outcome.events, outcome.doc, outcome.doc.branches, which);
      const parents = new Set(outcome.doc.branches.map((b) => b.parentId).filter((p): p is string => p !== null));
      expect(parents.size, which).toBeGreaterThan(10);
      for (const parent of parents) {
        const children = outcome.doc.branches.filter((b) => b.parentId === parent);
        const reached = outcome.events.filter((e) => e.type === 'SyncPointReached').filter((e) => e.branchId === parent);
        expect(reached.length, `${which}: the sync point of ${parent} was reached`).toBeGreaterThanOrEqual(1);
        const count = (...s: string[]) => children.filter((c) => s.includes(c.status)).length;
        for (const event of reached) {
          const detail = event.detail;
          expect(
            { total: detail.total, succeeded: detail.succeeded, failed: detail.failed, cancelled: detail.cancelled },
            `${which}: the counters of ${parent}'s sync point equal its children's final statuses`,
          ).toEqual({ total: children.length, succeeded: count('COMPLETED'), failed: count('FAILED', 'TIMED_OUT'), cancelled: count('CANCELLED') });
          expect(
            detail.results.map((r) => [r.branchId, r.status]).sort(),
            `${which}: every child of ${parent} with its final status in the sync point's results`,
          ).toEqual(children.map((c) => [c.id, c.status]).sort());
        }
      }
    }
  }, BUDGET_MS);

  it.concurrent(`${label}, the default failure policy (early exits): the CLI exits once every retry is done, every end event in the trace`, async () => {
    // A parent fails as soon as over half of its children failed, cancelling the rest, while
    // completed siblings' crashed deliveries still wait to be retried: the run's end comes before
    // their retries, and the CLI must wait for them.
    const scenario = join(dir, 'default-policy.yaml');
    writeFileSync(scenario, tree(''));
    const crashed = await run(scenario, CRASHED, deadline());
    expect(crashed.code, `${label}: ${crashed.stderr}`).toBe(1);
    const byParent = new Map<string, RunDoc['branches']>();
    for (const b of crashed.doc.branches) if (b.parentId !== null) byParent.set(b.parentId, [...(byParent.get(b.parentId) ?? []), b]);
    // With this seed the root fails early: over half of its Mid copies fail.
    const failedByChildren = crashed.events.filter((e) => e.type === 'SyncPointReached').filter((e) => e.detail.outcome === 'fail');
    expect(failedByChildren.map((e) => e.branchId), `${label}: a sync point decided by failures (an early exit)`).toContain('root');
    expect(crashed.doc.status, label).toBe('FAILED');
    expectEveryLifecycleEvent(crashed.events, crashed.doc, crashed.doc.branches, label);
    for (const [parent, children] of byParent) {
      const reached = crashed.events.filter((e) => e.type === 'SyncPointReached').filter((e) => e.branchId === parent);
      for (const event of reached) {
        // Reached when decided: what it counted by then is a subset of how the children ended.
        const detail = event.detail;
        expect(detail.total, `${label}: ${parent}'s sync point total`).toBe(children.length);
        const ended = (...s: string[]) => children.filter((c) => s.includes(c.status)).length;
        expect(detail.succeeded, `${label}: ${parent} succeeded`).toBeLessThanOrEqual(ended('COMPLETED'));
        expect(detail.failed, `${label}: ${parent} failed`).toBeLessThanOrEqual(ended('FAILED', 'TIMED_OUT'));
      }
    }
  }, BUDGET_MS);
});

/**
 * Where `runs`, `show`, `tree`, `cancel` and `events` read a run: a team's deployed API (`--api`,
 * through its HTTP routes) or a local data folder (`--data`, through the same read models the
 * API's handler calls). One vocabulary, two places.
 */
import type { Scope } from '../core/model';
import { describeRun, listRunBranches, runSummaries, runTreePage, TREE_PAGE, wholeTree, type BranchView, type RunView } from '../core/use-cases/queries';
import { drawTree, flattenTree, type TreeBranch, type TreeFormat, type TreeNode } from '../core/tree';
import { runEventsAfter, type RunEventsPage } from '../core/use-cases/run-events';
import { answerCallback, type CallbackAnswered } from '../core/use-cases/suspend';
import { systemClock } from '../core/ports';
import { listDataRuns } from './data-runs';
import { requireDataFolder } from './data-folder';
import { startLocalEngines } from './embedded-engines';
import { LOCAL_TEAM, LocalRuntime } from './runtime';
import { runAndBranches, type ApiClient } from './remote/api-client';

export interface RunSummary {
  runId: string;
  name: string;
  status: string;
  createdAt: number | null;
  endedAt: number | null;
}

export interface RunSource {
  /** Where the runs are, for messages (the API URL or the folder). */
  label: string;
  runs(): Promise<RunSummary[]>;
  describe(runId: string): Promise<{ view: RunView; branches: BranchView[] }>;
  /** The whole tree drawn, however many pages the run's tree answers take (`pageLimit`: branches a page). */
  tree(runId: string, format: TreeFormat, pageLimit?: number): Promise<string>;
  events(runId: string, after?: string): Promise<RunEventsPage>;
  cancel(runId: string): Promise<void>;
  /** Answers a branch's callback (see answerCallback): refused as the API refuses it. */
  answer(runId: string, token: string, answer: unknown): Promise<CallbackAnswered>;
  close(): Promise<void>;
}

/** A whole tree as `tree` prints it: the drawing, or the API's unpaged json answer. */
function drawn(runId: string, branches: TreeBranch[], format: TreeFormat): string {
  const tree = drawTree(branches, format);
  return typeof tree === 'string' ? tree : JSON.stringify({ runId, tree });
}

/** Runs `runs --api` shows at most (newest first), and the pages it reads for them. */
export const REMOTE_RUNS_SHOWN = 50;
const REMOTE_RUNS_PAGES = 10;

export function remoteSource(client: ApiClient): RunSource {
  const label = client.baseUrl.href;
  const path = (runId: string, tail = '') => `runs/${encodeURIComponent(runId)}${tail}`;
  const describe = async (runId: string) => {
    return runAndBranches<RunView, BranchView>(client, runId);
  };
  return {
    label,
    async runs() {
      // GET /runs pages (each caller's own runs unless the team shares them), until enough are shown.
      const runs: RunSummary[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < REMOTE_RUNS_PAGES && runs.length < REMOTE_RUNS_SHOWN; pages++) {
        const page = await client.call<{ runs: RunSummary[]; cursor: string | null }>('GET', 'runs', { query: { limit: String(REMOTE_RUNS_SHOWN - runs.length), cursor } });
        runs.push(...page.runs);
        cursor = page.cursor ?? undefined;
        if (!cursor) break;
      }
      return runs;
    },
    describe,
    async tree(runId, format, pageLimit) {
      const limit = pageLimit === undefined ? undefined : String(pageLimit);
      const branches = await wholeTree(async (cursor) => {
        const page = await client.call<{ tree: TreeNode[]; cursor: string | null }>('GET', path(runId, '/tree'), { query: { format: 'json', limit, cursor } });
        return { branches: flattenTree(page.tree), cursor: page.cursor };
      });
      return drawn(runId, branches, format);
    },
    events: (runId, after) => client.call<RunEventsPage>('GET', path(runId, '/events'), { query: { after } }),
    async cancel(runId) {
      await client.call('POST', path(runId, '/cancel'));
    },
    answer: (runId, token, answer) => client.call<CallbackAnswered>('POST', path(runId, `/callbacks/${encodeURIComponent(token)}`), { body: answer }),
    close: async () => {},
  };
}

/** A data folder (`run --data <dir>`): its store read directly; `cancel` opens the runtime on it. */
export async function dataSource(dataDir: string, command: string): Promise<RunSource> {
  requireDataFolder(command, dataDir);
  const engines = await startLocalEngines({ dataDir });
  let open = true;
  const closeEngines = async () => {
    if (open) await engines.close();
    open = false;
  };
  const deps = { store: engines.store, clock: systemClock };
  const scope = (runId: string): Scope => ({ team: LOCAL_TEAM, runId });
  return {
    label: dataDir,
    async runs() {
      const recorded = (await listDataRuns(dataDir)).reverse();
      return runSummaries(deps, recorded.map((r) => scope(r.runId)));
    },
    async describe(runId) {
      const { view } = await describeRun(deps, scope(runId));
      return { view, branches: await listRunBranches(deps, scope(runId)) };
    },
    async tree(runId, format, pageLimit) {
      const page = (cursor: string | undefined) => runTreePage(deps, scope(runId), { limit: pageLimit ?? TREE_PAGE.defaultLimit, ...(cursor ? { cursor } : {}) });
      return drawn(runId, await wholeTree(page), format);
    },
    events: (runId, after) => runEventsAfter(deps, scope(runId), after),
    async cancel(runId) {
      // Cancelling stops fan-outs and tells branches: the runtime's work, on the folder's state.
      await closeEngines();
      const runtime = await LocalRuntime.start({ dataDir });
      try {
        await runtime.cancel(runId);
        await runtime.waitForRun(runId);
      } finally {
        await runtime.close();
      }
    },
    async answer(runId, token, answer) {
      // Only the answer's write and its step message (kept in the folder's queue): the run goes on
      // when a process drives it again (`resume`). Its BranchResumed event is on the bus of no
      // process here; the folder's events are read back from the records (`events`).
      const quiet = { publish: async () => undefined };
      return answerCallback({ store: engines.store, queue: engines.queue, events: quiet, clock: systemClock }, scope(runId), token, answer);
    },
    close: closeEngines,
  };
}

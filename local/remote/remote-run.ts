/**
 * `branch-spawner run <scenario> --api <url>`: the scenario started on a team's deployed API, with
 * the same live tree, output, `--json`, `--trace` (the events read back from the API) and exit
 * codes as a local run; Ctrl-C cancels the run on the stack.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { JsonlSink } from '../../adapters/events/jsonl-sink';
import { errorMessage, ForbiddenError, PayloadTooLargeError, RemoteApiError, ScenarioError, ValidationError } from '../../core/errors';
import type { RunEventsPage } from '../../core/use-cases/run-events';
import type { BranchView, RunView } from '../../core/use-cases/queries';
import { agentPolicyOf, loadTeamConfig, TeamConfigError } from '../../functions/team-config';
import { LiveProgress } from '../progress';
import { callbackNotice, documentOf, invalidDocument, onInterrupt, reportDocument, type RunCommandOptions } from '../run-command';
import { loadStackScenarioFile } from '../scenario-file';
import { allBranches, ApiClient, runAndBranches, type RemoteTarget } from './api-client';

export interface RemoteRunOptions extends Pick<RunCommandOptions, 'json' | 'trace' | 'tty' | 'out' | 'err' | 'handleSignals'> {
  target: RemoteTarget;
  /** The team whose registry the scenario may name (infra/teams/<team>.json); else the stack checks it. */
  team?: string;
  /** How often the run is read while it goes on. */
  pollMs?: number;
}

export async function remoteRun(path: string, options: RemoteRunOptions): Promise<number> {
  let body: Record<string, unknown>;
  try {
    ({ body } = await loadStackScenarioFile(path, options.team ? agentPolicyOf(loadTeamConfig(options.team)) : undefined));
  } catch (error) {
    if (error instanceof ScenarioError || error instanceof PayloadTooLargeError || error instanceof ForbiddenError || error instanceof ValidationError || error instanceof TeamConfigError) {
      options.err.write(`error: ${error.message}\n`);
      if (options.json && (error instanceof ScenarioError || error instanceof PayloadTooLargeError)) options.out.write(`${JSON.stringify(invalidDocument(error))}\n`);
      return 2;
    }
    throw error;
  }
  const client = ApiClient.connect(options.target);
  const pollMs = options.pollMs ?? 1000;
  const started = Date.now();
  let runId: string;
  try {
    ({ runId } = await client.call<{ runId: string }>('POST', 'runs', { body }));
  } catch (error) {
    if (!(error instanceof RemoteApiError)) throw error;
    // The stack checks what it alone knows (its registry, its maxima): a refusal names the file.
    options.err.write(`error: ${error.status === 400 ? `${path}: ` : ''}${error.message}\n`);
    return error.status === 400 ? 2 : 1;
  }
  if (!options.json) options.err.write(`run ${runId} started on ${client.baseUrl.href}\n`);
  let interrupted = false;
  const stopSignals = options.handleSignals
    ? onInterrupt(
        () => {
          interrupted = true;
          options.err.write('\ncancelling the run on the stack (Ctrl-C again to exit at once; the run goes on ending there)\n');
          void client.call('POST', `runs/${runId}/cancel`).catch((error) => options.err.write(`error: cancelling failed: ${errorMessage(error)}\n`));
        },
        () => {
          options.err.write(`exiting without waiting; the run ${runId} is cancelled on the stack\n`);
          process.exit(130);
        },
      )
    : () => {};
  const sink = options.trace ? new JsonlSink(options.trace) : undefined;
  const branchesOf = () => allBranches<BranchView>(client, runId);
  const progress = options.tty ? new LiveProgress(options.out, branchesOf, started, pollMs) : undefined;
  progress?.start();
  try {
    // The events route tells when the run has ended (its last event given), and feeds --trace.
    let cursor: string | undefined;
    const told = new Set<string>();
    for (;;) {
      const page: RunEventsPage = await client.call<RunEventsPage>('GET', `runs/${runId}/events`, { query: { after: cursor } });
      for (const event of page.events) {
        await sink?.write(event);
        // A run that awaits an answer says how to give it, as a local run does (once per event: eventId).
        if (event.type === 'BranchWaitingForCallback' && !told.has(event.eventId)) {
          told.add(event.eventId);
          options.err.write(callbackNotice(event, `answer it with: npx branch-spawner callback ${runId} ${String(event.detail.token)} --api ${options.target.api} --answer '<json>'`));
        }
      }
      cursor = page.cursor ?? undefined;
      if (page.done) break;
      if (page.events.length === 0) await delay(pollMs);
    }
    const { view, branches } = await runAndBranches<RunView, BranchView>(client, runId);
    await progress?.stop(branches);
    reportDocument(documentOf(view, branches), options, started);
    if (interrupted) return 130;
    return view.status === 'COMPLETED' ? 0 : 1;
  } catch (error) {
    await progress?.stop();
    if (!(error instanceof RemoteApiError)) throw error;
    options.err.write(`error: ${error.message}\n`);
    return 1;
  } finally {
    stopSignals();
    await progress?.stop();
    await sink?.close();
  }
}

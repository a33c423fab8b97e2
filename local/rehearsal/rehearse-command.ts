/**
 * `branch-spawner run <scenario> --rehearse [--team <name>]`: the scenario through the stack
 * `cdk deploy` would create (see rehearsal-stack.ts), started as a client would start it
 * (POST /runs on the REST API), with the same output and exit codes as `run`.
 */
import { dirname, resolve } from 'node:path';
import { JsonlSink } from '../../adapters/events/jsonl-sink';
import { ScenarioError } from '../../core/errors';
import type { Scenario } from '../../core/scenario';
import { LiveProgress } from '../progress';
import { reportRun, type RunCommandOptions } from '../run-command';
import { loadScenarioFile } from '../scenario-file';
import { RehearsalError, RehearsalStack, type RehearsalOptions } from './rehearsal-stack';

export interface RehearseOptions extends RunCommandOptions {
  team?: string;
}

/** The POST /runs body of a scenario (its aggregators module is bundled into the functions instead). */
export function runRequestBody(scenario: Scenario): Record<string, unknown> {
  return {
    name: scenario.name,
    entry: scenario.entry,
    request: scenario.request ?? null,
    agents: scenario.agents,
    ...(scenario.limits ? { limits: scenario.limits } : {}),
    ...(scenario.failurePolicy ? { failurePolicy: scenario.failurePolicy } : {}),
  };
}

/** Options of a rehearsal for a scenario file: its aggregators module becomes the rehearsal team's. */
export function rehearsalOptionsFor(path: string, scenario: Scenario, team?: string): RehearsalOptions {
  if (team) return { team };
  return scenario.aggregators ? { aggregators: resolve(dirname(resolve(path)), scenario.aggregators) } : {};
}

export async function rehearseScenario(path: string, options: RehearseOptions): Promise<number> {
  let scenario: Scenario;
  try {
    ({ scenario } = await loadScenarioFile(path));
  } catch (error) {
    if (error instanceof ScenarioError) {
      options.err.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const started = Date.now();
  let stack: RehearsalStack;
  try {
    stack = await RehearsalStack.start(rehearsalOptionsFor(path, scenario, options.team));
  } catch (error) {
    options.err.write(`error: the rehearsal could not create the stack: ${(error as Error).message}\n`);
    return 1;
  }
  const sink = options.trace ? new JsonlSink(options.trace) : undefined;
  if (sink) stack.onLifecycleEvent(sink.subscriber);
  let progress: LiveProgress | undefined;
  try {
    const response = await stack.request('POST', '/runs', { body: runRequestBody(scenario) });
    if (response.statusCode !== 202) {
      options.err.write(`error: POST /runs answered ${response.statusCode}: ${response.body}\n`);
      return response.statusCode === 400 ? 2 : 1;
    }
    const { runId } = JSON.parse(response.body) as { runId: string };
    if (options.tty) {
      progress = new LiveProgress(options.out, () => stack.listBranches(runId), started);
      progress.start();
    }
    const run = await stack.waitForRun(runId);
    // What the deployed functions metered, once the last invocations have added theirs.
    const cost = await stack.costOf(runId);
    const branches = await stack.listBranches(runId);
    await progress?.stop(branches);
    reportRun(run, branches, options, started, cost);
    return run.status === 'COMPLETED' ? 0 : 1;
  } catch (error) {
    if (!(error instanceof RehearsalError)) throw error;
    await progress?.stop();
    options.err.write(`error: ${error.message}\n`);
    return 1;
  } finally {
    await progress?.stop();
    await sink?.close();
    await stack.close();
  }
}

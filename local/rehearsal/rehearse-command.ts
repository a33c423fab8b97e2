/**
 * `branch-spawner run <scenario> --rehearse [--team <name>]`: the scenario through the stack
 * `cdk deploy` would create (see rehearsal-stack.ts), started as a client would start it
 * (POST /runs on the REST API), with the same output and exit codes as `run`.
 */
import { dirname, resolve } from 'node:path';
import { ForbiddenError, PayloadTooLargeError, ValidationError } from '../../core/errors';
import type { AgentPolicy } from '../../core/run-request';
import type { Scenario } from '../../core/scenario';
import { agentPolicyOf, loadTeamConfig, parseTeamConfig, TeamConfigError } from '../../functions/team-config';
import { LiveProgress } from '../progress';
import { openTrace, readRunDocument, reportDocument, type RunCommandOptions } from '../run-command';
import { loadStackScenarioFile, readScenarioDocument } from '../scenario-file';
import { RehearsalError, RehearsalStack, type RehearsalOptions } from './rehearsal-stack';
import { REHEARSAL_TEAM, rehearsalTeamConfig } from './synth';

export interface RehearseOptions extends RunCommandOptions {
  team?: string;
}

/** The POST /runs body of a parsed scenario (its aggregators module is bundled into the functions instead). */
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
export function rehearsalOptionsFor(path: string, aggregators: string | undefined, team?: string): RehearsalOptions {
  if (team) return { team };
  return aggregators ? { aggregators: resolve(dirname(resolve(path)), aggregators) } : {};
}

/** The agents a request to the rehearsed team's stack may bring: that team's policy. */
export function rehearsalPolicy(team?: string): AgentPolicy {
  return agentPolicyOf(team ? loadTeamConfig(team) : parseTeamConfig(rehearsalTeamConfig(), REHEARSAL_TEAM));
}

export async function rehearseScenario(path: string, options: RehearseOptions): Promise<number> {
  let body: Record<string, unknown>;
  let aggregators: string | undefined;
  try {
    const document = (await readScenarioDocument(path)) as { aggregators?: unknown } | null;
    aggregators = typeof document?.aggregators === 'string' ? document.aggregators : undefined;
    ({ body } = await loadStackScenarioFile(path, rehearsalPolicy(options.team)));
  } catch (error) {
    if (error instanceof ValidationError || error instanceof ForbiddenError || error instanceof PayloadTooLargeError || error instanceof TeamConfigError) {
      options.err.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const sink = await openTrace(options.trace);
  let stack: RehearsalStack;
  try {
    // On a terminal, the long steps before the run say what they do (the first synthesis takes a minute).
    const onProgress = options.tty ? (what: string) => options.err.write(`${what}\n`) : undefined;
    stack = await RehearsalStack.start({ ...rehearsalOptionsFor(path, aggregators, options.team), onProgress });
  } catch (error) {
    await sink?.close();
    options.err.write(`error: the rehearsal could not create the stack: ${(error as Error).message}\n`);
    return 1;
  }
  const started = Date.now();
  if (sink) stack.onLifecycleEvent(sink.subscriber);
  let progress: LiveProgress | undefined;
  try {
    const response = await stack.request('POST', '/runs', { body });
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
    const doc = await readRunDocument(stack, run, cost);
    await progress?.stop(doc.branches);
    reportDocument(doc, options, started);
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

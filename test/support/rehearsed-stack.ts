/**
 * The rehearsed stack the rehearsal tests share (one synth, reused while it is up to date): the
 * rehearsal team with the tests' aggregators module, and a run started as a client starts one.
 */
import { resolve } from 'node:path';
import { expect } from 'vitest';
import { RehearsalStack, type RehearsalOptions } from '../../local/rehearsal/rehearsal-stack';
import { synthesize } from '../../local/rehearsal/synth';

export const REHEARSAL_AGGREGATORS = resolve('test/support/rehearsal-aggregators.ts');
/** A `lambda` agent of the tests' registry, hosted outside the stack: it reads large values by reference. */
export const LARGE_READER = { agent: 'LargeReader', functionName: 'rehearsal-large-reader', file: resolve('test/support/large-reader-agent.mjs') };

/** The tests' one synthesized assembly: the rehearsal team with the tests' aggregators and LargeReader. */
export function rehearsalAssembly() {
  return synthesize({ aggregators: REHEARSAL_AGGREGATORS, lambdaAgents: { [LARGE_READER.agent]: LARGE_READER.functionName } });
}

/** The tests' stack on the shared assembly (6 warm containers a function unless told). */
export async function startRehearsedStack(options: Pick<RehearsalOptions, 'maxContainers' | 'queueTimeScale'> = {}): Promise<RehearsalStack> {
  return RehearsalStack.start({
    assembly: await rehearsalAssembly(),
    maxContainers: 6,
    ...options,
    agentFunctions: { [LARGE_READER.functionName]: LARGE_READER.file },
  });
}

/** POST /runs (202 expected), then the run once terminal, with its branches. */
export async function rehearseRun(stack: RehearsalStack, body: Record<string, unknown>) {
  const response = await stack.request('POST', '/runs', { body });
  expect(response.statusCode, response.body).toBe(202);
  const { runId } = JSON.parse(response.body) as { runId: string };
  const run = await stack.waitForRun(runId);
  return { run, branches: await stack.listBranches(runId) };
}

// Long-running: started first (vitest.config.ts).
/**
 * User tools in a deployed stack, rehearsed (local/rehearsal/): the team registry's `openai` agent
 * (a loopback model stub answering with tool calls only) uses a `module` tool, bundled into the
 * step worker at synth and run inside it, and a `lambda` tool, invoked by the step worker under
 * its synthesized role; a tool the role does not grant is refused, as AWS refuses it.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { RunRecord } from '../../core/model';
import { RehearsalStack } from '../../local/rehearsal/rehearsal-stack';
import { REHEARSAL_CONFIG_DEPTH, synthesize, type Assembly } from '../../local/rehearsal/synth';
import { startOpenAiStub, type Brain, type ModelStub } from '../support/model-stubs';
import { BUNDLE_MARK } from '../support/rehearsal-tools';

const WEIGH = { functionName: 'rehearsal-weigh-tool', file: resolve('test/support/rehearsal-weigh-tool.mjs') };
/** The model stub's port when free: its URL is in the synthesized registry, so the assembly is reused while it is. */
const PREFERRED_PORT = 47_311;

/** First turn: both tools at once; then `final_response` with what each tool gave. */
const brain: Brain = (view) =>
  view.results.length === 0
    ? { calls: [{ name: 'lookup_fact', args: { topic: 'tides' } }, { name: 'weigh', args: { kg: 2 } }] }
    : { calls: [{ name: 'final_response', args: { content: Object.fromEntries(view.results.map((r) => [r.name, r.text])) } }] };

const toolsmith = (baseUrl: string) => ({
  kind: 'openai',
  baseUrl,
  model: 'stub',
  toolCalling: 'on',
  tools: [
    { kind: 'module', module: `${REHEARSAL_CONFIG_DEPTH}test/support/rehearsal-tools.ts`, export: 'lookupFact', name: 'lookup_fact' },
    { kind: 'lambda', name: 'weigh', functionName: WEIGH.functionName },
  ],
});

let model: ModelStub;
let assembly: Assembly;
let stack: RehearsalStack;
const events: LifecycleEvent[] = [];

beforeAll(async () => {
  model = await startOpenAiStub(brain, { port: PREFERRED_PORT });
  assembly = await synthesize({ agents: { Toolsmith: toolsmith(model.url) } });
  stack = await RehearsalStack.start({ assembly, maxContainers: 2, agentFunctions: { [WEIGH.functionName]: WEIGH.file } });
  stack.onLifecycleEvent((e) => void events.push(e));
}, 900_000);

afterAll(async () => {
  await stack?.close();
  await model?.close();
  // An assembly made for another port is of no later use.
  if (assembly && model && !model.url.includes(`:${PREFERRED_PORT}/`)) rmSync(assembly.dir, { recursive: true, force: true });
});

/** POST /runs naming the registry's Toolsmith; the run once its end is told (denials do not stop the wait). */
async function runToolsmith(): Promise<RunRecord> {
  const started = await stack.request('POST', '/runs', { body: { name: 'tools', entry: 'Toolsmith', request: 'weigh the tides' } });
  expect(started.statusCode, started.body).toBe(202);
  const { runId } = JSON.parse(started.body) as { runId: string };
  await new Promise<void>((done) => {
    const stop = stack.onLifecycleEvent((e) => {
      if (e.runId === runId && isRunEnd(e)) {
        stop();
        done();
      }
    });
    if (events.some((e) => e.runId === runId && isRunEnd(e))) {
      stop();
      done();
    }
  });
  return (await stack.getRun(runId))!;
}

function functionOf(service: string) {
  return stack.template.ofType('AWS::Lambda::Function').find(([, f]) => f.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === service)!;
}

function bundleOf(service: string): string {
  const [, fn] = functionOf(service);
  return readFileSync(join(assembly.dir, `asset.${String(fn.Properties!.Code.S3Key).replace(/\.zip$/, '')}`, 'index.mjs'), 'utf8');
}

const RUNS = { timeout: 10 * 60_000 };

describe('user tools in the rehearsed stack', RUNS, () => {
  it("the module tool is bundled into the step worker only, and the template wires the registry's tools to it", () => {
    expect(bundleOf('step-worker')).toContain(BUNDLE_MARK);
    for (const other of ['api', 'trigger', 'aggregate']) expect(bundleOf(other)).not.toContain(BUNDLE_MARK);
    const [, worker] = functionOf('step-worker');
    const registry = JSON.parse(String(worker.Properties!.Environment.Variables.AGENT_REGISTRY)) as Record<string, { tools?: { kind: string }[] }>;
    expect(registry.Toolsmith.tools?.map((t) => t.kind)).toEqual(['module', 'lambda']);
    // The step worker's role may invoke the lambda tool's function.
    const granted = stack.roleStatementsOf('step-worker').statements.filter((s) => [s.Action].flat().includes('lambda:InvokeFunction'));
    expect(JSON.stringify(granted)).toContain(`function:${WEIGH.functionName}`);
  });

  it('a run uses both tools from the deployed step worker: the module tool in the function, the lambda tool under its role', async () => {
    const run = await runToolsmith();
    expect(run.error ?? null).toBeNull();
    expect(run.status).toBe('COMPLETED');
    expect(stack.denials).toEqual([]);
    const result = run.result as Record<string, string>;
    expect(JSON.parse(result.lookup_fact)).toEqual({ fact: `${BUNDLE_MARK}: tides`, agent: 'Toolsmith', runId: run.runId });
    expect(JSON.parse(result.weigh)).toEqual({ grams: 2000, tool: 'weigh', agent: 'Toolsmith' });
    const calls = events.filter((e) => e.type === 'ToolCalled').filter((e) => e.runId === run.runId).map((e) => e.detail);
    expect(calls.map((c) => [c.tool, c.kind, c.status]).sort()).toEqual([
      ['lookup_fact', 'module', 'ok'],
      ['weigh', 'lambda', 'ok'],
    ]);
  });

  it("by the stack's default the events carry no tool content, only references: the API gives each value whole from the team's bucket", async () => {
    const run = await runToolsmith();
    expect(run.status).toBe('COMPLETED');
    const lookup = events.filter((e) => e.type === 'ToolCalled').find((e) => e.runId === run.runId && e.detail.tool === 'lookup_fact')!.detail;
    expect(lookup).not.toHaveProperty('arguments');
    expect(lookup).not.toHaveProperty('output');
    expect(JSON.stringify(lookup)).not.toContain(BUNDLE_MARK);
    const read = async (ref: unknown) => {
      const answer = await stack.request('GET', `/runs/${run.runId}/values/${String(ref)}`);
      expect(answer.statusCode, answer.body).toBe(200);
      return (JSON.parse(answer.body) as { value: unknown }).value;
    };
    expect(await read(lookup.argumentsRef)).toEqual({ topic: 'tides' });
    expect(JSON.parse(String(await read(lookup.outputRef)))).toEqual({ fact: `${BUNDLE_MARK}: tides`, agent: 'Toolsmith', runId: run.runId });
    expect(stack.denials).toEqual([]);
  });

  it('a lambda tool the role does not grant is refused as AWS refuses it: an error result for the model, the denial named, the run goes on', async () => {
    const { roleLogicalId, statements } = stack.roleStatementsOf('step-worker');
    const toolArn = (resource: unknown) => String(resource).endsWith(`function:${WEIGH.functionName}`);
    const withoutTool = statements
      .map((s) => ({ ...s, Resource: [s.Resource ?? []].flat().filter((r) => !toolArn(r)) }))
      .filter((s) => s.Resource.length > 0);
    expect(withoutTool.length).toBeLessThanOrEqual(statements.length);
    try {
      stack.setRoleStatements(roleLogicalId, withoutTool);
      const run = await runToolsmith();
      expect(run.status).toBe('COMPLETED');
      const result = run.result as Record<string, string>;
      expect(JSON.parse(result.lookup_fact)).toMatchObject({ fact: `${BUNDLE_MARK}: tides` });
      expect(result.weigh).toMatch(/tool weigh failed: .*not authorized to perform lambda:InvokeFunction on arn:aws:lambda:[^ ]+:function:rehearsal-weigh-tool/);
      const weigh = events.find((e) => e.runId === run.runId && e.type === 'ToolCalled' && e.detail.tool === 'weigh')!;
      expect(weigh.detail).toMatchObject({ kind: 'lambda', status: 'error' });
      expect(stack.denials.map((d) => `${d.action} ${d.resource}`)).toEqual([expect.stringMatching(/^lambda:InvokeFunction arn:aws:lambda:[^ ]+:function:rehearsal-weigh-tool$/)]);
    } finally {
      stack.setRoleStatements(roleLogicalId, statements);
      stack.denials.length = 0;
    }
  });
});

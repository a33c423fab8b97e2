/**
 * examples/tools.yaml through the CLI (`branch-spawner run`, a child process) against loopback
 * model servers that answer only with tool calls: an OpenAI-compatible one and a Bedrock Converse
 * one. The Lead spawns three Researchers through the parallel_invoke tool; each calls the module
 * tool and the MCP server's tool in one turn, then final_response; the Lead finishes with
 * final_response. Every tool call is in the trace (ToolCalled) and in the metrics.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { runCli } from '../support/killed-run';
import { readTrace } from '../reliability/contract-support';
import { startConverseStub, startOpenAiStub, STUB_USAGE, type Brain, type ModelStub } from '../support/model-stubs';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const TOPICS = ['running cost', 'installation', 'lifetime'];
const dir = mkdtempSync(join(tmpdir(), 'bs-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The agents' "reasoning", in tool calls only. */
const research: Brain = (view) => {
  const last = view.users.at(-1) ?? '';
  if (view.agent === 'Lead') {
    if (!view.offered.includes('parallel_invoke') || !view.offered.includes('final_response')) {
      return { status: 400, error: `Lead was offered ${view.offered.join(', ')}` };
    }
    if (last.includes('"child_count"')) {
      const aggregate = JSON.parse(last) as { results: Record<string, unknown> };
      return { calls: [{ name: 'final_response', args: { content: { answer: 'the heat pump, over its life', findings: Object.values(aggregate.results) } } }] };
    }
    return { calls: [{ name: 'parallel_invoke', args: { branches: TOPICS.map((topic) => ({ agent: 'Researcher', input: topic })) } }] };
  }
  if (view.agent === 'Researcher') {
    if (!view.offered.includes('lookup_fact') || !view.offered.includes('search_notes')) {
      return { status: 400, error: `Researcher was offered ${view.offered.join(', ')}` };
    }
    if (view.results.length === 0) {
      return {
        calls: [
          { name: 'lookup_fact', args: { topic: last } },
          { name: 'search_notes', args: { query: last } },
        ],
      };
    }
    const byName = Object.fromEntries(view.results.map((r) => [r.name, r.text]));
    const fact = (JSON.parse(byName.lookup_fact) as { fact: string }).fact;
    return { calls: [{ name: 'final_response', args: { content: { topic: last, fact, notes: byName.search_notes } } }] };
  }
  return { status: 400, error: `no script for ${view.agent}` };
};

/** examples/tools.yaml, pointed at the stub (its files by absolute path, the MCP server run in examples/). */
function scenarioFile(name: string, connect: Record<string, unknown>): string {
  const doc = parseYaml(readFileSync(join(EXAMPLES, 'tools.yaml'), 'utf8')) as { agents: Record<string, Record<string, unknown>> };
  for (const agent of Object.values(doc.agents)) {
    delete agent.baseUrl;
    delete agent.model;
    Object.assign(agent, connect);
    agent.tools = (agent.tools as Record<string, unknown>[] | undefined)?.map((tool) =>
      tool.kind === 'module' ? { ...tool, module: join(EXAMPLES, String(tool.module)) } : { ...tool, cwd: EXAMPLES },
    );
  }
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

interface RunDocument {
  status: string;
  error: string | null;
  result: { answer: string; findings: { topic: string; fact: string; notes: string }[] };
  metrics: { steps: number; usage: { inputTokens: number; outputTokens: number }; tools: Record<string, { calls: number; errors: number; avgMs: number }> };
  branches: { id: string; agent: string; status: string }[];
}

async function runAgainst(stub: ModelStub, name: string, connect: Record<string, unknown>, env: Record<string, string> = {}) {
  const trace = join(dir, `${name}.jsonl`);
  const out = await runCli(['run', scenarioFile(name, connect), '--json', '--trace', trace], env);
  expect(out.stderr).toBe('');
  expect(out.code, out.stdout.slice(0, 3000)).toBe(0);
  const doc = JSON.parse(out.stdout) as RunDocument;
  return { doc, events: readTrace(trace) };
}

function expectResearchDone({ doc, events }: Awaited<ReturnType<typeof runAgainst>>, stub: ModelStub) {
  expect(doc.error).toBeNull();
  expect(doc.status).toBe('COMPLETED');
  expect(doc.result.answer).toBe('the heat pump, over its life');
  expect(doc.result.findings.map((f) => f.topic).sort()).toEqual([...TOPICS].sort());
  for (const finding of doc.result.findings) {
    // What the module tool and the MCP server returned made it into each Researcher's answer.
    expect(finding.fact).not.toBe('no figure on file for this topic');
    expect(finding.notes.startsWith(`${finding.topic}:`)).toBe(true);
  }
  expect(doc.branches.map((b) => [b.id, b.agent, b.status]).sort()).toEqual([
    ['root', 'Lead', 'COMPLETED'],
    ['root.0', 'Researcher', 'COMPLETED'],
    ['root.1', 'Researcher', 'COMPLETED'],
    ['root.2', 'Researcher', 'COMPLETED'],
  ]);
  // Every tool call is in the trace: one ToolCalled per tool per Researcher, all ok.
  const calls = events.filter((e) => e.type === 'ToolCalled');
  expect(calls.map((e) => [e.branchId, e.detail.tool, e.detail.kind, e.detail.status]).sort()).toEqual(
    ['root.0', 'root.1', 'root.2'].flatMap((id) => [
      [id, 'lookup_fact', 'module', 'ok'],
      [id, 'search_notes', 'mcp', 'ok'],
    ]),
  );
  for (const e of calls) expect(e.detail.durationMs).toEqual(expect.any(Number));
  // Each with what it was called with and what it answered (small here, so whole).
  for (const e of calls.filter((c) => c.detail.tool === 'lookup_fact')) {
    expect(e.detail.arguments).toEqual({ topic: expect.any(String) });
    expect(JSON.parse(String(e.detail.output))).toEqual(expect.objectContaining({ fact: expect.any(String) }));
  }
  // ... and in the metrics.
  expect(doc.metrics.tools).toEqual({
    lookup_fact: expect.objectContaining({ calls: 3, errors: 0 }),
    search_notes: expect.objectContaining({ calls: 3, errors: 0 }),
  });
  // The stub answered only with tool calls: 2 Lead turns, 2 turns per Researcher; the tokens of every turn are counted.
  expect(stub.requests).toHaveLength(2 + 3 * 2);
  expect(doc.metrics.usage).toEqual({ inputTokens: 8 * STUB_USAGE.input, outputTokens: 8 * STUB_USAGE.output });
}

describe('examples/tools.yaml through the CLI, models answering only with tool calls', () => {
  it('OpenAI chat completions: spawns through parallel_invoke, calls a module tool and an MCP tool, finishes through final_response', async () => {
    const stub = await startOpenAiStub(research);
    try {
      const run = await runAgainst(stub, 'openai', { kind: 'openai', baseUrl: stub.url, model: 'stub-model' });
      expectResearchDone(run, stub);
      // toolCalling: on → a tool must be called every turn; the allowed agents are an enum in the generated schema.
      const lead = stub.requests.find((r) => r.agent === 'Lead')!;
      expect(lead.choice).toBe('required');
      const tools = lead.body.tools as { function: { name: string; parameters: { properties: Record<string, { items?: { properties?: Record<string, unknown> } }> } } }[];
      const parallel = tools.find((t) => t.function.name === 'parallel_invoke')!;
      expect(parallel.function.parameters.properties.branches.items?.properties?.agent).toEqual({ type: 'string', enum: ['Researcher', 'Lead'] });
    } finally {
      await stub.close();
    }
  }, 120_000);

  it('Bedrock Converse: the same run with toolConfig, toolUse and toolResult', async () => {
    const stub = await startConverseStub(research);
    try {
      const run = await runAgainst(
        stub,
        'bedrock',
        { kind: 'bedrock', modelId: 'stub.model-v1:0', region: 'us-east-1' },
        {
          AWS_ENDPOINT_URL_BEDROCK_RUNTIME: stub.url,
          AWS_ACCESS_KEY_ID: 'stub',
          AWS_SECRET_ACCESS_KEY: 'stub',
          AWS_SESSION_TOKEN: '',
          AWS_PROFILE: '',
        },
      );
      expectResearchDone(run, stub);
      expect(stub.requests.every((r) => r.choice === 'any')).toBe(true);
    } finally {
      await stub.close();
    }
  }, 120_000);
});

describe('tools in a scenario file', () => {
  it('exit 2 naming the tool\'s field when a module tool has no such export', async () => {
    const path = join(dir, 'bad-tool.yaml');
    const module = join(EXAMPLES, 'tools.ts');
    writeFileSync(path, `name: x\nentry: A\nagents:\n  A: { kind: openai, model: m, tools: [{ kind: module, module: '${module}', export: nope }] }\n`);
    const io = captureIo();
    expect(await main(['run', path], io)).toBe(2);
    expect(io.errText()).toMatch(/agents\.A\.tools\.0\.export: module .*tools\.ts has no function export "nope" \(function exports: lookupFact\)/);
  });
});

/**
 * What the docs show must be what the product does: the `$input` directive as docs/scenarios.md
 * shows it, and the cost meter's example of docs/concepts.md from a real run of the example it
 * names, and every error text the docs quote, produced for real (so none can drift from the code).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { BudgetExceededError, LimitExceededError } from '../../core/errors';
import { parseScenario } from '../../core/scenario';
import { startLocalSpawner, type LocalSpawner } from '../../local/library';
import { LocalRuntime } from '../../local/runtime';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const read = (file: string) => readFileSync(join(DOCS, file), 'utf8');

/** The fenced blocks of a doc, with their language and tag (```json cost). */
function blocks(file: string): { lang: string; tag: string; text: string }[] {
  return [...read(file).matchAll(/^```([a-z]*)[ \t]*([^\n`]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], tag: m[2].trim(), text: m[3] }));
}

let spawner: LocalSpawner;
beforeAll(async () => {
  spawner = await startLocalSpawner();
});
afterAll(async () => {
  await spawner?.close();
});

describe('docs/scenarios.md: "$input"', () => {
  it('no example puts $input inside a longer string (only a whole "$input" is replaced)', () => {
    for (const file of ['scenarios.md', 'concepts.md', 'protocol.md', 'agents.md', 'llm-agents.md']) {
      for (const b of blocks(file).filter((b) => b.lang === 'yaml' || b.lang === 'json')) {
        expect(b.text, `${file}: ${b.text}`).not.toMatch(/"[^"\n]*(\S \$input|\$input \S)[^"\n]*"/);
      }
    }
  });

  it('the script-directives example answers with the input where it says "$input"', async () => {
    const yaml = blocks('scenarios.md').find((b) => b.lang === 'yaml' && b.text.includes('name: script-directives'))!;
    const document = { ...parseYaml(yaml.text), request: 'urgent: the roof leaks' };
    const doc = await spawner.run(document);
    expect(doc.status).toBe('COMPLETED');
    expect(JSON.stringify(doc.result)).toContain('"urgent: the roof leaks"');
    expect(JSON.stringify(doc.result)).not.toContain('$input');
  });
});

describe('docs/concepts.md: the cost meter', () => {
  it('the metrics.cost shown for examples/simple-parallel.yaml is what a run of it gives (memory tier, as `run`)', async () => {
    const text = read('concepts.md');
    expect(text).toMatch(/For `examples\/simple-parallel\.yaml` \(one fan-out of\s+three children, 4 branches\)[^`]*`run --json`[\s\S]{0,120}```json cost/);
    const shown = JSON.parse(blocks('concepts.md').find((b) => b.tag === 'cost')!.text);
    const { loadScenarioFile } = await import('../../local/scenario-file');
    const { runInputOf } = await import('../../core/use-cases/start-run');
    const { scenario } = await loadScenarioFile(join(ROOT, 'examples', 'simple-parallel.yaml'));
    const runtime = spawner.runtime;
    // A run slower than a second (a busy machine) gets one more flush of the cost item, one more
    // write unit each: counted, so that the figure compared is the one of a run at normal speed.
    const store = runtime.engines.store;
    const addCost = store.addCost.bind(store);
    const flushedRuns: string[] = [];
    store.addCost = async (scope, usage) => {
      flushedRuns.push(scope.runId);
      return addCost(scope, usage);
    };
    try {
      const runId = await runtime.startRun(runInputOf(scenario));
      await runtime.waitForRun(runId);
      // waitForRun flushes once when the run is over; more were the timer's, during a slow run.
      const extra = flushedRuns.filter((id) => id === runId).length - 1;
      await runtime.settle();
      const cost = await runtime.costOf(runId);
      const { countersOf, runCost } = await import('../../core/cost');
      // GB-seconds are measured time (and the $ with them): the shown figure is priced from its own counters.
      const untimed = (c: ReturnType<typeof runCost>) => ({ ...c, usd: 0, lambda: { ...c.lambda, gbSeconds: 0 } });
      expect(untimed(runCost({ ...cost, writeUnits: cost.writeUnits - extra }))).toEqual(untimed(shown));
      expect(cost.lambdaGbSeconds).toBeGreaterThan(0);
      expect(runCost(countersOf(shown)).usd).toBe(shown.usd);
    } finally {
      store.addCost = addCost;
    }
  });
});

/**
 * Every error text the docs quote, with how to make the product say it. A quote matches when the
 * real text contains it, where `…` or `...` stand for anything, `<word>` for a value, `pid N` for
 * a pid and a file name may be preceded by its folder.
 */
const ERROR_TEXTS: { doc: string; quoted: string; produce: () => Promise<string> }[] = [];
const quote = (doc: string, quoted: string, produce: () => Promise<string>) => ERROR_TEXTS.push({ doc, quoted, produce });

/** The error a run of this scenario document ends with (its own, or a branch's). */
async function runError(document: Record<string, unknown>, branchId?: string): Promise<string> {
  const doc = await spawner.run({ request: 'go', ...document });
  const branch = branchId ? doc.branches.find((b) => b.id === branchId) : undefined;
  return String((branchId ? branch?.error : doc.error) ?? `no error (${doc.status})`);
}

async function cliError(argv: string[]): Promise<string> {
  const { main } = await import('../../local/cli');
  const { captureIo } = await import('../support/io');
  const io = captureIo();
  await main(argv, io);
  return io.errText().trim();
}

const scratch = mkdtempSync(join(tmpdir(), 'bs-doc-errors-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const scratchFile = (name: string, text: string) => {
  writeFileSync(join(scratch, name), text);
  return join(scratch, name);
};

const failing = {
  name: 'fails',
  entry: 'Lead',
  agents: {
    Lead: { kind: 'script', allowed: ['Researcher'], responses: [{ next_action: 'parallel_invoke', agents: ['Researcher', 'Researcher', 'Researcher', 'Researcher'] }, { next_action: 'final_response', content: '$input' }] },
    Researcher: { kind: 'script', responses: [{ $fail: 'boom' }] },
  },
};
quote('concepts.md', 'agent Researcher failed: boom', () => runError({ ...failing, agents: { ...failing.agents, Lead: { ...failing.agents.Lead, responses: [{ next_action: 'parallel_invoke', agents: ['Researcher'] }] } } }, 'root.0'));
quote('concepts.md', '3 of 4 children failed (more than 50%)', async () => {
  // Three of four fail: the fourth answers.
  const agents = { ...failing.agents, Lead: { ...failing.agents.Lead, allowed: ['Researcher', 'Writer'], responses: [{ next_action: 'parallel_invoke', agents: ['Researcher', 'Researcher', 'Researcher', 'Writer'] }] }, Writer: { kind: 'script', responses: [{ $delayMs: 200, next_action: 'final_response', content: 'ok' }] } };
  return runError({ ...failing, agents });
});
for (const doc of ['agents.md', 'README.md']) quote(doc, 'BudgetExceeded: maxRunTokens 50, used 60', async () => new BudgetExceededError('maxRunTokens', 50, 60).message);
quote('agents.md', 'BudgetExceeded: maxRunSeconds 600, used 600.2', async () => new BudgetExceededError('maxRunSeconds', 600, 600.2).message);
quote('README.md', 'error: bad.yaml: agents.Planner.kind: Invalid option: expected one of "script"|"http"|...', () =>
  cliError(['run', scratchFile('bad.yaml', 'name: x\nentry: Planner\nagents:\n  Planner: { kind: telepathy }\n')]));
quote('scenarios.md', 'error: examples/x.yaml: agents.Planner.kind: Invalid option: ...', async () => {
  mkdirSync(join(scratch, 'examples'), { recursive: true });
  return cliError(['run', scratchFile('examples/x.yaml', 'name: x\nentry: Planner\nagents:\n  Planner: { kind: telepathy }\n')]);
});
quote('scenarios.md', 'agents.Fetcher.model: only openai agents take model (this agent is http)', async () => {
  try {
    parseScenario({ name: 'x', entry: 'Fetcher', agents: { Fetcher: { kind: 'http', url: 'http://127.0.0.1:8080/agent', model: 'llama3.1' } } }, 's.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  return 'no error';
});
quote('deploy.md', 'my-scenario.yaml: entry: "Nobody" is not one of the agents (Planner, …)', async () => {
  try {
    parseScenario({ name: 'x', entry: 'Nobody', agents: { Planner: { kind: 'script', responses: [1] }, Writer: { kind: 'script', responses: [1] } } }, 'my-scenario.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  return 'no error';
});
quote('llm-agents.md', 'the environment variable OPENAI_API_KEY (apiKeyEnv) is not set', async () => {
  const saved = process.env.OPENAI_API_KEY;
  delete process.env.OPENAI_API_KEY;
  try {
    return await runError({ name: 'key', entry: 'A', agents: { A: { kind: 'openai', model: 'm', baseUrl: 'http://127.0.0.1:9/v1', apiKeyEnv: 'OPENAI_API_KEY', retries: 0 } } });
  } finally {
    if (saved !== undefined) process.env.OPENAI_API_KEY = saved;
  }
});
quote('llm-agents.md', 'agent Researcher failed: HTTP 401 from …: Incorrect API key', async () => {
  const server = createServer((_req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Incorrect API key provided' } })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    return await runError({ name: 'key', entry: 'Researcher', agents: { Researcher: { kind: 'openai', model: 'm', baseUrl, retries: 0 } } });
  } finally {
    server.close();
  }
});
quote('llm-agents.md', 'LimitExceeded maxToolCallsPerStep', async () => new LimitExceededError('maxToolCallsPerStep', 20, 21, 'LimitExceeded maxToolCallsPerStep: the step made 21 tool calls; maxToolCallsPerStep is 20').message);
quote('reliability.md', 'request.a.a: nested more than 64 levels deep', async () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = { a: deep };
  return cliError(['run', scratchFile('deep.json', JSON.stringify({ name: 'd', entry: 'A', request: deep, agents: { A: { kind: 'script', responses: [1] } } }))]);
});
quote('reliability.md', 'nested too deeply to read', () => cliError(['run', scratchFile('deep.yaml', `name: deep\nentry: A\nrequest: ${'['.repeat(5000)}${']'.repeat(5000)}\n`)]));
quote('reliability.md', '… — first failure root.x.y.z: LimitExceeded maxDepth: children would be at depth 4; maxDepth is 3', () =>
  runError({ name: 'self-recursion', entry: 'Looper', limits: { maxDepth: 3 }, agents: { Looper: { kind: 'script', responses: [{ next_actions: [['deeper', 'deeper']] }] } } }));
quote('reliability.md', '… LimitExceeded maxBranches: the run has 33 branches; 8 more would pass the limit; maxBranches is 40', () =>
  runError({ name: 'greedy', entry: 'Greedy', limits: { maxFanOut: 8, maxDepth: 4, maxBranches: 40 }, agents: { Greedy: { kind: 'script', responses: [{ next_action: 'parallel_invoke', agents: Array(8).fill('Greedy') }] } } }));
quote('reliability.md', 'LimitExceeded maxStepsPerBranch: the branch made 10 agent calls; maxStepsPerBranch is 10', () =>
  runError({
    name: 'ping-pong',
    entry: 'Ping',
    limits: { maxStepsPerBranch: 10 },
    agents: {
      Ping: { kind: 'script', allowed: ['Pong'], responses: [{ next_action: 'invoke_agent', action_input: 'Pong' }] },
      Pong: { kind: 'script', allowed: ['Ping'], responses: [{ next_action: 'invoke_agent', action_input: 'Ping' }] },
    },
  }));
quote('reliability.md', 'agent A failed: TypeError: the invoker\nreturned …', async () => {
  // An invoker that answers nothing at all (a broken reply of the fuzz test).
  const runtime = await LocalRuntime.start({ invokers: { module: { invoke: async () => undefined as never } } });
  try {
    const runId = await runtime.startRun({ name: 'broken', request: 'x', entry: 'A', agents: { A: { kind: 'module', module: 'broken' } } });
    return String((await runtime.waitForRun(runId)).error);
  } finally {
    await runtime.close();
  }
});
// The page's error line: the browser test reads it from the page in chromium.
quote('dev-server.md', 'request: entry: "Nobody" is not one of the agents (A) (field: entry)', async () => {
  const browserTest = readFileSync(join(ROOT, 'test', 'browser', 'tree-page.test.ts'), 'utf8');
  return /toBe\('error: (request: entry: "Nobody" is not one of the agents \(A\) \(field: entry\))'\)/.exec(browserTest)?.[1] ?? 'not checked by the browser test';
});
quote('reliability.md', 'error: …/journal.jsonl: line 2 is not readable\n(the journal is damaged)', async () => {
  // A run's journal with a line in its middle that is not JSON, then resume.
  const data = join(scratch, 'damaged');
  const { main } = await import('../../local/cli');
  const { captureIo } = await import('../support/io');
  await main(['run', join(ROOT, 'examples', 'simple-parallel.yaml'), '--data', data, '--json'], captureIo());
  const journal = join(data, 'journal.jsonl');
  const lines = readFileSync(journal, 'utf8').split('\n');
  lines.splice(1, 0, '{"this is not": a journal line');
  writeFileSync(journal, lines.join('\n'));
  return cliError(['resume', '--data', data]);
});
quote('reliability.md', 'the data folder is in use by pid N', async () => {
  const { lockDataFolder } = await import('../../local/data-folder');
  const lock = lockDataFolder(join(scratch, 'data'));
  try {
    lockDataFolder(join(scratch, 'data'));
    return 'no error';
  } catch (error) {
    return (error as Error).message;
  } finally {
    lock.release();
  }
});
quote('reliability.md', 'poison message: step <n> of branch <id> kept failing after <k> deliveries and went to the\n  dead-letter queue', async () => {
  const runtime = await LocalRuntime.start({ chaos: { poison: ['root'] }, maxReceiveCount: 2, visibilityTimeoutSeconds: 1 });
  try {
    const runId = await runtime.startRun({ name: 'p', request: 'x', entry: 'A', agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 'x' }] } } });
    return String((await runtime.waitForRun(runId)).error);
  } finally {
    await runtime.close();
  }
});

/** The quote as a pattern (see ERROR_TEXTS). */
function quotePattern(quoted: string): RegExp {
  const escaped = quoted
    .replace(/\s*\n\s*/g, ' ')
    .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    .replace(/…|\\\.\\\.\\\./g, '.*')
    .replace(/<[a-z]+>/g, '\\S+')
    .replace(/pid N\b/g, 'pid \\d+')
    .replace(/root\\\.x\\\.y\\\.z/g, 'root(?:\\.\\d+)+')
    .replace(/((?:[\w-]+\/)*[\w-]+\\\.ya?ml)/g, '(?:\\S*/)?$1');
  return new RegExp(escaped);
}

/** Code spans (and JSON strings of errors) of a doc that read as error texts. */
function quotedErrors(text: string): string[] {
  const spans = [...text.matchAll(/`([^`\n]*(?:\n[^`\n]+){0,2})`/g)].map((m) => m[1]);
  const strings = [...text.matchAll(/"error": "([^"]+)"|"root\.\d+": "([^"]+)"/g)].map((m) => m[1] ?? m[2]);
  const errorLike = /failed: |^error: |BudgetExceeded: |LimitExceeded \w|is not one of the agents|nested (more than|too deeply)|is in use by|is not set|poison message|children failed \(/;
  return [...spans, ...strings].filter((s) => errorLike.test(s) && !s.includes('${'));
}

const normalize = (text: string) => text.replace(/\s+/g, ' ');

describe('error texts the docs quote are the real ones', () => {
  const DOC_FILES = ['README.md', 'agents.md', 'concepts.md', 'deploy.md', 'dev-server.md', 'llm-agents.md', 'reliability.md', 'scenarios.md', 'protocol.md'];
  const readDoc = (file: string) => (file === 'README.md' ? readFileSync(join(ROOT, 'README.md'), 'utf8') : read(file));

  it('every error text quoted in the docs is in the table of this test', () => {
    const missing: string[] = [];
    for (const file of DOC_FILES) {
      for (const quoted of quotedErrors(readDoc(file))) {
        if (!ERROR_TEXTS.some((e) => e.doc === file && normalize(e.quoted) === normalize(quoted))) missing.push(`${file}: ${quoted}`);
      }
    }
    expect(missing).toEqual([]);
  });

  for (const { doc, quoted, produce } of ERROR_TEXTS) {
    it(`${doc}: ${quoted.replace(/\s+/g, ' ')}`, async () => {
      expect(normalize(readDoc(doc)).includes(normalize(quoted)), `${doc} quotes it`).toBe(true);
      const real = await produce();
      expect(real).toMatch(quotePattern(quoted));
    }, 30_000);
  }
});


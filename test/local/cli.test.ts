// Long-running: started first (vitest.config.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-cli-'));
function scenarioFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('branch-spawner run: exit codes and messages', () => {
  it('exit 2 naming the file and the field for an invalid scenario', async () => {
    const path = scenarioFile('bad-kind.yaml', 'name: x\nrequest: hi\nentry: A\nagents:\n  A: { kind: telepathy }\n');
    const io = captureIo();
    expect(await main(['run', path], io)).toBe(2);
    expect(io.errText()).toContain(path);
    expect(io.errText()).toContain('agents.A.kind');
  });

  it('exit 2 for an entry that is not an agent, an unknown field, a YAML syntax error, a missing file', async () => {
    const cases: [string, string, RegExp][] = [
      ['entry.yaml', 'name: x\nrequest: hi\nentry: B\nagents:\n  A: { kind: script, responses: [1] }\n', /entry: "B" is not one of the agents/],
      ['unknown.yaml', 'name: x\nentry: A\nflavour: mint\nagents:\n  A: { kind: script, responses: [1] }\n', /flavour/],
      ['syntax.yaml', 'name: x\nagents: [unclosed\n', /not valid YAML at line/],
      ['allowed.json', JSON.stringify({ name: 'x', entry: 'A', agents: { A: { kind: 'script', responses: [1], allowed: ['Ghost'] } } }), /agents\.A\.allowed\.0: "Ghost"/],
      ['limits.yaml', 'name: x\nentry: A\nlimits: { maxDepth: -1 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.maxDepth/],
      ['steps.yaml', 'name: x\nentry: A\nlimits: { maxStepsPerBranch: 1000000000 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.maxStepsPerBranch: must be ≤ 1000, the ceiling/],
      ['timeout.yaml', 'name: x\nentry: A\nlimits: { branchTimeoutSeconds: 31536000 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.branchTimeoutSeconds: must be ≤ 86400/],
      ['invalid.yaml', 'name: x\nentry: A\nlimits: { maxInvalidResponses: 1000000000 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.maxInvalidResponses: must be ≤ 10/],
      ['branches.yaml', 'name: x\nentry: A\nlimits: { maxBranches: 100001 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.maxBranches: must be ≤ 100000/],
      // An agent call may not outlive the step worker (300 s, less 30 s for the step's own work).
      ['agent-timeout.yaml', 'name: x\nentry: A\nagents:\n  A: { kind: http, url: "http://127.0.0.1:9/a", timeoutMs: 600000 }\n', /agents\.A\.timeoutMs: 600000 ms is longer than an agent call may last \(limits\.agentTimeoutSeconds 240 s, at most 270 s/],
      ['agent-bound.yaml', 'name: x\nentry: A\nlimits: { agentTimeoutSeconds: 3600 }\nagents:\n  A: { kind: script, responses: [1] }\n', /limits\.agentTimeoutSeconds: must be ≤ 270/],
      ['agent-delay.yaml', 'name: x\nentry: A\nagents:\n  A: { kind: script, responses: [{ $delayMs: 600000 }] }\n', /agents\.A\.responses\.0\.\$delayMs: 600000 ms is longer than an agent call may last \(limits\.agentTimeoutSeconds 240 s\)/],
    ];
    for (const [name, text, message] of cases) {
      const io = captureIo();
      expect(await main(['run', scenarioFile(name, text)], io), name).toBe(2);
      expect(io.errText()).toMatch(message);
    }
    const io = captureIo();
    expect(await main(['run', join(dir, 'nope.yaml')], io)).toBe(2);
    expect(io.errText()).toMatch(/nope\.yaml: cannot read the file \(ENOENT\)/);
  });

  it('exit 2 naming the field for a scenario nested 5,000 deep or too large to keep (no stack trace)', async () => {
    const agents = '"agents":{"A":{"kind":"script","responses":[{"next_action":"final_response","content":"$input"}]}}';
    const deep = `{"name":"deep","entry":"A","request":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)},${agents}}`;
    const big = `{"name":"big","entry":"A","request":"${'x'.repeat(500_000)}",${agents}}`;
    const bigScript = `{"name":"s","entry":"A","agents":{"A":{"kind":"script","responses":["${'y'.repeat(300_000)}"]}}}`;
    const cases: [string, string, RegExp][] = [
      ['deep.json', deep, /deep\.json: request\.a\.a: nested more than 64 levels deep/],
      ['deep.yaml', `name: deep\nentry: A\nrequest: ${'['.repeat(5000)}${']'.repeat(5000)}\n`, /deep\.yaml: not valid YAML at line \d+: nested too deeply/],
      ['big.json', big, /big\.json: request: the document is \d+ bytes as JSON \(request 500002 bytes\); at most 262144 are accepted/],
      ['big-script.json', bigScript, /agents\.A\.responses: the document is \d+ bytes/],
      ['huge.yaml', `# ${'z'.repeat(2 * 1024 * 1024)}\nname: x\n`, /huge\.yaml: the file is \d+ bytes; at most 1048576 are read/],
    ];
    for (const [name, text, message] of cases) {
      const io = captureIo();
      expect(await main(['run', scenarioFile(name, text)], io), name).toBe(2);
      expect(io.errText(), name).toMatch(message);
      expect(io.errText(), name).not.toMatch(/\n\s+at /);
    }
  });

  it('exit 1 and the error when the run fails; exactly one JSON document with --json', async () => {
    const path = scenarioFile(
      'fails.yaml',
      'name: fails\nrequest: go\nentry: A\nagents:\n  A: { kind: script, responses: [ { $fail: "no luck" } ] }\n',
    );
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(Object.keys(doc)).toEqual(['runId', 'name', 'status', 'result', 'error', 'metrics', 'branches']);
    expect(doc).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/no luck/) });
    expect(doc.branches).toEqual([
      { id: 'root', parentId: null, agent: 'A', agentChain: ['A'], type: 'SIMPLE', depth: 0, status: 'FAILED', result: null, error: expect.stringMatching(/no luck/) },
    ]);
    expect(doc.metrics).toMatchObject({ totalCreated: 1, activeCount: 0, maxDepth: 0, avgDepth: 0, successRate: 0 });
  });

  it('prints the tree, a summary and the result without --json (no TTY: no progress noise)', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/simple-parallel.yaml'], io)).toBe(0);
    const out = io.outText();
    expect(out).toMatch(/^root Planner \(nested\) \[COMPLETED\]/);
    expect(out).toContain('└─ root.2 Validator (simple) [COMPLETED]');
    expect(out).toMatch(/run \S+ COMPLETED in [\d.]+s — 4 branches/);
    expect(out).not.toContain('\x1b[');
  });
});

describe('per-fan-out options through the CLI', () => {
  it('exit 2 naming the field for a canned spawn with a bad option', async () => {
    const path = scenarioFile(
      'bad-option.yaml',
      'name: x\nentry: A\nagents:\n  A: { kind: script, allowed: [B], responses: [{ next_action: parallel_invoke, agents: [B], on_failure: shrug }] }\n  B: { kind: script, responses: [done] }\n',
    );
    const io = captureIo();
    expect(await main(['run', path], io)).toBe(2);
    expect(io.errText()).toMatch(/bad-option\.yaml: agents\.A\.responses\.0\.on_failure: /);
  });

  it('complete_when "fn:<name>" with the scenario\'s aggregators module: the second and third child complete it after the first failed', async () => {
    const path = scenarioFile(
      'completion-fn.yaml',
      [
        'name: completion-fn',
        'entry: Lead',
        `aggregators: ${join(process.cwd(), 'examples', 'aggregators.ts')}`,
        'agents:',
        '  Lead:',
        '    kind: script',
        '    allowed: [Primary, Backup]',
        '    responses:',
        '      - { next_action: parallel_invoke, agents: [Primary, Backup, Backup], complete_when: "fn:primaryOrBothBackups", on_failure: continue }',
        '      - { next_action: final_response, content: "$input" }',
        '  Primary: { kind: script, responses: [{ $fail: "primary is down" }] }',
        '  Backup: { kind: script, responses: [{ next_action: final_response, content: backup }] }',
        '',
      ].join('\n'),
    );
    const io = captureIo();
    expect(await main(['run', path, '--json'], io), io.errText()).toBe(0);
    const { result } = JSON.parse(io.outText());
    expect(result.results).toEqual({ 'root.1': 'backup', 'root.2': 'backup' });
    expect(result.completion_reason).toBe('ALL_COMPLETED');
    expect(result.children['root.0']).toEqual({ agent: 'Primary', status: 'FAILED', error: expect.stringMatching(/primary is down/) });
  });
});

describe('every example runs', () => {
  const examples: [string, string, (doc: any) => void][] = [
    ['hierarchical.yaml', 'COMPLETED', (d) => {
      expect(d.metrics.totalCreated).toBe(1 + 2 + 6 + 0);
      // A hand-off chain: `agent` is the current agent, `agentChain` every agent the branch ran.
      expect(d.branches.find((b: any) => b.id === 'root.0.2')).toMatchObject({ agent: 'Editor', agentChain: ['Writer', 'Editor'] });
    }],
    ['dynamic-workflow.yaml', 'COMPLETED', (d) => expect(d.branches.some((b: any) => b.type === 'AGGREGATION')).toBe(true)],
    ['recursion.yaml', 'COMPLETED', (d) => expect(d.metrics.maxDepth).toBe(3)],
    ['failures.yaml', 'COMPLETED', (d) => {
      expect(Object.keys(d.result.failures).sort()).toEqual(['root.2', 'root.3']);
      expect(d.branches.find((b: any) => b.id === 'root.3').status).toBe('TIMED_OUT');
    }],
    ['quorum-custom-aggregator.yaml', 'COMPLETED', (d) => expect(d.result).toEqual({ median_days: 12 })],
    ['tolerant-research.yaml', 'COMPLETED', checkTolerantResearch],
    ['completion-function.yaml', 'COMPLETED', (d) => {
      // The primary is down: both backups complete the spawn, and the archive still running is cancelled.
      const aggregate = d.result.priced_from;
      expect(aggregate.completion_reason).toBe('MIN_SUCCESSFUL_REACHED');
      expect(Object.keys(aggregate.results)).toEqual(['root.1', 'root.2']);
      expect(aggregate.children['root.0']).toEqual({ agent: 'PrimaryFeed', status: 'FAILED', error: expect.stringMatching(/the primary feed is down/) });
      expect(d.branches.map((b: any) => `${b.id} ${b.status}`)).toEqual(['root COMPLETED', 'root.0 FAILED', 'root.1 COMPLETED', 'root.2 COMPLETED', 'root.3 CANCELLED']);
    }],
  ];
  for (const [file, status, check] of examples) {
    it(file, async () => {
      const io = captureIo();
      const code = await main(['run', `examples/${file}`, '--json'], io);
      const doc = JSON.parse(io.outText());
      expect(doc.status, io.errText()).toBe(status);
      expect(code).toBe(status === 'COMPLETED' ? 0 : 1);
      check(doc);
    });
  }
});

/** examples/tolerant-research.yaml: one researcher at a time, the third failure past the two tolerated, the Editor writes up what it has. */
function checkTolerantResearch(d: any) {
  expect(d.result.partial).toBe(true);
  const aggregate = d.result.written_from;
  expect(aggregate.completion_reason).toBe('FAILURE_TOLERANCE_EXCEEDED');
  expect(Object.keys(aggregate.results)).toEqual(['root.0', 'root.2', 'root.3', 'root.5', 'root.6']);
  expect(Object.keys(aggregate.failures)).toEqual(['root.1', 'root.4', 'root.7']);
  const statuses = Object.values(aggregate.children).map((c: any) => c.status);
  expect(statuses.slice(7)).toEqual(['FAILED', 'CANCELLED', 'CANCELLED']);
  expect(aggregate.children['root.1'].error).toMatch(/behind a paywall/);
  expect(d.branches.filter((b: any) => b.status === 'CANCELLED').map((b: any) => b.id)).toEqual(['root.8', 'root.9']);
}

describe('branch-spawner run --engines', () => {
  it('runs on dynalite + fauxqs and answers as the default tier does', async () => {
    const path = scenarioFile('engines.yaml', 'name: x\nrequest: hi\nentry: A\nagents:\n  A: { kind: script, responses: [{ next_action: final_response, content: done }] }\n');
    const results = [];
    for (const args of [['run', path, '--json'], ['run', path, '--json', '--engines']]) {
      const io = captureIo();
      expect(await main(args, io), io.errText()).toBe(0);
      const { status, result, branches } = JSON.parse(io.outText());
      results.push({ status, result, branches: branches.length });
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toEqual({ status: 'COMPLETED', result: 'done', branches: 1 });
  });

  it('runs examples/tolerant-research.yaml (per-fan-out options) on the engines as on the default tier', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/tolerant-research.yaml', '--json', '--engines'], io), io.errText()).toBe(0);
    checkTolerantResearch(JSON.parse(io.outText()));
  });
});

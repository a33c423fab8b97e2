import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ForbiddenError } from '../../core/errors';
import { toStartRunInput } from '../../core/run-request';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-module-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('kind: module through the CLI', () => {
  it('examples/module-agents.yaml: the TypeScript planner spawns three workers and answers from their results', async () => {
    const io = captureIo();
    expect(await main(['run', 'examples/module-agents.yaml', '--json'], io), io.errText()).toBe(0);
    const doc = JSON.parse(io.outText());
    expect(doc.status).toBe('COMPLETED');
    expect(doc.branches.map((b: { id: string; agent: string; status: string }) => `${b.id} ${b.agent} ${b.status}`)).toEqual([
      'root Planner COMPLETED',
      'root.0 Worker COMPLETED',
      'root.1 Worker COMPLETED',
      'root.2 Worker COMPLETED',
    ]);
    expect(doc.result.plan.results).toEqual({
      'root.0': 'transport: done (branch root.0, depth 1)',
      'root.1': 'lodging: done (branch root.1, depth 1)',
      'root.2': 'sights: done (branch root.2, depth 1)',
    });
    // reportUsage reached the run's metrics: 3 × (input "Plan a weekend trip to Lisbon".length) + part lengths.
    expect(doc.metrics.usage).toEqual({ inputTokens: 3 * 29, outputTokens: 'transport'.length + 'lodging'.length + 'sights'.length });
  });

  it('a function that throws fails its branch like $fail, with its message', async () => {
    file('boom.ts', 'export default async () => { throw new Error("out of ideas"); };\n');
    const path = file('boom.yaml', 'name: boom\nrequest: go\nentry: A\nagents:\n  A: { kind: module, module: ./boom.ts }\n');
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(1);
    const doc = JSON.parse(io.outText());
    expect(doc).toMatchObject({ status: 'FAILED', error: expect.stringContaining('out of ideas') });
  });

  it('a missing file or export is an invalid scenario: exit 2 naming the field', async () => {
    file('ok.ts', 'export const a = async () => "x";\n');
    const cases: [string, RegExp][] = [
      ['name: m\nentry: A\nagents:\n  A: { kind: module, module: ./ok.ts, export: b }\n', /agents\.A\.export: .*no function export "b" \(function exports: a\)/],
      ['name: m\nentry: A\nagents:\n  A: { kind: module, module: ./nowhere.ts }\n', /agents\.A\.module: cannot load module/],
      ['name: m\nentry: A\nagents:\n  A: { kind: module }\n', /agents\.A\.module: a module agent needs module/],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const io = captureIo();
      expect(await main(['run', file(`bad-${i}.yaml`, text)], io)).toBe(2);
      expect(io.errText()).toMatch(message);
    }
  });

  it('a request in AWS can never name a module (only local runs and dev allow it)', () => {
    const doc = { name: 'x', entry: 'A', agents: { A: { kind: 'module', module: '/tmp/evil.ts' } } };
    for (const inline of ['script', 'none'] as const) {
      expect(() => toStartRunInput(doc, { team: 't', policy: { registry: {}, inline } })).toThrow(ForbiddenError);
      expect(() => toStartRunInput(doc, { team: 't', policy: { registry: {}, inline } })).toThrow(/module agents run only in local runs and dev/);
    }
    expect(toStartRunInput(doc, { team: 't', policy: { registry: {}, inline: 'any' } }).agents.A.kind).toBe('module');
  });
});

/**
 * Bad input through the CLI: refused with exit 2 and a message naming the field, never a crash.
 * test/local/cli.test.ts covers the shapes (deep, large, a few limits) through `main`; here every
 * limit of the table past its ceiling, and the installed command itself (`bin/branch-spawner.mjs`
 * in a child process: its exit code, and no stack trace on stderr).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIMIT_TABLE } from '../../core/limit-table';
import { main } from '../../local/cli';
import { captureIo } from '../support/io';
import { cli } from './contract-support';

const dir = mkdtempSync(join(tmpdir(), 'bs-bad-input-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const AGENTS = '"agents":{"A":{"kind":"script","responses":[{"next_action":"final_response","content":"$input"}]}}';

describe('run refuses limits past their ceiling, whatever the limit', () => {
  // At once: each accepted run spends most of its second waiting for its queue pollers to stop.
  it.concurrent.each(Object.entries(LIMIT_TABLE))('limits.%s one past its ceiling: exit 2 naming the field, one INVALID document with --json', async (name, row) => {
    const path = file(`${name}.json`, `{"name":"x","entry":"A","limits":{"${name}":${row.ceiling + 1}},${AGENTS}}`);
    const io = captureIo();
    expect(await main(['run', path, '--json'], io)).toBe(2);
    expect(io.errText()).toContain(`limits.${name}: must be ≤ ${row.ceiling}, the ceiling for every run`);
    expect(JSON.parse(io.outText())).toMatchObject({ status: 'INVALID', runId: null, field: `limits.${name}` });
    // At the ceiling it is accepted (the refusal is the ceiling, not the field).
    const atCeiling = file(`${name}-ok.json`, `{"name":"x","request":"hi","entry":"A","limits":{"${name}":${row.ceiling}},${AGENTS}}`);
    const ok = captureIo();
    expect(await main(['run', atCeiling, '--json'], ok), ok.errText()).toBe(0);
  });
});

describe('the installed command (bin/branch-spawner.mjs, a child process)', () => {
  it('exit 2 naming the field for a request nested 5,000 deep (it used to overflow the stack: exit 1); nothing on stdout, no stack trace', async () => {
    // One process start is several seconds of CPU: the other shapes go through main in test/local/cli.test.ts.
    const deep = file('deep.json', `{"name":"deep","entry":"A","request":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)},${AGENTS}}`);
    const exit = await cli(['run', deep]).exited;
    expect(exit.code, exit.stderr).toBe(2);
    expect(exit.stderr).toMatch(/deep\.json: request\.a\.a: nested more than 64 levels deep/);
    expect(exit.stderr).not.toMatch(/\n\s+at |RangeError|Maximum call stack/);
    expect(exit.stdout).toBe('');
  });
});

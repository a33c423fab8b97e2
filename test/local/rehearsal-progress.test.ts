/**
 * `run --rehearse` on a terminal says what it does before the run starts: the synthesis (the first
 * time, about a minute) and the engines with the stack. Without a terminal it says nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rehearseScenario } from '../../local/rehearsal/rehearse-command';
import { captureIo } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'bs-rehearse-progress-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SYNTH = 'synthesizing the stack with cdk synth (the first time takes about a minute; later runs reuse it until the code changes)...';
const STACK = 'starting the engines (dynalite, fauxqs) and creating the stack from the template...';

describe('run --rehearse on a terminal', () => {
  it('prints the synthesis (when it runs) and the stack creation before the run, then the run as run does', async () => {
    const file = join(dir, 'hello.yaml');
    writeFileSync(file, 'name: hello\nrequest: hi\nentry: A\nagents:\n  A: { kind: script, responses: [ { next_action: final_response, content: hello } ] }\n');
    const io = captureIo();
    const code = await rehearseScenario(file, { json: false, tty: true, out: io.out, err: io.err });
    expect(code, io.errText()).toBe(0);
    const lines = io.errText().trim().split('\n');
    // The synthesis line only when the assembly had to be made (it is reused while the code is unchanged).
    expect([[STACK], [SYNTH, STACK]]).toContainEqual(lines);
    expect(io.outText()).toMatch(/run \S+ COMPLETED in [\d.]+s — 1 branch/);
  }, 600_000);
});

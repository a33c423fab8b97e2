/**
 * Scenario files that name a team's registry agents without defining them (`--team`, `--api`,
 * `--stack`): checked against the team's registry before anything is sent, and run on the team's
 * rehearsed stack as docs/deploy.md shows (`run my-scenario.yaml --rehearse --team research`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../local/cli';
import { loadStackScenarioFile } from '../../local/scenario-file';
import { agentPolicyOf, loadTeamConfig } from '../../functions/team-config';
import { captureIo as capture } from '../support/io';

const dir = mkdtempSync(join(tmpdir(), 'team-scenarios-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scenarioFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const research = () => agentPolicyOf(loadTeamConfig('research'));

describe('a scenario file naming the team registry', () => {
  it('is checked against the registry and sent without the registry agents', async () => {
    const file = scenarioFile('validate.yaml', 'name: check\nentry: Validator\nrequest: hello\n');
    const { scenario, body } = await loadStackScenarioFile(file, research());
    expect(body).toEqual({ name: 'check', entry: 'Validator', request: 'hello' });
    expect(Object.keys(scenario!.agents)).toEqual(['Planner', 'DataFetcher', 'Calculator', 'Validator']);
  });

  it('keeps inline script agents where the team allows them, and refuses other inline kinds', async () => {
    const inline = scenarioFile('inline.yaml', [
      'name: inline', 'entry: Echo', 'request: x', 'agents:',
      '  Echo: { kind: script, allowed: [Validator], responses: [{ next_action: handoff, target_agent: Validator, input: "$input" }] }', '',
    ].join('\n'));
    const { body } = await loadStackScenarioFile(inline, research());
    expect(Object.keys(body.agents as object)).toEqual(['Echo']);
    const http = scenarioFile('http.yaml', 'name: h\nentry: Mine\nagents:\n  Mine: { kind: http, url: "http://127.0.0.1:1/agent" }\n');
    await expect(loadStackScenarioFile(http, research())).rejects.toThrow(/agents\.Mine: inline http agents are not accepted here/);
  });

  it('an agent the registry does not have is an error naming the file and the field (exit 2, nothing synthesized)', async () => {
    const file = scenarioFile('unknown.yaml', 'name: u\nentry: Nobody\n');
    const io = capture();
    expect(await main(['run', file, '--rehearse', '--team', 'research'], io)).toBe(2);
    expect(io.errText()).toContain(`error: ${file}: entry: "Nobody" is not one of the agents (Planner, DataFetcher, Calculator, Validator)`);
  });

  it('an unknown team is exit 2 naming the known teams', async () => {
    const file = scenarioFile('any.yaml', 'name: u\nentry: Validator\n');
    const io = capture();
    expect(await main(['run', file, '--rehearse', '--team', 'nope'], io)).toBe(2);
    expect(io.errText()).toMatch(/unknown team "nope".*known teams: platform, research/);
  });

  it('runs on the team stack as docs/deploy.md shows: run my-scenario.yaml --rehearse --team research', async () => {
    const file = scenarioFile('my-scenario.yaml', 'name: my-scenario\nentry: Validator\nrequest: checked\n');
    const io = capture();
    const code = await main(['run', file, '--rehearse', '--team', 'research', '--json'], io);
    expect(io.errText()).toBe('');
    const doc = JSON.parse(io.outText());
    expect({ code, status: doc.status, result: doc.result, branches: doc.branches.length }).toEqual({ code: 0, status: 'COMPLETED', result: 'checked', branches: 1 });
  }, 900_000);
});

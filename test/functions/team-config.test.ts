/** Team configs (infra/teams/<team>.json): defaults, and errors that name the file and the field. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEAM_DEFAULT_MAXIMA } from '../../core/limits';
import { knownTeams, loadTeamConfig, parseTeamConfig, TeamConfigError } from '../../functions/team-config';

const FILE = 'infra/teams/example.json';
const base = () => ({
  team: 'example',
  agents: {
    Planner: { kind: 'script', allowed: ['Fetcher'], responses: [{ next_action: 'final_response', content: 'ok' }] },
    Fetcher: { kind: 'lambda', functionName: 'example-fetcher' },
  },
});

function configError(document: unknown): TeamConfigError {
  try {
    parseTeamConfig(document, FILE);
  } catch (error) {
    expect(error).toBeInstanceOf(TeamConfigError);
    return error as TeamConfigError;
  }
  throw new Error('expected a TeamConfigError');
}

describe('team configs', () => {
  it('ships research and platform', () => {
    expect(knownTeams()).toEqual(['platform', 'research']);
  });

  it('research: IAM auth by default, inline script agents allowed, 30-day TTL', () => {
    const config = loadTeamConfig('research');
    expect(config.team).toBe('research');
    expect(config.auth).toEqual({ type: 'iam' });
    expect(config.allowInlineScriptAgents).toBe(true);
    expect(config.workerMaxConcurrency).toBe(10);
    expect(config.runTtlDays).toBe(30);
    expect(config.account).toBeUndefined();
    expect(Object.keys(config.agents).sort()).toEqual(['Calculator', 'DataFetcher', 'Planner', 'Validator']);
  });

  it('platform: pinned env, JWT auth, alarm email, throttle, customer-managed table key', () => {
    const config = loadTeamConfig('platform');
    expect(config).toMatchObject({
      account: '111122223333',
      region: 'eu-west-1',
      allowInlineScriptAgents: false,
      workerMaxConcurrency: 50,
      alarmEmail: 'platform-oncall@example.com',
      auth: { type: 'jwt', issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123' },
      apiThrottle: { rateLimit: 100, burstLimit: 200 },
      tableEncryption: 'customer-managed',
    });
  });

  it('applies the defaults', () => {
    const config = parseTeamConfig(base(), FILE);
    expect(config).toMatchObject({
      allowInlineScriptAgents: false,
      workerMaxConcurrency: 10,
      auth: { type: 'iam' },
      limitMaxima: TEAM_DEFAULT_MAXIMA,
      tableEncryption: 'aws-managed',
      maxBodyBytes: 1024 * 1024,
      events: { branches: 'all', sample: 1 },
    });
    expect(config.workerMemoryMb).toBeUndefined();
  });

  it('takes a step-worker memory size and an event setting', () => {
    const config = parseTeamConfig({ ...base(), workerMemoryMb: 256, events: { branches: 'ends', sample: 0.1 } }, FILE);
    expect(config).toMatchObject({ workerMemoryMb: 256, events: { branches: 'ends', sample: 0.1 } });
    expect(parseTeamConfig({ ...base(), events: { branches: 'off' } }, FILE).events).toEqual({ branches: 'off', sample: 1 });
  });

  it.each([
    ['an unknown field', { ...base(), colour: 'blue' }, 'colour', /unknown field\(s\) "colour"/],
    ['a bad team name', { ...base(), team: 'Research Team' }, 'team', /lowercase/],
    ['a bad account', { ...base(), account: '12345' }, 'account', /12-digit/],
    ['a bad region', { ...base(), region: 'Europe' }, 'region', /AWS region/],
    ['a limit below 1', { ...base(), limitMaxima: { maxDepth: 0 } }, 'limitMaxima.maxDepth', /must be positive/],
    ['a limit past its ceiling', { ...base(), limitMaxima: { maxStepsPerBranch: 1e9 } }, 'limitMaxima.maxStepsPerBranch', /must be ≤ 1000, the ceiling/],
    ['an unknown limit', { ...base(), limitMaxima: { maxDepht: 3 } }, 'limitMaxima.maxDepht', /unknown field/],
    ['workerMaxConcurrency 1', { ...base(), workerMaxConcurrency: 1 }, 'workerMaxConcurrency', /≥ 2/],
    ['a worker memory below Lambda\'s minimum', { ...base(), workerMemoryMb: 64 }, 'workerMemoryMb', /≥ 128/],
    ['a worker memory past Lambda\'s maximum', { ...base(), workerMemoryMb: 20_000 }, 'workerMemoryMb', /≤ 10240/],
    ['a fractional worker memory', { ...base(), workerMemoryMb: 300.5 }, 'workerMemoryMb', /integer/],
    ['an unknown event mode', { ...base(), events: { branches: 'some' } }, 'events.branches', /./],
    ['an event sample of 0', { ...base(), events: { sample: 0 } }, 'events.sample', /> 0/],
    ['an event sample past 1', { ...base(), events: { sample: 1.5 } }, 'events.sample', /≤ 1/],
    ['an unknown event field', { ...base(), events: { rate: 0.5 } }, 'events.rate', /unknown field/],
    ['a bad alarm email', { ...base(), alarmEmail: 'oncall' }, 'alarmEmail', /email/],
    [
      'a JWT issuer that is no Cognito pool',
      { ...base(), auth: { type: 'jwt', issuer: 'https://login.example.com', audience: 'x' } },
      'auth.issuer',
      /Cognito user pool issuer/,
    ],
    ['an unknown auth type', { ...base(), auth: { type: 'basic' } }, 'auth.type', /./],
    ['a throttle without burst', { ...base(), apiThrottle: { rateLimit: 10 } }, 'apiThrottle.burstLimit', /./],
    ['an unknown agent kind', { ...base(), agents: { A: { kind: 'magic' } } }, 'agents.A.kind', /./],
    ['a lambda agent without functionName', { ...base(), agents: { A: { kind: 'lambda' } } }, 'agents.A.functionName', /needs functionName/],
    ['a bedrock agent without modelId', { ...base(), agents: { A: { kind: 'bedrock' } } }, 'agents.A.modelId', /needs modelId/],
    ['an http agent with a bad url', { ...base(), agents: { A: { kind: 'http', url: 'nope' } } }, 'agents.A.url', /URL/],
    [
      'allowed naming an agent outside the registry',
      { ...base(), agents: { A: { kind: 'lambda', functionName: 'f', allowed: ['Ghost'] } } },
      'agents.A.allowed.0',
      /"Ghost" is not one of the agents/,
    ],
    ['an empty registry', { ...base(), agents: {} }, 'agents', /at least one agent/],
  ])('rejects %s, naming the file and the field', (_what, document, field, detail) => {
    const error = configError(document);
    expect(error.file).toBe(FILE);
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${FILE}: ${field}: `)).toBe(true);
    expect(error.message).toMatch(detail);
  });

  it('caps every limit: the ones a team names, the table\'s team maximum for the others', () => {
    const config = parseTeamConfig({ ...base(), limitMaxima: { maxDepth: 3 } }, FILE);
    expect(config.limitMaxima).toEqual({ ...TEAM_DEFAULT_MAXIMA, maxDepth: 3 });
    expect(Object.keys(loadTeamConfig('research').limitMaxima).sort()).toEqual(Object.keys(TEAM_DEFAULT_MAXIMA).sort());
  });

  it('an unknown team is an error that lists the known teams', () => {
    expect(() => loadTeamConfig('nope')).toThrow(/unknown team "nope".*\(known teams: platform, research\)/);
  });

  it('a file whose team differs from its name, or that is not JSON, is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-'));
    writeFileSync(join(dir, 'alpha.json'), JSON.stringify({ ...base(), team: 'beta' }));
    writeFileSync(join(dir, 'broken.json'), '{ "team": ');
    expect(() => loadTeamConfig('alpha', dir)).toThrow(/alpha\.json: team: must be "alpha" \(the file name\), got "beta"/);
    expect(() => loadTeamConfig('broken', dir)).toThrow(/broken\.json: \(root\): not valid JSON/);
  });

  it("finds the files of the registry's module tools (relative to the config), to bundle into the step worker; a missing one names its field", () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-'));
    try {
      mkdirSync(join(dir, 'tools'));
      writeFileSync(join(dir, 'tools', 'facts.ts'), 'export const lookup = () => 1;\n');
      const tool = (module: string) => ({ kind: 'module', module, export: 'lookup' });
      const agent = (module: string) => ({ kind: 'openai', model: 'm', tools: [{ kind: 'http', name: 'h', url: 'https://x.example/h' }, tool(module)] });
      writeFileSync(join(dir, 'alpha.json'), JSON.stringify({ team: 'alpha', agents: { Lead: agent('./tools/facts.ts'), Other: agent('./tools/facts.ts') } }));
      expect(loadTeamConfig('alpha', dir).toolModules).toEqual({ './tools/facts.ts': join(dir, 'tools', 'facts.ts') });
      writeFileSync(join(dir, 'beta.json'), JSON.stringify({ team: 'beta', agents: { Lead: agent('./tools/nope.ts') } }));
      expect(() => loadTeamConfig('beta', dir)).toThrow(/beta\.json: agents\.Lead\.tools\.1\.module: no module .*tools\/nope\.ts/);
      writeFileSync(join(dir, 'gamma.json'), JSON.stringify({ team: 'gamma', agents: { Lead: { kind: 'openai', model: 'm' } } }));
      expect(loadTeamConfig('gamma', dir).toolModules).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

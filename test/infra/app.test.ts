/** The CDK app (infra/app.ts → buildApp): `-c team=<name>`, every team without it, clear errors. */
import { App } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/build-app';
import { WITHOUT_CFN_CHECKS } from './support';

// No Lambda bundling here: these tests are about which stacks exist, not their code (nor CDK's
// CloudFormation checks: deploy-rules.test.ts asserts those on the whole app).
const appWith = (context: Record<string, unknown> = {}) =>
  new App({ ...WITHOUT_CFN_CHECKS, outdir: mkdtempSync(join(tmpdir(), 'cdk-app-')), context: { 'aws:cdk:bundling-stacks': [], ...context } });

describe('buildApp', () => {
  it('-c team=research makes only branch-spawner-research', () => {
    const stacks = buildApp(appWith({ team: 'research' }));
    expect(stacks.map((s) => s.stackName)).toEqual(['branch-spawner-research']);
  });

  it('without a team it makes every team (npm run synth), and the whole app synthesizes with cdk-nag clean', () => {
    const app = appWith();
    const stacks = buildApp(app);
    expect(stacks.map((s) => s.stackName).sort()).toEqual(['branch-spawner-platform', 'branch-spawner-research']);
    // The AwsSolutions plugin runs during synth and would throw on any unacknowledged finding.
    const assembly = app.synth();
    expect(assembly.stacks.map((s) => s.stackName).sort()).toEqual(['branch-spawner-platform', 'branch-spawner-research']);
    const research = assembly.getStackByName('branch-spawner-research');
    expect(research.environment.account).toBe('unknown-account');
    expect(research.environment.region).toBe('unknown-region');
    const platform = assembly.getStackByName('branch-spawner-platform');
    expect(platform.environment).toMatchObject({ account: '111122223333', region: 'eu-west-1' });
  });

  it('an unknown team is a clear error listing the known teams', () => {
    expect(() => buildApp(appWith({ team: 'nope' }))).toThrow(/unknown team "nope".*known teams: platform, research/);
  });

  it('reads another teams directory; an openai agent whose key the stack cannot provide is a synth warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'teams-'));
    const team = {
      team: 'labs',
      agents: { Writer: { kind: 'openai', model: 'gpt-4o-mini', apiKeyEnv: 'OPENAI_API_KEY' } },
    };
    writeFileSync(join(dir, 'labs.json'), JSON.stringify(team));
    const [stack] = buildApp(appWith({ team: 'labs' }), { teamsDir: dir, nag: false });
    expect(stack.stackName).toBe('branch-spawner-labs');
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('agents.Writer: the stack does not provision OPENAI_API_KEY'));
  });
});

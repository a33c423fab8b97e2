/**
 * cdk-nag AwsSolutions: no unacknowledged finding on either team stack, every acknowledgement has
 * a reason and is really needed. cdk-nag 3 is a CDK policy-validation plugin: findings come from
 * `validateScope()` (or fail `app.synth()`), not from annotations.
 */
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { BranchSpawner } from '../../infra/branch-spawner';
import { nagAcknowledgements } from '../../infra/nag-acknowledgements';
import { loadTeamConfig } from '../../functions/team-config';
import { synthTeam, WITHOUT_CFN_CHECKS, type Synthesized } from './support';

const TEAMS = ['research', 'platform'] as const;
const synthesized: Record<string, Synthesized> = {};

beforeAll(() => {
  for (const team of TEAMS) synthesized[team] = synthTeam(team, { bundle: false });
});

describe.each(TEAMS)('%s stack', (team) => {
  it('has no unacknowledged AwsSolutions finding (errors or warnings)', () => {
    const report = new AwsSolutionsChecks().validateScope(synthesized[team].stack);
    expect(report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('has no AwsSolutions error annotations either', () => {
    expect(Annotations.fromStack(synthesized[team].stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });

  it('records every acknowledgement, with a reason, on the construct it concerns', () => {
    const acks = nagAcknowledgements(synthesized[team].stack.spawner);
    expect(acks.length).toBeGreaterThan(5);
    for (const ack of acks) {
      expect(ack.reason.length, ack.id).toBeGreaterThan(60);
      const recorded = ack.construct.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .map((m) => m.data as Record<string, string>);
      expect(recorded.some((data) => Object.entries(data).some(([id, reason]) => id.endsWith(ack.id) && reason === ack.reason))).toBe(true);
    }
  });

  it('acknowledges only what cdk-nag reports without the acknowledgements', () => {
    // The same construct in a bare stack (no acknowledgements, no bundling).
    const app = new App({ ...WITHOUT_CFN_CHECKS, context: { 'aws:cdk:bundling-stacks': [] } });
    const config = loadTeamConfig(team);
    const stack = new Stack(app, `branch-spawner-${team}`, config.account ? { env: { account: config.account, region: config.region } } : {});
    const bare = new BranchSpawner(stack, 'BranchSpawner', { config });
    const findings = new AwsSolutionsChecks()
      .validateScope(stack)
      .violations.flatMap((v) => v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath ?? '' })));
    const acks = nagAcknowledgements(bare).map((a) => ({ id: a.id, path: a.construct.node.path }));
    const covered = (f: { id: string; path: string }) => acks.some((a) => a.id === f.id && (f.path === a.path || f.path.startsWith(`${a.path}/`)));
    expect(findings.filter((f) => !covered(f))).toEqual([]);
    const used = (a: { id: string; path: string }) => findings.some((f) => a.id === f.id && (f.path === a.path || f.path.startsWith(`${a.path}/`)));
    expect(acks.filter((a) => !used(a))).toEqual([]);
  });
});

describe('the cdk-nag plugin', () => {
  it('fails synthesis on an unacknowledged finding (so a clean synth means something)', () => {
    const app = new App(WITHOUT_CFN_CHECKS);
    new sqs.Queue(new Stack(app, 'Bad'), 'PlainQueue');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });
});

/**
 * Builds the CDK app: `-c team=<name>` makes that team's stack, no team makes every team's stack
 * (`npm run synth`). cdk-nag's AwsSolutions pack and the deploy rules run on every synth.
 */
import { Validations, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BranchSpawnerStack } from './branch-spawner-stack';
import { DeployRulesPlugin } from './deploy-rules';
import { knownTeams, loadTeamConfig, stackNameFor, TEAMS_DIR } from '../functions/team-config';

export interface BuildAppOptions {
  teamsDir?: string;
  /** Run cdk-nag as a validation plugin (default true). */
  nag?: boolean;
}

export function buildApp(app: App, options: BuildAppOptions = {}): BranchSpawnerStack[] {
  // `-c teamsDir=<dir>` reads team configs from elsewhere (the deploy rehearsal's own team).
  const dir = options.teamsDir ?? (app.node.tryGetContext('teamsDir') as string | undefined) ?? TEAMS_DIR;
  const requested = app.node.tryGetContext('team') as string | undefined;
  const teams = requested ? [String(requested)] : knownTeams(dir);
  if (teams.length === 0) throw new Error(`no team configs in ${dir}`);
  const stacks = teams.map((team) => {
    const config = loadTeamConfig(team, dir);
    return new BranchSpawnerStack(app, stackNameFor(team), { config });
  });
  // Rules AWS enforces at deploy time that synth does not (infra/deploy-rules.ts): a violation fails the synth.
  Validations.of(app).addPlugins(new DeployRulesPlugin());
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stacks;
}

/**
 * Shared helpers of the infra tests: synthesize a team's stack (once per file) and read the
 * template by meaning (a function by its service name, a role's statements), never by logical id.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENVIRONMENT_VARIABLES } from '../../functions/lambda-environment';
import { BranchSpawnerStack } from '../../infra/branch-spawner-stack';
import { stackNameFor } from '../../functions/team-config';
import type { SpawnerFunctionName } from '../../infra/spawner-function';
import { loadTeamConfig, type TeamConfig } from '../../functions/team-config';

export interface Synthesized {
  app: App;
  stack: BranchSpawnerStack;
  template: Template;
  config: TeamConfig;
}

/**
 * CDK's own CloudFormation checks run on every synth by default, in a WASM engine that costs about
 * 8 s of CPU to start in each process and a second per template. Without the feature flag that
 * cdk.json sets, their findings are only printed, never failed on: the tests that assert them are
 * deploy-rules.test.ts ('at synth': no finding at all on the whole app) and the rehearsal's
 * `cdk synth` (cdk.json's flag: a finding fails it). Every other test app leaves them out.
 */
export const WITHOUT_CFN_CHECKS = { builtinCloudFormationValidation: false } as const;

/**
 * Synthesizes one team's stack. `bundle: false` skips esbuild (CDK's `aws:cdk:bundling-stacks`
 * context): only the Lambda code assets differ, so tests that are not about the code skip it.
 */
export function synthTeam(team: string, options: { bundle?: boolean; config?: Partial<TeamConfig> } = {}): Synthesized {
  const app = new App({
    ...WITHOUT_CFN_CHECKS,
    outdir: mkdtempSync(join(tmpdir(), `cdk-${team}-`)),
    context: options.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {},
  });
  const config = { ...loadTeamConfig(team), ...options.config };
  const stack = new BranchSpawnerStack(app, stackNameFor(team), { config });
  // Template.fromStack also checks the template for dependency cycles.
  const template = Template.fromStack(stack);
  return { app, stack, template, config };
}

export type Resource = { Type: string; Properties: Record<string, any>; [key: string]: any };

export function resourcesOf(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

/** The Lambda function whose POWERTOOLS_SERVICE_NAME is `name` (set by SpawnerFunction). */
export function functionOf(template: Template, name: SpawnerFunctionName): { id: string; props: Record<string, any> } {
  const found = resourcesOf(template, 'AWS::Lambda::Function').filter(
    ([, r]) => r.Properties.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === name,
  );
  if (found.length !== 1) throw new Error(`expected one ${name} function, found ${found.length}`);
  return { id: found[0][0], props: found[0][1].Properties };
}

/**
 * The step queues by what they are for: the start lane and the continue lane are the queues the
 * step-worker's environment names (STEP_QUEUE_URL, CONTINUE_QUEUE_URL); the step DLQ is where
 * the start lane redrives to.
 */
export function stepQueuesOf(template: Template): { start: string; continue: string; dlq: string } {
  const env = functionOf(template, 'step-worker').props.Environment.Variables;
  const start = env[ENVIRONMENT_VARIABLES.stepQueueUrl].Ref as string;
  const next = env[ENVIRONMENT_VARIABLES.continueQueueUrl].Ref as string;
  const redrive = (template.toJSON().Resources[start] as Resource).Properties.RedrivePolicy;
  return { start, continue: next, dlq: redrive.deadLetterTargetArn['Fn::GetAtt'][0] as string };
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, any>;
}

/** Every statement of the policies attached to a role (by the role's logical id). */
export function statementsOfRole(template: Template, roleId: string): Statement[] {
  const statements: Statement[] = [];
  for (const [, policy] of resourcesOf(template, 'AWS::IAM::Policy')) {
    const roles = (policy.Properties.Roles ?? []) as { Ref?: string }[];
    if (roles.some((r) => r.Ref === roleId)) statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  const role = template.toJSON().Resources[roleId] as Resource;
  for (const inline of role.Properties.Policies ?? []) statements.push(...inline.PolicyDocument.Statement);
  return statements;
}

export function roleIdOf(fn: { props: Record<string, any> }): string {
  return fn.props.Role['Fn::GetAtt'][0];
}

/**
 * A CloudFormation value as text: `Fn::Join` is joined, `Ref` becomes `${Id}`, `Fn::GetAtt`
 * becomes `${Id.Attr}`. Enough to compare ARNs built from pseudo-parameters and references.
 */
export function cfnText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const v = value as Record<string, any>;
    if ('Ref' in v) return `\${${v.Ref}}`;
    if ('Fn::GetAtt' in v) return `\${${v['Fn::GetAtt'].join('.')}}`;
    if ('Fn::Join' in v) return (v['Fn::Join'][1] as unknown[]).map(cfnText).join(v['Fn::Join'][0]);
    if ('Fn::Sub' in v) return String(v['Fn::Sub']);
  }
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

export function resourcesOfStatement(statement: Statement): string[] {
  const r = statement.Resource;
  return (Array.isArray(r) ? r : [r]).map(cfnText);
}

/** Statements as sorted "action1,action2 → resource1 | resource2" lines: easy to compare as a whole. */
export function statementLines(statements: Statement[]): string[] {
  return statements
    .map((s) => `${[...actionsOf(s)].sort().join(',')} → ${resourcesOfStatement(s).sort().join(' | ')}`)
    .sort();
}

// Long-running: started first (vitest.config.ts).
/**
 * Deploy-time rules (infra/deploy-rules.ts): both teams' templates pass them, each rule catches
 * its violation, and a violation fails the synth of the app (the validation plugin).
 */
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/build-app';
import { checkDeployRules, DeployRulesPlugin, environmentBytes, type CfnTemplate } from '../../infra/deploy-rules';
import { functionOf, resourcesOf, stepQueuesOf, synthTeam, WITHOUT_CFN_CHECKS } from './support';

const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

let research: CfnTemplate;
let platform: CfnTemplate;
let assetDirs: { research: string; platform: string };
let researchQueues: { dlq: string; dlqHandler: string; worker: string; workerMapping: string };

beforeAll(() => {
  const r = synthTeam('research', { bundle: false });
  const p = synthTeam('platform', { bundle: false });
  research = r.template.toJSON() as CfnTemplate;
  platform = p.template.toJSON() as CfnTemplate;
  assetDirs = { research: r.app.outdir, platform: p.app.outdir };
  dirs.push(r.app.outdir, p.app.outdir);
  const mappings = resourcesOf(r.template, 'AWS::Lambda::EventSourceMapping');
  const dlqHandler = functionOf(r.template, 'dlq-handler').id;
  const worker = functionOf(r.template, 'step-worker').id;
  const dlqMapping = mappings.find(([, m]) => m.Properties.FunctionName.Ref === dlqHandler)![1];
  researchQueues = {
    dlq: dlqMapping.Properties.EventSourceArn['Fn::GetAtt'][0],
    dlqHandler,
    worker,
    // The start lane's event source (the step-worker has one per lane).
    workerMapping: mappings.find(([, m]) => m.Properties.EventSourceArn['Fn::GetAtt'][0] === stepQueuesOf(r.template).start)![0],
  };
  // Two synths (no bundling): slow on a busy machine.
}, 300_000);

const clone = (t: CfnTemplate): CfnTemplate => structuredClone(t);

describe('deploy rules on the synthesized templates', () => {
  it('both teams pass every rule', () => {
    expect(checkDeployRules(research, { assetDir: assetDirs.research })).toEqual([]);
    expect(checkDeployRules(platform, { assetDir: assetDirs.platform })).toEqual([]);
  });

  it('the step DLQ covers the dlq-handler timeout (the deploy blocker is fixed)', () => {
    const dlq = research.Resources![researchQueues.dlq].Properties!;
    const handler = research.Resources![researchQueues.dlqHandler].Properties!;
    expect(dlq.VisibilityTimeout).toBeGreaterThanOrEqual(handler.Timeout);
  });

  it('a queue whose visibility is below its function timeout is named with the function', () => {
    const t = clone(research);
    delete t.Resources![researchQueues.dlq].Properties!.VisibilityTimeout;
    const violations = checkDeployRules(t);
    expect(violations).toEqual([
      {
        rule: 'event-source-visibility',
        resource: researchQueues.dlq,
        message: expect.stringContaining(`visibility timeout 30 s is less than the function timeout 60 s`),
      },
    ]);
    expect(violations[0].message).toContain(researchQueues.dlqHandler);
  });

  it('an environment over 4 KB is refused, counting deploy-time values too', () => {
    const t = clone(research);
    const vars = t.Resources![researchQueues.worker].Properties!.Environment.Variables;
    vars.AGENT_REGISTRY = 'x'.repeat(3900);
    const violations = checkDeployRules(t);
    expect(violations.map((v) => [v.rule, v.resource])).toEqual([['lambda-environment-size', researchQueues.worker]]);
    expect(violations[0].message).toMatch(/AGENT_REGISTRY \d+ B/);
    expect(environmentBytes({ A: { Ref: 'AWS::Region' } })).toBe(1 + 14);
    expect(environmentBytes({ A: { 'Fn::Join': ['', ['ab', { Ref: 'AWS::AccountId' }]] } })).toBe(1 + 2 + 12);
  });

  it('reserved concurrency below the event source maximum, or a maximum out of range, is refused', () => {
    const t = clone(research);
    // What both lanes' event sources may run at once: 10 + 5 for research.
    const lanes = Object.values(t.Resources!).filter(
      (r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties!.FunctionName.Ref === researchQueues.worker,
    );
    expect(lanes).toHaveLength(2);
    const wanted = lanes.reduce((sum, r) => sum + Number(r.Properties!.ScalingConfig.MaximumConcurrency), 0);
    expect(wanted).toBe(15);
    t.Resources![researchQueues.worker].Properties!.ReservedConcurrentExecutions = wanted - 1;
    expect(checkDeployRules(t).map((v) => [v.rule, v.resource])).toEqual([['event-source-concurrency', researchQueues.worker]]);
    t.Resources![researchQueues.worker].Properties!.ReservedConcurrentExecutions = wanted;
    expect(checkDeployRules(t)).toEqual([]);
    t.Resources![researchQueues.workerMapping].Properties!.ScalingConfig.MaximumConcurrency = 1;
    expect(checkDeployRules(t).map((v) => [v.rule, v.resource])).toEqual([['event-source-concurrency', researchQueues.workerMapping]]);
  });

  it('a batch over 10 SQS messages needs a batching window', () => {
    const t = clone(research);
    t.Resources![researchQueues.workerMapping].Properties!.BatchSize = 100;
    expect(checkDeployRules(t).map((v) => v.rule)).toEqual(['event-source-batching']);
    t.Resources![researchQueues.workerMapping].Properties!.MaximumBatchingWindowInSeconds = 1;
    expect(checkDeployRules(t)).toEqual([]);
  });

  it('an inline Map with MaxConcurrency over 40 is refused; a distributed one is not', () => {
    const t = clone(research);
    const [id, machine] = Object.entries(t.Resources!).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
    const definition = (mode: string) => ({
      StartAt: 'M',
      States: { M: { Type: 'Map', MaxConcurrency: 100, ItemProcessor: { ProcessorConfig: { Mode: mode }, StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }, End: true } },
    });
    delete machine.Properties!.DefinitionS3Location;
    machine.Properties!.DefinitionString = JSON.stringify(definition('INLINE'));
    expect(checkDeployRules(t)).toEqual([
      { rule: 'inline-map-concurrency', resource: id, message: expect.stringContaining('inline Map M has MaxConcurrency 100') },
    ]);
    machine.Properties!.DefinitionString = JSON.stringify(definition('DISTRIBUTED'));
    expect(checkDeployRules(t)).toEqual([]);
  });
});

describe('at synth', () => {
  it('the app synthesizes with no validation findings at all (no CDK visibility warning either)', { timeout: 300_000 }, () => {
    const outdir = tempDir('cdk-rules-');
    const app = new App({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
    buildApp(app, { nag: false });
    app.synth();
    // CDK writes a validation report whenever a plugin (its own CloudFormation checks, ours) finds anything.
    // The one test app that keeps CDK's CloudFormation checks (see WITHOUT_CFN_CHECKS in ./support).
    const report = join(outdir, 'validation-report.json');
    const violations = existsSync(report)
      ? (JSON.parse(readFileSync(report, 'utf8')).pluginReports as { violations: unknown[] }[]).flatMap((r) => r.violations)
      : [];
    expect(violations).toEqual([]);
  });

  it('a violation fails the synth, naming the rule and the resource', () => {
    const app = new App({ ...WITHOUT_CFN_CHECKS, outdir: tempDir('cdk-rules-bad-') });
    const stack = new Stack(app, 'Bad');
    const queue = new sqs.Queue(stack, 'Queue', { visibilityTimeout: Duration.seconds(10), enforceSSL: true });
    const fn = new lambda.Function(stack, 'Fn', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => {}'),
      timeout: Duration.seconds(20),
    });
    fn.addEventSource(new SqsEventSource(queue));
    Validations.of(app).addPlugins(new DeployRulesPlugin());
    const log = console.error;
    // Keep any copy of the (expected) report out of the test output.
    console.error = () => undefined;
    try {
      expect(() => app.synth()).toThrow(
        /ERROR queue Queue\w+ feeds function Fn\w+ .*visibility timeout 10 s is less than the function timeout 20 s[^]*event-source-visibility/,
      );
    } finally {
      console.error = log;
    }
  });
});

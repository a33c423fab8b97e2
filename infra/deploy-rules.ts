/**
 * Rules AWS enforces when it creates or runs the stack but `cdk synth` does not: checked on the
 * synthesized template, so a violation fails `npm run synth` (a validation plugin, see
 * build-app.ts) and the tests instead of a deploy.
 *
 * - An SQS event source's queue visibility timeout must be at least its function's timeout
 *   (CreateEventSourceMapping refuses it otherwise).
 * - A function's environment (keys and values) must fit in 4 KB (CreateFunction refuses it).
 *   Values CloudFormation fills in at deploy time (`Ref`, `Fn::GetAtt`) are counted at a
 *   generous length, so the check errs on the side of refusing.
 * - Concurrency: an SQS event source's MaximumConcurrency is 2..1000; a function with reserved
 *   concurrency gets no more than that (0 never runs), so the mappings' maximum must fit in it.
 * - An SQS event source with a BatchSize above 10 needs a batching window.
 * - An inline Map runs at most 40 iterations at once: a larger MaxConcurrency is not what runs.
 */
import type { IPolicyValidationContext, IPolicyValidationPlugin, PolicyValidationPluginReport } from 'aws-cdk-lib';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { jsonBytes } from '../core/bounded-value';

/** Lambda's limit on a function's environment variables, in bytes (keys and values). */
export const LAMBDA_ENVIRONMENT_BYTES = 4 * 1024;
/** AWS's cap on an inline Map state's concurrent iterations. */
export const INLINE_MAP_MAX_CONCURRENCY = 40;
/** SQS queue and Lambda function defaults when the property is absent. */
const DEFAULT_VISIBILITY_TIMEOUT = 30;
const DEFAULT_FUNCTION_TIMEOUT = 3;
/** Lengths assumed for values resolved at deploy time (generated names, URLs, ARNs). */
const DEPLOY_TIME_LENGTH = { ref: 160, getAtt: 256, sub: 64 };
const PSEUDO_LENGTH: Record<string, number> = {
  'AWS::AccountId': 12,
  'AWS::Region': 14,
  'AWS::Partition': 10,
  'AWS::URLSuffix': 13,
  'AWS::StackName': 128,
  'AWS::StackId': 160,
};

export type DeployRule =
  | 'event-source-visibility'
  | 'lambda-environment-size'
  | 'event-source-concurrency'
  | 'event-source-batching'
  | 'inline-map-concurrency';

export interface DeployRuleViolation {
  rule: DeployRule;
  /** Logical id of the resource to fix. */
  resource: string;
  message: string;
}

export interface CfnTemplate {
  Resources?: Record<string, { Type: string; Properties?: Record<string, any> }>;
}

export interface DeployRuleOptions {
  /** Folder of the template's assets (cdk.out): state machine definitions uploaded as files. */
  assetDir?: string;
}

export function checkDeployRules(template: CfnTemplate, options: DeployRuleOptions = {}): DeployRuleViolation[] {
  const resources = template.Resources ?? {};
  const violations: DeployRuleViolation[] = [];
  const functionId = (ref: unknown): string | undefined => {
    const v = ref as Record<string, any> | undefined;
    const id = v?.Ref ?? (Array.isArray(v?.['Fn::GetAtt']) ? v['Fn::GetAtt'][0] : undefined);
    return typeof id === 'string' && resources[id]?.Type === 'AWS::Lambda::Function' ? id : undefined;
  };
  const mappingsByFunction = new Map<string, [string, Record<string, any>][]>();

  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::EventSourceMapping') continue;
    const props = resource.Properties ?? {};
    const fn = functionId(props.FunctionName);
    const source = props.EventSourceArn?.['Fn::GetAtt'];
    const queueId = Array.isArray(source) && resources[source[0]]?.Type === 'AWS::SQS::Queue' ? (source[0] as string) : undefined;
    if (!fn || !queueId) continue;
    mappingsByFunction.set(fn, [...(mappingsByFunction.get(fn) ?? []), [id, props]]);
    const visibility = numberOr(resources[queueId].Properties?.VisibilityTimeout, DEFAULT_VISIBILITY_TIMEOUT);
    const timeout = numberOr(resources[fn].Properties?.Timeout, DEFAULT_FUNCTION_TIMEOUT);
    if (visibility < timeout) {
      violations.push({
        rule: 'event-source-visibility',
        resource: queueId,
        message:
          `queue ${queueId} feeds function ${fn} (event source ${id}): its visibility timeout ${visibility} s is less than ` +
          `the function timeout ${timeout} s; AWS refuses the event source mapping`,
      });
    }
    const batchSize = numberOr(props.BatchSize, 10);
    if (batchSize > 10 && numberOr(props.MaximumBatchingWindowInSeconds, 0) < 1) {
      violations.push({
        rule: 'event-source-batching',
        resource: id,
        message: `event source ${id}: BatchSize ${batchSize} above 10 needs MaximumBatchingWindowInSeconds ≥ 1`,
      });
    }
    const maximum = props.ScalingConfig?.MaximumConcurrency;
    if (maximum !== undefined && !(Number.isInteger(maximum) && maximum >= 2 && maximum <= 1000)) {
      violations.push({
        rule: 'event-source-concurrency',
        resource: id,
        message: `event source ${id}: ScalingConfig.MaximumConcurrency ${JSON.stringify(maximum)} must be an integer from 2 to 1000`,
      });
    }
  }

  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const props = resource.Properties ?? {};
    const variables = (props.Environment?.Variables ?? {}) as Record<string, unknown>;
    const bytes = environmentBytes(variables);
    if (bytes > LAMBDA_ENVIRONMENT_BYTES) {
      const largest = Object.entries(variables)
        .map(([k, v]) => [k, Buffer.byteLength(k) + estimatedLength(v)] as const)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([k, n]) => `${k} ${n} B`)
        .join(', ');
      violations.push({
        rule: 'lambda-environment-size',
        resource: id,
        message: `function ${id}: environment is about ${bytes} bytes (largest: ${largest}); Lambda allows ${LAMBDA_ENVIRONMENT_BYTES}`,
      });
    }
    const reserved = props.ReservedConcurrentExecutions;
    const mappings = mappingsByFunction.get(id) ?? [];
    if (typeof reserved === 'number' && mappings.length > 0) {
      const wanted = mappings.reduce((sum, [, m]) => sum + numberOr(m.ScalingConfig?.MaximumConcurrency, reserved), 0);
      if (reserved === 0 || wanted > reserved) {
        violations.push({
          rule: 'event-source-concurrency',
          resource: id,
          message:
            `function ${id}: reserved concurrency ${reserved} is below what its SQS event sources may run ` +
            `(${wanted}); messages would be throttled back to the queue and dead-lettered`,
        });
      }
    }
  }

  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const definition = stateMachineDefinition(resource.Properties ?? {}, options);
    if (!definition) continue;
    for (const [path, state] of mapStates(definition)) {
      const mode = state.ItemProcessor?.ProcessorConfig?.Mode ?? 'INLINE';
      if (mode !== 'INLINE') continue;
      const max = state.MaxConcurrency;
      if (typeof max === 'number' && max > INLINE_MAP_MAX_CONCURRENCY) {
        violations.push({
          rule: 'inline-map-concurrency',
          resource: id,
          message: `state machine ${id}: inline Map ${path} has MaxConcurrency ${max}; AWS runs at most ${INLINE_MAP_MAX_CONCURRENCY} inline iterations at once (dispatch wider fan-outs in batches: core/fan-out-plan.ts)`,
        });
      }
    }
  }
  return violations;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : fallback;
}

/** Bytes of a function's environment once deployed (deploy-time values at a generous length). */
export function environmentBytes(variables: Record<string, unknown>): number {
  return Object.entries(variables).reduce((sum, [key, value]) => sum + Buffer.byteLength(key) + estimatedLength(value), 0);
}

function estimatedLength(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value).length;
  if (!value || typeof value !== 'object') return 0;
  const v = value as Record<string, any>;
  if (typeof v.Ref === 'string') return PSEUDO_LENGTH[v.Ref] ?? DEPLOY_TIME_LENGTH.ref;
  if ('Fn::GetAtt' in v) return DEPLOY_TIME_LENGTH.getAtt;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.reduce<number>((sum, p) => sum + estimatedLength(p), 0) + Buffer.byteLength(sep) * Math.max(0, parts.length - 1);
  }
  if ('Fn::Sub' in v) {
    const text = Array.isArray(v['Fn::Sub']) ? String(v['Fn::Sub'][0]) : String(v['Fn::Sub']);
    return text.replace(/\$\{([^}]+)\}/g, (_m, name: string) => 'x'.repeat(PSEUDO_LENGTH[name] ?? DEPLOY_TIME_LENGTH.sub)).length;
  }
  return jsonBytes(value);
}

/** The state machine's definition: inline (DefinitionString/Definition) or the uploaded asset file. */
export function stateMachineDefinition(props: Record<string, any>, options: DeployRuleOptions): Record<string, any> | undefined {
  if (props.Definition && typeof props.Definition === 'object') return props.Definition;
  const raw = props.DefinitionString;
  let text: string | undefined;
  if (typeof raw === 'string') text = raw;
  else if (raw?.['Fn::Join']) {
    // Only the structure matters here: deploy-time parts become placeholders.
    const [sep, parts] = raw['Fn::Join'] as [string, unknown[]];
    text = parts.map((p) => (typeof p === 'string' ? p : 'deploy-time')).join(sep);
  }
  const key = props.DefinitionS3Location?.Key;
  if (!text && typeof key === 'string' && options.assetDir) {
    const file = join(options.assetDir, `asset.${key}`);
    if (existsSync(file)) text = readFileSync(file, 'utf8');
  }
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Record<string, any>;
  } catch {
    return undefined;
  }
}

/** Every Map state of a definition (nested ones too), with a readable path. */
function mapStates(definition: Record<string, any>, prefix = ''): [string, Record<string, any>][] {
  const found: [string, Record<string, any>][] = [];
  for (const [name, state] of Object.entries((definition.States ?? {}) as Record<string, Record<string, any>>)) {
    const path = prefix ? `${prefix}/${name}` : name;
    if (state.Type === 'Map') {
      found.push([path, state]);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) found.push(...mapStates(processor, path));
    }
    if (state.Type === 'Parallel') {
      (state.Branches ?? []).forEach((b: Record<string, any>, i: number) => found.push(...mapStates(b, `${path}[${i}]`)));
    }
  }
  return found;
}

/** Runs checkDeployRules on every template of the app at synth; any violation fails the synth. */
export class DeployRulesPlugin implements IPolicyValidationPlugin {
  readonly name = 'branch-spawner deploy rules';
  readonly version = '1.0.0';
  readonly ruleIds: DeployRule[] = [
    'event-source-visibility',
    'lambda-environment-size',
    'event-source-concurrency',
    'event-source-batching',
    'inline-map-concurrency',
  ];

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    const violations = context.templatePaths.flatMap((templatePath) => {
      const template = JSON.parse(readFileSync(templatePath, 'utf8')) as CfnTemplate;
      return checkDeployRules(template, { assetDir: dirname(templatePath) }).map((v) => ({
        ruleName: v.rule,
        description: v.message,
        severity: 'error',
        violatingResources: [{ resourceLogicalId: v.resource, templatePath, locations: ['Properties'] }],
      }));
    });
    return { success: violations.length === 0, violations };
  }
}

/**
 * The synthesized template, read the way CloudFormation would create it: resources by type,
 * physical names for the ones CloudFormation names, and intrinsic functions (Ref, Fn::GetAtt,
 * Fn::Join, Fn::Sub, Fn::Select, Fn::Split) resolved to the local resources' names, URLs and ARNs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type CfnResource = { Type: string; Properties?: Record<string, any>; [key: string]: any };

export interface StackEnvironment {
  region: string;
  account: string;
  partition: string;
}

/** Values CloudFormation would give a resource: what `Ref` returns and its attributes. */
export interface PhysicalResource {
  ref: string;
  attributes: Record<string, string>;
}

export class RehearsalTemplate {
  readonly resources: Record<string, CfnResource>;
  private readonly physical = new Map<string, PhysicalResource>();

  constructor(
    readonly stackName: string,
    readonly template: { Resources: Record<string, CfnResource>; [key: string]: any },
    readonly assemblyDir: string,
    readonly env: StackEnvironment,
  ) {
    this.resources = template.Resources;
  }

  static load(assemblyDir: string, stackName: string, env: StackEnvironment): RehearsalTemplate {
    const template = JSON.parse(readFileSync(join(assemblyDir, `${stackName}.template.json`), 'utf8'));
    return new RehearsalTemplate(stackName, template, assemblyDir, env);
  }

  ofType(type: string): [string, CfnResource][] {
    return Object.entries(this.resources).filter(([, r]) => r.Type === type);
  }

  /** A name CloudFormation would generate (stack name, logical id; no random suffix here). */
  generatedName(logicalId: string, max = 64): string {
    return `${this.stackName}-${logicalId}`.slice(0, max);
  }

  setPhysical(logicalId: string, value: PhysicalResource): void {
    this.physical.set(logicalId, value);
  }

  physicalOf(logicalId: string): PhysicalResource {
    const found = this.physical.get(logicalId);
    if (found) return found;
    // Resources the rehearsal does not create still have a Ref (their logical id) and an ARN-ish value.
    return { ref: logicalId, attributes: { Arn: `arn:${this.env.partition}:cloudformation:${this.env.region}:${this.env.account}:${logicalId}` } };
  }

  /** The logical id of the queue created with this ARN. */
  queueIdOfArn(arn: string): string | undefined {
    return this.ofType('AWS::SQS::Queue').find(([id]) => this.physicalOf(id).attributes.Arn === arn)?.[0];
  }

  /** The URL of the queue created with this ARN. */
  queueUrlOfArn(arn: string): string | undefined {
    const id = this.queueIdOfArn(arn);
    return id ? this.physicalOf(id).ref : undefined;
  }

  arn(service: string, resource: string, options: { region?: string; account?: string } = {}): string {
    const { partition, region, account } = this.env;
    return `arn:${partition}:${service}:${options.region ?? region}:${options.account ?? account}:${resource}`;
  }

  /** Resolves a template value to plain JSON (intrinsics replaced). */
  resolve(value: unknown): any {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (!value || typeof value !== 'object') return value;
    const v = value as Record<string, any>;
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const [key] = keys;
      const arg = v[key];
      switch (key) {
        case 'Ref':
          return this.ref(arg);
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
          return this.getAtt(id, attr);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).map(String).join(sep);
        }
        case 'Fn::Sub': {
          const [text, vars] = Array.isArray(arg) ? arg : [arg, {}];
          const resolvedVars = this.resolve(vars) as Record<string, string>;
          return String(text).replace(/\$\{([^}!]+)\}/g, (_m, name: string) => {
            if (name in resolvedVars) return String(resolvedVars[name]);
            if (name.includes('.')) {
              const [id, attr] = name.split('.');
              return this.getAtt(id, attr);
            }
            return this.ref(name);
          });
        }
        case 'Fn::Select': {
          const [index, list] = arg as [unknown, unknown];
          return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
        }
        case 'Fn::Split': {
          const [sep, text] = arg as [string, unknown];
          return String(this.resolve(text)).split(sep);
        }
        case 'Fn::GetAZs':
          return [`${this.env.region}a`, `${this.env.region}b`, `${this.env.region}c`];
        default:
          break;
      }
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.resolve(x)]));
  }

  private ref(name: string): string {
    switch (name) {
      case 'AWS::Region':
        return this.env.region;
      case 'AWS::AccountId':
        return this.env.account;
      case 'AWS::Partition':
        return this.env.partition;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return this.stackName;
      case 'AWS::StackId':
        return this.arn('cloudformation', `stack/${this.stackName}/rehearsal`);
      case 'AWS::NoValue':
        return '';
      default:
        return this.physicalOf(name).ref;
    }
  }

  private getAtt(id: string, attr: string): string {
    const found = this.physicalOf(id).attributes[attr];
    if (found === undefined) throw new Error(`rehearsal: ${id}.${attr} is not known (Fn::GetAtt)`);
    return found;
  }
}

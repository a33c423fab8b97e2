/**
 * The stack as CloudFormation describes it: its outputs resolved to the rehearsal's resources
 * (some set by the rehearsal: the API's URL is the local gateway's), and DescribeStacks as a
 * caller from outside the stack calls it (`--stack <team>`), authorized against its policy.
 */
import type { RehearsalAccess } from './access';
import { ServiceError, type Caller, type StackDescription } from './aws-endpoint';
import type { RehearsalTemplate } from './template';

export type StackOutput = StackDescription['Outputs'][number];

export class RehearsalCloudFormation {
  private readonly outputOverrides = new Map<string, string | undefined>();
  private readonly createdAt = new Date();

  constructor(
    private readonly template: RehearsalTemplate,
    private readonly access: RehearsalAccess,
  ) {}

  /** Sets an output's value as the rehearsal has it; undefined: the stack has no such output. */
  setOutput(key: string, value: string | undefined): void {
    this.outputOverrides.set(key, value);
  }

  /** The stack's outputs as DescribeStacks gives them, resolved to the rehearsal's resources. */
  outputs(): StackOutput[] {
    const outputs = (this.template.template.Outputs ?? {}) as Record<string, { Value: unknown; Description?: string }>;
    return Object.entries(outputs).flatMap(([key, o]) => {
      const value = this.outputOverrides.has(key) ? this.outputOverrides.get(key) : String(this.template.resolve(o.Value));
      return value === undefined ? [] : [{ OutputKey: key, OutputValue: value, ...(o.Description ? { Description: o.Description } : {}) }];
    });
  }

  /** DescribeStacks on this stack (by name or ARN; no name: every stack, i.e. this one). */
  describeStacks(caller: Caller, stackName: string | undefined): StackDescription[] {
    const t = this.template;
    const stackId = t.arn('cloudformation', `stack/${t.stackName}/rehearsal`);
    const other = stackName && stackName !== t.stackName && stackName !== stackId;
    this.access.authorize(caller, 'cloudformation:DescribeStacks', other ? t.arn('cloudformation', `stack/${stackName}/*`) : stackId);
    if (other) throw new ServiceError('ValidationError', `Stack with id ${stackName} does not exist`);
    return [{ StackName: t.stackName, StackId: stackId, StackStatus: 'CREATE_COMPLETE', CreationTime: this.createdAt, Outputs: this.outputs() }];
  }
}

/**
 * Who may do what in the rehearsed account: the callers the endpoint knows by their access key id
 * (a function with its role, or an IAM user from outside the stack with its identity policy), each
 * role's identity policies (iam.ts), the functions' resource policies (AWS::Lambda::Permission),
 * and every denial, recorded and told to its listeners as it happens.
 */
import { ServiceError, type Caller } from './aws-endpoint';
import type { HostedFunction } from './function-host';
import { AccessDeniedError, evaluate, roleStatements, type PolicyStatement } from './iam';
import type { RehearsalTemplate } from './template';

export class RehearsalAccess {
  readonly denials: AccessDeniedError[] = [];
  private readonly callers = new Map<string, Caller>();
  private readonly statements = new Map<string, PolicyStatement[]>();
  private readonly deniedListeners = new Set<(denial: AccessDeniedError) => void>();

  constructor(private readonly template: RehearsalTemplate) {}

  /** A caller the endpoint knows by the access key id its requests are signed with. */
  addCaller(accessKeyId: string, caller: Caller): void {
    this.callers.set(accessKeyId, caller);
  }

  callerOf(accessKeyId: string | undefined): Caller | undefined {
    return accessKeyId ? this.callers.get(accessKeyId) : undefined;
  }

  /** A caller from outside the stack: its access key id and its identity policy, as an IAM user's. */
  addOutsideCaller(caller: { arn: string; accessKeyId: string; statements: PolicyStatement[] }): void {
    const policy = `outside:${caller.arn}`;
    this.statements.set(policy, caller.statements);
    this.addCaller(caller.accessKeyId, { principal: caller.arn, roleLogicalId: policy });
  }

  /** Throws ServiceError('AccessDeniedException') unless the caller's role allows the action on the resource; a denial is recorded. */
  authorize(caller: Caller, action: string, resource: string): void {
    const decision = evaluate(this.statementsOf(caller.roleLogicalId), action, resource);
    if (decision.allowed) return;
    const reason = `${decision.reason === 'explicit deny' ? 'an explicit deny' : 'no allow'} in the policies of its role ${caller.roleLogicalId}`;
    const denial = new AccessDeniedError(caller.principal, action, resource, reason);
    this.deny(denial);
    throw new ServiceError('AccessDeniedException', denial.message);
  }

  deny(denial: AccessDeniedError): void {
    this.denials.push(denial);
    for (const listener of this.deniedListeners) listener(denial);
  }

  onDenied(listener: (denial: AccessDeniedError) => void): () => void {
    this.deniedListeners.add(listener);
    return () => this.deniedListeners.delete(listener);
  }

  statementsOf(roleLogicalId: string): PolicyStatement[] {
    let statements = this.statements.get(roleLogicalId);
    if (!statements) {
      statements = roleStatements(this.template, roleLogicalId);
      this.statements.set(roleLogicalId, statements);
    }
    return statements;
  }

  /** Replaces a role's statements (tests take a permission away, then give it back). */
  setRoleStatements(roleLogicalId: string, statements: PolicyStatement[]): void {
    this.statements.set(roleLogicalId, statements);
  }

  /** Whether a function's resource policy (AWS::Lambda::Permission) lets a service invoke it from sourceArn. */
  permits(fn: HostedFunction, principal: string, sourceArn: string): boolean {
    return this.template.ofType('AWS::Lambda::Permission').some(([, r]) => {
      const p = this.template.resolve(r.Properties ?? {}) as Record<string, string>;
      const target = String(p.FunctionName);
      if (target !== fn.arn && target !== fn.name) return false;
      if (p.Principal !== principal || !/^lambda:InvokeFunction$/i.test(String(p.Action))) return false;
      return p.SourceArn === undefined || evaluate([{ Effect: 'Allow', Action: '*', Resource: p.SourceArn }], 'x', sourceArn).allowed;
    });
  }

  /** Records that a service's invocation of a function was refused by the function's resource policy. */
  denyInvocation(principal: string, fn: HostedFunction): void {
    this.deny(new AccessDeniedError(principal, 'lambda:InvokeFunction', fn.arn, "no statement of the function's resource policy allows it"));
  }
}

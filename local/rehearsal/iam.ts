/**
 * IAM for the rehearsal: each role's identity policies from the template (AWS::IAM::Policy
 * attached to the role, and the role's inline Policies), evaluated as AWS evaluates identity
 * policies: an explicit Deny wins, then any Allow whose Action and Resource match (with `*` and
 * `?` wildcards; actions case-insensitive), else denied. Conditions are not evaluated (a
 * statement with a Condition is taken as if its condition held) — see docs/deploy.md.
 */
import type { RehearsalTemplate } from './template';

export interface PolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: unknown;
}

export type Decision = { allowed: true } | { allowed: false; reason: 'explicit deny' | 'no allow' };

/** Raised (and recorded) when a function calls something its role does not allow. */
export class AccessDeniedError extends Error {
  constructor(
    readonly principal: string,
    readonly action: string,
    readonly resource: string,
    reason: string,
  ) {
    super(`AccessDenied: ${principal} is not authorized to perform ${action} on ${resource} (${reason})`);
    this.name = 'AccessDeniedException';
  }
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Compiled once per pattern: every AWS call of every function is authorized. */
const compiled = new Map<string, RegExp>();

function wildcard(pattern: string, flags = ''): RegExp {
  const key = `${flags}:${pattern}`;
  let regex = compiled.get(key);
  if (!regex) {
    const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    regex = new RegExp(`^${escaped}$`, flags);
    compiled.set(key, regex);
  }
  return regex;
}

const matchesAny = (patterns: string[], value: string, flags = '') => patterns.some((p) => wildcard(p, flags).test(value));

function applies(s: PolicyStatement, action: string, resource: string): boolean {
  const actionOk = s.NotAction !== undefined ? !matchesAny(list(s.NotAction), action, 'i') : matchesAny(list(s.Action), action, 'i');
  if (!actionOk) return false;
  return s.NotResource !== undefined ? !matchesAny(list(s.NotResource), resource) : matchesAny(list(s.Resource), resource);
}

export function evaluate(statements: PolicyStatement[], action: string, resource: string): Decision {
  if (statements.some((s) => s.Effect === 'Deny' && applies(s, action, resource))) return { allowed: false, reason: 'explicit deny' };
  if (statements.some((s) => s.Effect === 'Allow' && applies(s, action, resource))) return { allowed: true };
  return { allowed: false, reason: 'no allow' };
}

/** Every identity-policy statement of a role, resolved to local ARNs. */
export function roleStatements(template: RehearsalTemplate, roleLogicalId: string): PolicyStatement[] {
  const statements: PolicyStatement[] = [];
  const all = (document: { Statement?: PolicyStatement | PolicyStatement[] }): PolicyStatement[] =>
    document.Statement === undefined ? [] : Array.isArray(document.Statement) ? document.Statement : [document.Statement];
  for (const [, policy] of template.ofType('AWS::IAM::Policy')) {
    const roles = (policy.Properties?.Roles ?? []) as { Ref?: string }[];
    if (roles.some((r) => r.Ref === roleLogicalId)) statements.push(...all(template.resolve(policy.Properties!.PolicyDocument)));
  }
  const role = template.resources[roleLogicalId];
  for (const inline of role?.Properties?.Policies ?? []) statements.push(...all(template.resolve(inline.PolicyDocument)));
  return statements;
}

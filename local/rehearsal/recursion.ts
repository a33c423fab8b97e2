/**
 * Lambda's recursive loop detection, as the rehearsal models it. Lambda gives every invocation a
 * trace header (`_X_AMZN_TRACE_ID`) that carries, per function, how many invocations of it the
 * chain has made (its lineage). The AWS SDK in the function copies that header onto each request
 * it sends (its recursion detection middleware); SQS keeps it with the message (the
 * `AWSTraceHeader` system attribute), and the event source mapping invokes the function with it,
 * one more invocation of that function. Past AWS_QUOTAS.recursiveLoopMaxInvocations, Lambda does
 * not invoke the function: the message goes to the queue's dead-letter queue (or is dropped),
 * unless the function's RecursiveLoop is Allow.
 *
 * The header's form here is the rehearsal's own (`Root=…;Parent=…;Sampled=0;Lineage=<fn>:<n>|…`);
 * what matters is that it only travels where the deployed code propagates it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AWS_QUOTAS } from './aws-quotas';

/**
 * The message attribute the rehearsal's SQS endpoint keeps a send's trace header in (fauxqs has
 * no AWSTraceHeader); the event source mapping moves it back to the record's attributes.
 */
export const TRACE_HEADER_ATTRIBUTE = 'rehearsal.AWSTraceHeader';

export type RecursiveLoop = 'Allow' | 'Terminate';

/** A fresh header: a new chain (an invocation from API Gateway, EventBridge or Step Functions). */
export function newTraceHeader(): string {
  const hex = (bytes: number) => randomBytes(bytes).toString('hex');
  return `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${hex(12)};Parent=${hex(8)};Sampled=0`;
}

function lineageKey(functionArn: string): string {
  return createHash('sha256').update(functionArn).digest('hex').slice(0, 8);
}

function parse(header: string): { fields: Map<string, string>; lineage: Map<string, number> } {
  const fields = new Map<string, string>();
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const lineage = new Map<string, number>();
  for (const entry of (fields.get('Lineage') ?? '').split('|')) {
    const [key, count] = entry.split(':');
    if (key && Number.isInteger(Number(count))) lineage.set(key, Number(count));
  }
  return { fields, lineage };
}

export type Hop = { stopped: false; header: string; invocations: number } | { stopped: true; invocations: number };

/**
 * What Lambda does with a record that carries `header` (undefined: none) for the function:
 * invoke it with the header of one more invocation along the chain, or stop it.
 */
export function nextHop(header: string | undefined, functionArn: string, recursiveLoop: RecursiveLoop): Hop {
  const { fields, lineage } = parse(header ?? newTraceHeader());
  const key = lineageKey(functionArn);
  const invocations = (lineage.get(key) ?? 0) + 1;
  if (invocations > AWS_QUOTAS.recursiveLoopMaxInvocations && recursiveLoop !== 'Allow') return { stopped: true, invocations };
  lineage.set(key, invocations);
  fields.set('Parent', randomBytes(8).toString('hex'));
  fields.set('Lineage', [...lineage].map(([k, n]) => `${k}:${n}`).join('|'));
  return { stopped: false, header: [...fields].map(([k, v]) => `${k}=${v}`).join(';'), invocations };
}

/**
 * Lambda's asynchronous invocation (what an EventBridge rule's Lambda target gets): the event
 * refused past the async payload limit, the function's retries (EventInvokeConfig's
 * MaximumRetryAttempts, 2 by default), then its dead-letter queue, sent to with the function's role.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { jsonBytes } from '../../core/bounded-value';
import type { RehearsalAccess } from './access';
import { AWS_QUOTAS } from './aws-quotas';
import type { FunctionHost } from './function-host';
import { RehearsalError } from './rehearsal-error';
import type { RehearsalTemplate } from './template';

export interface AsyncInvocationContext {
  template: RehearsalTemplate;
  access: RehearsalAccess;
  sqs: SQSClient;
  /** The stack is closing: no more attempts, nothing dead-lettered. */
  stopped(): boolean;
  onError(error: unknown): void;
}

/** `source` names the invoker in errors (e.g. `rule <name>`). Resolves once the event is handled, dead-lettered or dropped. */
export async function invokeAsynchronously(ctx: AsyncInvocationContext, host: FunctionHost, event: unknown, source: string): Promise<void> {
  const t = ctx.template;
  const config = t
    .ofType('AWS::Lambda::EventInvokeConfig')
    .map(([, r]) => t.resolve(r.Properties ?? {}) as Record<string, any>)
    .find((p) => p.FunctionName === host.fn.name || p.FunctionName === host.fn.arn);
  const attempts = 1 + Number(config?.MaximumRetryAttempts ?? 2);
  if (jsonBytes(event) > AWS_QUOTAS.lambdaAsyncEventBytes) {
    ctx.onError(new RehearsalError(`${source}: the event is over Lambda's asynchronous invocation limit (${AWS_QUOTAS.lambdaAsyncEventBytes} bytes)`));
    return;
  }
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts && !ctx.stopped(); attempt++) {
    try {
      await host.invoke(event);
      return;
    } catch (error) {
      lastError = error;
    }
  }
  ctx.onError(lastError);
  const fnProps = t.resources[host.fn.logicalId].Properties ?? {};
  const dlq = fnProps.DeadLetterConfig?.TargetArn ? String(t.resolve(fnProps.DeadLetterConfig.TargetArn)) : undefined;
  if (!dlq || ctx.stopped()) return;
  // Lambda sends to the dead-letter queue with the function's role.
  try {
    ctx.access.authorize({ principal: host.fn.name, roleLogicalId: host.fn.roleLogicalId }, 'sqs:SendMessage', dlq);
  } catch {
    return;
  }
  const queueUrl = t.queueUrlOfArn(dlq);
  if (queueUrl) await ctx.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(event) }));
}

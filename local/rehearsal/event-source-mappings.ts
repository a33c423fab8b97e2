/**
 * The template's SQS event source mappings, as the Lambda service's pollers run them (BatchSize,
 * ReportBatchItemFailures, MaximumConcurrency, Enabled), over the one emulation of Lambda's SQS
 * event source (local/sqs/event-source.ts). What is the rehearsal's own: each poll and delete is
 * authorized against the function's role; a received batch stays invisible on the queue clock
 * while its invocation runs (queue-clock.ts); Lambda's recursive loop detection stops a chain
 * of invocations (recursion.ts); a throttled invocation is recorded, its batch comes back.
 */
import { GetQueueAttributesCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { deliver, poll } from '../sqs/event-source';
import { SqsQueueConsumer } from '../sqs/queue-consumer';
import { ServiceError, type Caller } from './aws-endpoint';
import { FunctionError, THROTTLED, type FunctionHost } from './function-host';
import type { QueueClock } from './queue-clock';
import { nextHop, TRACE_HEADER_ATTRIBUTE, type RecursiveLoop } from './recursion';
import { RehearsalError } from './rehearsal-error';
import type { RehearsalTemplate } from './template';

/** A batch an SQS event source mapping received and handed to its function. */
export interface QueueDelivery {
  /** Logical ids in the template: the queue and the function. */
  queueId: string;
  functionId: string;
  records: SQSRecord[];
}

/** What the mappings need of the rehearsed stack, and what they tell it. */
export interface MappingContext {
  template: RehearsalTemplate;
  sqs: SQSClient;
  functions: FunctionHost[];
  queueClock: QueueClock;
  authorize(caller: Caller, action: string, resource: string): void;
  stopped(): boolean;
  onError(error: unknown): void;
  onThrottle(throttle: { functionName: string; caller: string }): void;
  onRecursionStop(stop: { functionName: string; messageId: string; invocations: number }): void;
  onDelivery(delivery: QueueDelivery): void;
}

interface Mapping {
  id: string;
  fn: FunctionHost;
  /** The queue's logical id in the template. */
  queueId: string;
  queueUrl: string;
  queueArn: string;
  batchSize: number;
  reportFailures: boolean;
  concurrency: number;
}

/** Starts the pollers of every enabled SQS mapping of the template; they end once `stopped()`. */
export function startEventSourceMappings(ctx: MappingContext): Promise<void>[] {
  const t = ctx.template;
  const pollers: Promise<void>[] = [];
  for (const [id, r] of t.ofType('AWS::Lambda::EventSourceMapping')) {
    const p = t.resolve(r.Properties ?? {}) as Record<string, any>;
    const arn = String(p.EventSourceArn);
    if (!arn.includes(':sqs:')) continue;
    const fnName = String(p.FunctionName);
    const host = ctx.functions.find((f) => f.fn.name === fnName || f.fn.arn === fnName);
    const queueId = t.queueIdOfArn(arn);
    if (!host || !queueId) throw new RehearsalError(`event source ${id}: function ${fnName} or queue ${arn} not in the template`);
    if (p.Enabled === false) continue;
    const maximum = Number(p.ScalingConfig?.MaximumConcurrency ?? 1000);
    const mapping: Mapping = {
      id,
      fn: host,
      queueId,
      queueUrl: t.physicalOf(queueId).ref,
      queueArn: arn,
      batchSize: Math.min(Number(p.BatchSize ?? 10), 10),
      reportFailures: ((p.FunctionResponseTypes ?? []) as string[]).includes('ReportBatchItemFailures'),
      concurrency: Math.max(1, Math.min(maximum, host.fn.maxContainers)),
    };
    for (let i = 0; i < mapping.concurrency; i++) pollers.push(runMapping(ctx, mapping));
  }
  return pollers;
}

async function runMapping(ctx: MappingContext, mapping: Mapping): Promise<void> {
  const consumer = new SqsQueueConsumer({ client: ctx.sqs, queueUrl: mapping.queueUrl, queueArn: mapping.queueArn });
  const role = { principal: `${mapping.fn.fn.name} (event source mapping)`, roleLogicalId: mapping.fn.fn.roleLogicalId };
  const reportUnlessStopped = (error: unknown) => void (ctx.stopped() || ctx.onError(error));
  // The queue's visibility, on the queue clock: how long a received message stays invisible.
  const attributes = await ctx.sqs.send(new GetQueueAttributesCommand({ QueueUrl: mapping.queueUrl, AttributeNames: ['VisibilityTimeout'] }));
  const visibilitySeconds = Number(attributes.Attributes?.VisibilityTimeout ?? 30);
  await poll({
    stopped: ctx.stopped,
    receive: () => {
      // The event source mapping polls with the function's role.
      ctx.authorize(role, 'sqs:ReceiveMessage', mapping.queueArn);
      return consumer.receive({ max: mapping.batchSize, waitSeconds: 1 });
    },
    onReceiveError: (error) => {
      ctx.onError(error);
      // A denied poll would repeat forever: the mapping is disabled, as AWS does after failures.
      return !(error instanceof ServiceError);
    },
    handle: async (received) => {
      // Lambda's recursive loop detection (recursion.ts): each record one more invocation of its chain,
      // under the function's setting as it is now.
      const recursiveLoop = (ctx.template.resources[mapping.fn.fn.logicalId].Properties?.RecursiveLoop ?? 'Terminate') as RecursiveLoop;
      const hops = received.map((record) => {
        const kept = record.messageAttributes[TRACE_HEADER_ATTRIBUTE];
        delete record.messageAttributes[TRACE_HEADER_ATTRIBUTE];
        if (kept?.stringValue) record.attributes.AWSTraceHeader = kept.stringValue;
        return nextHop(kept?.stringValue, mapping.fn.fn.arn, recursiveLoop);
      });
      const loops = received.filter((_, i) => hops[i].stopped);
      if (loops.length) await stopRecursion(ctx, mapping, consumer, loops, hops.find((h) => h.stopped)!.invocations);
      const records = received.filter((_, i) => !hops[i].stopped);
      const hop = hops.find((h) => !h.stopped);
      if (records.length === 0 || !hop || ctx.stopped()) return;
      ctx.onDelivery({ queueId: mapping.queueId, functionId: mapping.fn.fn.logicalId, records });
      await deliver({
        records,
        // The batch runs with the first record's chain (Lambda gives an invocation one trace header).
        invoke: (event) => mapping.fn.invoke(event, { traceHeader: hop.header }),
        reportFailures: mapping.reportFailures,
        onInvokeError: (error) => {
          // A throttle is Lambda's answer, not a failure of the rehearsal: the batch comes back all the same.
          if (error instanceof FunctionError && error.name === THROTTLED) ctx.onThrottle({ functionName: error.functionName, caller: mapping.id });
          else ctx.onError(error);
        },
        // Invisible while the invocation runs, as the function's timeout within the visibility makes it in AWS;
        // a failed record then comes back when its visibility ends (the queue's timeout on the queue
        // clock, or the backoff its function set).
        hold: ctx.queueClock.hold(
          records.map((r) => r.receiptHandle),
          visibilitySeconds,
          (handle, seconds) => consumer.changeVisibility(handle, seconds),
          reportUnlessStopped,
        ),
        delete: async (handles) => {
          ctx.authorize(role, 'sqs:DeleteMessage', mapping.queueArn);
          await consumer.delete(handles);
        },
        onDeleteError: reportUnlessStopped,
      });
    },
  });
}

/**
 * Lambda stopped these records (a recursive loop): not invoked, they go to the queue's
 * dead-letter queue, or are dropped without one.
 */
async function stopRecursion(ctx: MappingContext, mapping: Mapping, consumer: SqsQueueConsumer, records: SQSRecord[], invocations: number): Promise<void> {
  const t = ctx.template;
  const redrive = t.resources[mapping.queueId].Properties?.RedrivePolicy;
  const dlqUrl = redrive ? t.queueUrlOfArn(String((t.resolve(redrive) as { deadLetterTargetArn: string }).deadLetterTargetArn)) : undefined;
  for (const record of records) {
    ctx.onRecursionStop({ functionName: mapping.fn.fn.name, messageId: record.messageId, invocations });
    try {
      if (dlqUrl) {
        const attributes = Object.fromEntries(
          Object.entries(record.messageAttributes).map(([name, a]) => [name, { DataType: a.dataType, StringValue: a.stringValue }]),
        );
        await ctx.sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: record.body, MessageAttributes: attributes }));
      }
      await consumer.delete([record.receiptHandle]);
    } catch (error) {
      if (!ctx.stopped()) ctx.onError(error);
    }
  }
}

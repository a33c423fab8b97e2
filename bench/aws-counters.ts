/**
 * Counts the AWS requests the real code path makes, by service, on the embedded engines:
 * - DynamoDB and SQS: SDK middleware on the engines' clients (every command the store, the
 *   queue, the consumer and the local fan-out send). DynamoDB requests ask for
 *   ReturnConsumedCapacity so the engine reports the request units it would bill.
 * - Step Functions: no SDK calls locally; states entered are counted from the local engine's
 *   own event log (aws-local-stepfunctions), which is what Standard bills as transitions.
 * - EventBridge: lifecycle events published (one PutEvents entry each, 10 per request).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { StateMachine } from 'aws-local-stepfunctions';
import { FAN_OUT_STATES } from '../adapters/stepfunctions/fan-out-definition';
import { fanOutTransitions, planFanOut } from '../core/fan-out-plan';
import type { LifecycleEvent } from '../core/events';
import type { EventPublisher } from '../core/ports';

export interface DynamoCounts {
  /** Requests by operation (GetItem, UpdateItem, ...). */
  requests: Record<string, number>;
  readRequests: number;
  writeRequests: number;
  /** Items read by BatchGetItem (each item is billed on its own). */
  batchItems: number;
  /** Read request units the engine reported (strongly consistent: 4 KB each). */
  rru: number;
  /** Write request units for the table (1 KB each, the larger of old and new item). */
  wru: number;
  /** Write request units for GSI1 (projection ALL: every write to a child branch item is replicated). */
  gsiWru: number;
  /** Conditional writes refused (billed at least 1 WRU each, counted in wru). */
  conditionalFailures: number;
  /** HTTP attempts (differs from requests only when the SDK retried). */
  attempts: number;
  /** Wall ms per operation, summed (client side: SDK + HTTP + engine + event-loop wait). */
  wallMs: Record<string, number>;
}

export interface SqsCounts {
  requests: Record<string, number>;
  /** Billed requests: each 64 KB chunk of a request's payload counts as one request. */
  billedRequests: number;
  /** Billed requests of the producer side (SendMessage/SendMessageBatch), the same code path in AWS. */
  sendBilledRequests: number;
  messagesSent: number;
  /** Receives that returned no message: idle long polling, paid per second of uptime, not per branch. */
  emptyReceives: number;
  messagesReceived: number;
  attempts: number;
  /** Wall ms per operation, summed; ReceiveMessage includes its long-poll wait. */
  wallMs: Record<string, number>;
}

export interface SfnCounts {
  executions: number;
  /** States entered (Map, DispatchChild, RecordChildFailure, Aggregate), from the engine's log. */
  transitions: number;
  retries: number;
  byState: Record<string, number>;
  /** What the ASL implies for the tree (cross-check of the engine count; see aslTransitions). */
  expectedFromAsl?: number;
}

export interface EventCounts {
  entries: number;
  /** PutEvents requests the EventBridge publisher would make (≤ 10 entries each). */
  putEventsRequests: number;
  byType: Record<string, number>;
}

export interface AwsCounts {
  dynamodb: DynamoCounts;
  sqs: SqsCounts;
  stepFunctions: SfnCounts;
  eventBridge: EventCounts;
}

export function emptyCounts(): AwsCounts {
  return {
    dynamodb: { requests: {}, readRequests: 0, writeRequests: 0, batchItems: 0, rru: 0, wru: 0, gsiWru: 0, conditionalFailures: 0, attempts: 0, wallMs: {} },
    sqs: { requests: {}, billedRequests: 0, sendBilledRequests: 0, messagesSent: 0, emptyReceives: 0, messagesReceived: 0, attempts: 0, wallMs: {} },
    stepFunctions: { executions: 0, transitions: 0, retries: 0, byState: {} },
    eventBridge: { entries: 0, putEventsRequests: 0, byType: {} },
  };
}

const READS = new Set(['GetItem', 'BatchGetItem', 'Query', 'Scan']);
const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);
const CHUNK = 64 * 1024;

type Args = { input: Record<string, any> };
type Middleware = (next: (args: Args) => Promise<any>, context: { commandName?: string }) => (args: Args) => Promise<any>;
interface Stack {
  add(mw: Middleware, options: { step: string; name: string; priority?: string }): void;
}

function operationOf(context: { commandName?: string }): string {
  return (context.commandName ?? 'Unknown').replace(/Command$/, '');
}

function bump(record: Record<string, number>, key: string, by = 1): void {
  record[key] = (record[key] ?? 0) + by;
}

/** True for a write that touches a child branch item, which also lives in GSI1. */
function writesGsi(operation: string, input: Record<string, any>): boolean {
  if (operation === 'PutItem') return input.Item?.GSI1PK !== undefined;
  if (operation === 'UpdateItem') return typeof input.Key?.SK === 'string' && input.Key.SK.startsWith('B#') && input.Key.SK !== 'B#root';
  return false;
}

function capacityOf(output: any): number {
  const consumed = output?.ConsumedCapacity;
  if (Array.isArray(consumed)) return consumed.reduce((n, c) => n + (c?.CapacityUnits ?? 0), 0);
  return consumed?.CapacityUnits ?? 0;
}

export function countDynamo(client: DynamoDBClient, counts: DynamoCounts): void {
  const stack = client.middlewareStack as unknown as Stack;
  stack.add(
    (next, context) => async (args) => {
      const operation = operationOf(context);
      bump(counts.requests, operation);
      const read = READS.has(operation);
      if (read) counts.readRequests++;
      if (WRITES.has(operation)) counts.writeRequests++;
      if (operation === 'BatchGetItem') {
        for (const table of Object.values(args.input.RequestItems ?? {})) counts.batchItems += (table as { Keys: unknown[] }).Keys.length;
      }
      const t0 = performance.now();
      try {
        const result = await next({ ...args, input: { ...args.input, ReturnConsumedCapacity: 'TOTAL' } });
        const units = capacityOf(result.output);
        if (read) counts.rru += units;
        else {
          counts.wru += units;
          if (writesGsi(operation, args.input)) counts.gsiWru += units;
        }
        return result;
      } catch (error) {
        if ((error as { name?: string }).name === 'ConditionalCheckFailedException') {
          counts.conditionalFailures++;
          counts.wru += 1;
        }
        throw error;
      } finally {
        bump(counts.wallMs, operation, performance.now() - t0);
      }
    },
    { step: 'initialize', name: 'benchCountDynamo', priority: 'high' },
  );
  stack.add(
    (next) => async (args) => {
      counts.attempts++;
      return next(args);
    },
    { step: 'finalizeRequest', name: 'benchCountDynamoAttempts', priority: 'low' },
  );
}

export function countSqs(client: SQSClient, counts: SqsCounts): void {
  const stack = client.middlewareStack as unknown as Stack;
  stack.add(
    (next, context) => async (args) => {
      const operation = operationOf(context);
      bump(counts.requests, operation);
      let payload = 0;
      if (operation === 'SendMessageBatch') {
        const entries = (args.input.Entries ?? []) as { MessageBody?: string }[];
        counts.messagesSent += entries.length;
        payload = entries.reduce((n, e) => n + Buffer.byteLength(e.MessageBody ?? ''), 0);
      } else if (operation === 'SendMessage') {
        counts.messagesSent++;
        payload = Buffer.byteLength(String(args.input.MessageBody ?? ''));
      }
      const billed = Math.max(1, Math.ceil(payload / CHUNK));
      counts.billedRequests += billed;
      if (operation === 'SendMessageBatch' || operation === 'SendMessage') counts.sendBilledRequests += billed;
      const t0 = performance.now();
      const result = await next(args);
      bump(counts.wallMs, operation, performance.now() - t0);
      if (operation === 'ReceiveMessage') {
        const got = (result.output?.Messages ?? []).length;
        counts.messagesReceived += got;
        if (got === 0) counts.emptyReceives++;
      }
      return result;
    },
    { step: 'initialize', name: 'benchCountSqs', priority: 'high' },
  );
  stack.add(
    (next) => async (args) => {
      counts.attempts++;
      return next(args);
    },
    { step: 'finalizeRequest', name: 'benchCountSqsAttempts', priority: 'low' },
  );
}

/** Wraps the event publisher: every lifecycle event is one EventBridge entry. */
export function countEvents(publisher: EventPublisher, counts: EventCounts): EventPublisher {
  return {
    publish: async (events: LifecycleEvent[]) => {
      counts.entries += events.length;
      counts.putEventsRequests += Math.ceil(events.length / 10);
      for (const e of events) bump(counts.byType, e.type);
      return publisher.publish(events);
    },
  };
}

interface EngineEvent {
  type: string;
  state?: { name: string };
}

let sfnTarget: SfnCounts | undefined;
let patched = false;

/**
 * Taps the local Step Functions engine: every execution of the fan-out machine (the one with
 * an Aggregate state) has its event log read, and StateEntered / StateRetried are counted. The adapter
 * never reads that log itself; Map iterations forward their events into it.
 */
export function countStepFunctions(counts: SfnCounts): void {
  sfnTarget = counts;
  if (patched) return;
  patched = true;
  const proto = StateMachine.prototype as unknown as { run: (...args: unknown[]) => { eventLogs: AsyncGenerator<EngineEvent> } };
  const original = proto.run;
  proto.run = function (this: { definition?: { States?: Record<string, unknown> } }, ...args: unknown[]) {
    const execution = original.apply(this, args);
    if (this.definition?.States?.[FAN_OUT_STATES.aggregate] && sfnTarget) {
      const target = sfnTarget;
      target.executions++;
      void (async () => {
        for await (const event of execution.eventLogs) {
          if (event.type === 'StateEntered') {
            target.transitions++;
            bump(target.byState, event.state?.name ?? '?');
          } else if (event.type === 'StateRetried') {
            target.retries++;
            target.transitions++;
          }
        }
      })();
    }
    return execution;
  };
}

/**
 * Fan-out transitions the ASL implies for a regular tree where every child reports (the cost
 * meter's own rule, core/fan-out-plan.ts): per fan-out ChoosePath, the Map, one DispatchBatch per
 * batch (one DispatchChild per child on the per-child path) and Aggregate.
 */
export function aslTransitions(fanOuts: readonly number[], maxConcurrency: number): number {
  let parents = 1;
  let total = 0;
  for (const width of fanOuts) {
    total += parents * fanOutTransitions(planFanOut(width, maxConcurrency), width);
    parents *= width;
  }
  return total;
}

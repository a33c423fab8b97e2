/**
 * What a run consumes in the services it runs on, and what that comes to in dollars with the
 * dated price table (core/prices.ts). The meter that counts it on the real code path is
 * core/cost-meter.ts.
 *
 * - DynamoDB: the capacity units each request reports (ReturnConsumedCapacity); the in-memory
 *   store computes them from item sizes the way DynamoDB does.
 * - SQS: the requests made — each send batch, plus the consumer side as Lambda's event source
 *   mapping makes it (a receive and a delete per batch of up to 10: 0.2 per message), plus the
 *   fan-out's own DispatchChild sends.
 * - Step Functions: state transitions from the state machine's structure (fanOutTransitions).
 * - EventBridge: one entry per lifecycle event the team's event setting sends to the bus
 *   (core/event-policy.ts).
 * - Lambda: one request per invocation and its GB-seconds (the billed duration, rounded up to
 *   1 ms, times the function's memory), plus the bytes it logged (CloudWatch Logs ingestion).
 *   An invocation that served several runs is shared among them equally.
 */
import { PRICES, type PriceTable } from './prices';

export interface CostCounters {
  readUnits: number;
  writeUnits: number;
  sqsRequests: number;
  stepFunctionsTransitions: number;
  eventBridgeEntries: number;
  lambdaRequests: number;
  lambdaGbSeconds: number;
  /** Bytes the functions wrote to their logs (CloudWatch Logs ingestion). */
  logBytes: number;
}

/** `metrics.cost` of the run document. */
export interface RunCost {
  dynamodb: { readUnits: number; writeUnits: number };
  sqsRequests: number;
  stepFunctionsTransitions: number;
  eventBridgeEntries: number;
  /** The functions' invocations and their billed GB-seconds. */
  lambda: { requests: number; gbSeconds: number };
  /** What the functions logged (CloudWatch Logs ingestion), estimated from the bytes written. */
  logs: { ingestedBytes: number };
  usd: number;
  /** The price table's region and the date of its prices. */
  pricedAs: string;
}

export const COST_FIELDS: readonly (keyof CostCounters)[] = [
  'readUnits',
  'writeUnits',
  'sqsRequests',
  'stepFunctionsTransitions',
  'eventBridgeEntries',
  'lambdaRequests',
  'lambdaGbSeconds',
  'logBytes',
];

/** SQS requests per message on the consumer side (one receive + one delete per batch of 10). */
export const SQS_CONSUME_PER_MESSAGE = 0.2;

/**
 * What Lambda writes to an invocation's log stream itself (its START, END and REPORT lines, the
 * REPORT line with the X-Ray trace ids): about 400 bytes in the text log format.
 */
export const LAMBDA_PLATFORM_LOG_BYTES = 400;

const BYTES_PER_GB = 1024 ** 3;

export function emptyCost(): CostCounters {
  return {
    readUnits: 0,
    writeUnits: 0,
    sqsRequests: 0,
    stepFunctionsTransitions: 0,
    eventBridgeEntries: 0,
    lambdaRequests: 0,
    lambdaGbSeconds: 0,
    logBytes: 0,
  };
}

/** GB-seconds Lambda bills for an invocation: its duration rounded up to 1 ms, times its memory. */
export function billedGbSeconds(durationMs: number, memoryMb: number): number {
  return (Math.max(1, Math.ceil(durationMs)) / 1000) * (memoryMb / 1024);
}

/** One invocation's usage: a request, its GB-seconds, and what it logged (the platform's lines included). */
export function invocationUsage(durationMs: number, memoryMb: number, loggedBytes = 0): Partial<CostCounters> {
  return { lambdaRequests: 1, lambdaGbSeconds: billedGbSeconds(durationMs, memoryMb), logBytes: loggedBytes + LAMBDA_PLATFORM_LOG_BYTES };
}

/** A share of some usage (an invocation served several runs). */
export function shareOf(usage: Partial<CostCounters>, parts: number): Partial<CostCounters> {
  const share: Partial<CostCounters> = {};
  for (const field of COST_FIELDS) if (usage[field] !== undefined) share[field] = usage[field]! / parts;
  return share;
}

export function addCost(into: CostCounters, usage: Partial<CostCounters>): CostCounters {
  for (const field of COST_FIELDS) into[field] += usage[field] ?? 0;
  return into;
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

export function usdOf(c: CostCounters, prices: PriceTable = PRICES): number {
  const p = prices.prices;
  const usd =
    (c.readUnits * p.dynamodbReadRequestUnit.usdPerMillion +
      c.writeUnits * p.dynamodbWriteRequestUnit.usdPerMillion +
      c.sqsRequests * p.sqsRequest.usdPerMillion +
      c.stepFunctionsTransitions * p.stepFunctionsStandardTransition.usdPerMillion +
      c.eventBridgeEntries * p.eventBridgeCustomEvent.usdPerMillion +
      c.lambdaRequests * p.lambdaRequest.usdPerMillion +
      c.lambdaGbSeconds * p.lambdaArmGbSecond.usdPerMillion +
      (c.logBytes / BYTES_PER_GB) * p.cloudWatchLogsIngestedGb.usdPerMillion) /
    1e6;
  return round(usd, 8);
}

export function runCost(c: CostCounters, prices: PriceTable = PRICES): RunCost {
  return {
    dynamodb: { readUnits: round(c.readUnits, 2), writeUnits: round(c.writeUnits, 2) },
    sqsRequests: round(c.sqsRequests, 2),
    stepFunctionsTransitions: round(c.stepFunctionsTransitions, 2),
    eventBridgeEntries: round(c.eventBridgeEntries, 2),
    lambda: { requests: round(c.lambdaRequests, 2), gbSeconds: round(c.lambdaGbSeconds, 6) },
    logs: { ingestedBytes: Math.round(c.logBytes) },
    usd: usdOf(c, prices),
    pricedAs: `${prices.region} list prices (core/prices.ts)`,
  };
}

/** The counters a `metrics.cost` was priced from (its rounding kept). */
export function countersOf(cost: RunCost): CostCounters {
  return {
    readUnits: cost.dynamodb.readUnits,
    writeUnits: cost.dynamodb.writeUnits,
    sqsRequests: cost.sqsRequests,
    stepFunctionsTransitions: cost.stepFunctionsTransitions,
    eventBridgeEntries: cost.eventBridgeEntries,
    lambdaRequests: cost.lambda.requests,
    lambdaGbSeconds: cost.lambda.gbSeconds,
    logBytes: cost.logs.ingestedBytes,
  };
}

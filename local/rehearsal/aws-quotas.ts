/**
 * The AWS quotas and service behaviours the rehearsal holds the deployed code to, in one table
 * (docs/deploy.md lists them with what each could hide). Each is AWS's documented number; where
 * an engine enforces one itself, the table says which.
 */

import { LAMBDA_CONCURRENCY } from '../../functions/function-memory';

const KIB = 1024;
const MIB = 1024 * KIB;

export const AWS_QUOTAS = {
  /** Step Functions: a state's input or output, an execution's input, a task's result, a Map's collected result (States.DataLimitExceeded). */
  stepFunctionsPayloadBytes: 256 * KIB,
  /** SQS: a message (body and attributes) up to the queue's MaximumMessageSize; 256 KiB when the template sets none (fauxqs enforces it). */
  sqsDefaultMessageBytes: 256 * KIB,
  /** SQS: the largest MaximumMessageSize a queue may have. */
  sqsMaxMessageBytes: 1 * MIB,
  /** EventBridge: one PutEvents request's entries together (Time, Source, DetailType, Detail, Resources). */
  eventBridgeEntriesBytes: 256 * KIB,
  /** Lambda: a synchronous invocation's request and response. */
  lambdaSyncPayloadBytes: 6 * MIB,
  /** Lambda: an asynchronous invocation's event (EventBridge targets). */
  lambdaAsyncEventBytes: 1 * MIB,
  /** DynamoDB: one item (dynalite enforces it). */
  dynamoItemBytes: 400 * KIB,
  /** API Gateway (REST): a request's payload. */
  apiGatewayPayloadBytes: 10 * MIB,
  /** API Gateway (REST): how long it waits for its integration. */
  apiGatewayIntegrationSeconds: 29,
  /**
   * Lambda's recursive loop detection: invocations of one function along one chain of
   * Lambda → SQS → the same Lambda (counted in the propagated trace header) before Lambda stops
   * the next one, unless the function's RecursiveLoop is Allow.
   */
  recursiveLoopMaxInvocations: 16,
  /** Lambda: concurrent executions of an account in a Region (the default quota; new accounts may get less). */
  lambdaAccountConcurrency: LAMBDA_CONCURRENCY.accountDefault,
  /** Lambda: the account's concurrency no function may reserve (ReservedConcurrentExecutions beyond it fails the deploy). */
  lambdaMinUnreservedConcurrency: LAMBDA_CONCURRENCY.minUnreserved,
} as const;

import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createDlqHandler } from '../handlers/dlq-handler';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let handle: ((event: SQSEvent) => Promise<SQSBatchResponse>) | undefined;

/** Lambda entry for the step queue's DLQ (event source mapping with ReportBatchItemFailures). */
const inner = flushingCost((event: SQSEvent): Promise<SQSBatchResponse> => {
  handle ??= createDlqHandler(awsRuntime().deps);
  return handle(event);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

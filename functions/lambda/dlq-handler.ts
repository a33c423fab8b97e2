import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createDlqHandler } from '../handlers/dlq-handler';
import { awsRuntime, flushingCost } from './aws-deps';

let handle: ((event: SQSEvent) => Promise<SQSBatchResponse>) | undefined;

/** Lambda entry for the step queue's DLQ (event source mapping with ReportBatchItemFailures). */
export const handler = flushingCost((event: SQSEvent): Promise<SQSBatchResponse> => {
  handle ??= createDlqHandler(awsRuntime().deps);
  return handle(event);
});

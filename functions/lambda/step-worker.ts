import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createStepWorkerHandler } from '../handlers/step-worker';
import { awsRuntime, flushingCost } from './aws-deps';

let handle: ((event: SQSEvent) => Promise<SQSBatchResponse>) | undefined;

export const handler = flushingCost((event: SQSEvent): Promise<SQSBatchResponse> => {
  handle ??= createStepWorkerHandler(awsRuntime().deps);
  return handle(event);
});

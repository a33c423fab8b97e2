import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createStepWorkerHandler } from '../handlers/step-worker';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let handle: ((event: SQSEvent) => Promise<SQSBatchResponse>) | undefined;

const inner = flushingCost((event: SQSEvent): Promise<SQSBatchResponse> => {
  handle ??= createStepWorkerHandler(awsRuntime().deps);
  return handle(event);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

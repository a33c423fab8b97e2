import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createStepWorkerHandler } from '../handlers/step-worker';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let handle: ReturnType<typeof createStepWorkerHandler> | undefined;

const inner = flushingCost(async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
  const runtime = awsRuntime();
  handle ??= createStepWorkerHandler(runtime.deps);
  // Agents' API keys (cached per container; fetched again once older than their max age).
  await runtime.secrets.refresh();
  return handle(event, context);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

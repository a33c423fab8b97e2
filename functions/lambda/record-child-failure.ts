import { createFanOutTaskHandlers } from '../handlers/fan-out-tasks';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let tasks: ReturnType<typeof createFanOutTaskHandlers> | undefined;

const inner = flushingCost((event: unknown): Promise<void> => {
  tasks ??= createFanOutTaskHandlers(awsRuntime().deps);
  return tasks.recordFailure(event);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

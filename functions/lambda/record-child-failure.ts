import { createFanOutTaskHandlers } from '../handlers/fan-out-tasks';
import { awsRuntime, flushingCost } from './aws-deps';

let tasks: ReturnType<typeof createFanOutTaskHandlers> | undefined;

export const handler = flushingCost((event: unknown): Promise<void> => {
  tasks ??= createFanOutTaskHandlers(awsRuntime().deps);
  return tasks.recordChildFailure(event);
});

import { createFanOutTaskHandlers } from '../handlers/fan-out-tasks';
import { awsRuntime, flushingCost } from './aws-deps';
import { timedFanIn } from '../handlers/observability';
import { instrument, metricSink } from './powertools';

let tasks: ReturnType<typeof createFanOutTaskHandlers> | undefined;

const inner = flushingCost((event: unknown): Promise<void> => {
  tasks ??= createFanOutTaskHandlers(awsRuntime().deps);
  const aggregate = tasks.aggregate;
  return timedFanIn(metricSink, () => aggregate(event));
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

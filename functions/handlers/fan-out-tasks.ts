/** The Lambda tasks of the fan-out state machine (RecordChildFailure, Aggregate, RecordFanOutFailure). */
import { z } from 'zod';
import { ValidationError } from '../../core/errors';
import { aggregateSyncPoint, recordChildFailure, recordFanOutFailure, type SpawnerDeps } from '../../core/use-cases';
import { createLogger, type Logger } from './logger';

const syncPointInput = z.object({
  team: z.string().min(1),
  runId: z.string().min(1),
  parentId: z.string().min(1),
  seq: z.number().int().positive(),
});
const failure = {
  error: z.string().nullish().transform((e) => e ?? 'States.TaskFailed'),
  cause: z.string().nullish().transform((c) => c ?? undefined),
};
const childFailureInput = syncPointInput.extend({ branchId: z.string().min(1), ...failure });
const fanOutFailureInput = syncPointInput.extend(failure).strict();

function parse<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`${issue.path.join('.') || 'input'}: ${issue.message}`, issue.path.join('.'));
  }
  return parsed.data;
}

export function createFanOutTaskHandlers(deps: SpawnerDeps, logger: Logger = createLogger('fan-out-tasks')) {
  const handlers = {
    recordChildFailure: async (event: unknown): Promise<void> => {
      const input = parse(childFailureInput, event);
      logger.info('child failed in the fan-out', { runId: input.runId, branchId: input.branchId, error: input.error });
      await recordChildFailure(deps, input);
    },
    aggregate: async (event: unknown): Promise<void> => {
      const input = parse(syncPointInput, event);
      logger.debug('aggregate', { runId: input.runId, branchId: input.parentId, seq: input.seq });
      await aggregateSyncPoint(deps, input);
    },
    recordFanOutFailure: async (event: unknown): Promise<void> => {
      const input = parse(fanOutFailureInput, event);
      logger.error('the fan-out failed: its parent fails', { runId: input.runId, branchId: input.parentId, seq: input.seq, error: input.error, cause: input.cause });
      await recordFanOutFailure(deps, input);
    },
  };
  return {
    ...handlers,
    /**
     * RecordChildFailure and RecordFanOutFailure share one function (the same reach): a payload
     * that names a branch is a child's failure, one without is the fan-out's own.
     */
    recordFailure: (event: unknown): Promise<void> =>
      event && typeof event === 'object' && 'branchId' in event ? handlers.recordChildFailure(event) : handlers.recordFanOutFailure(event),
  };
}

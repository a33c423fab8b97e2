/** The Lambda tasks of the fan-out state machine (RecordChildFailure, Aggregate). */
import { z } from 'zod';
import { ValidationError } from '../../core/errors';
import { aggregateSyncPoint, recordChildFailure, type SpawnerDeps } from '../../core/use-cases';
import { createLogger, type Logger } from './logger';

const syncPointInput = z.object({
  team: z.string().min(1),
  runId: z.string().min(1),
  parentId: z.string().min(1),
  seq: z.number().int().positive(),
});
const childFailureInput = syncPointInput.extend({
  branchId: z.string().min(1),
  error: z.string().nullish().transform((e) => e ?? 'States.TaskFailed'),
  cause: z.string().nullish().transform((c) => c ?? undefined),
});

function parse<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`${issue.path.join('.') || 'input'}: ${issue.message}`, issue.path.join('.'));
  }
  return parsed.data;
}

export function createFanOutTaskHandlers(deps: SpawnerDeps, logger: Logger = createLogger('fan-out-tasks')) {
  return {
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
  };
}

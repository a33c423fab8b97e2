/** The Lambda tasks of the fan-out state machine (RecordChildFailure, Aggregate, RecordFanOutFailure, DispatchBatch, RecordBatchFailure). */
import { z } from 'zod';
import { ValidationError } from '../../core/errors';
import { aggregateSyncPoint, dispatchBatch, recordBatchFailure, recordChildFailure, recordFanOutFailure, type SpawnerDeps } from '../../core/use-cases';
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
/** `$$.State.RetryCount` of a failed iteration's task or of Aggregate (0 on its first attempt; absent from an older definition's execution). */
const retryCount = { retryCount: z.number().int().min(0).max(1000).optional() };
const childFailureInput = syncPointInput.extend({ branchId: z.string().min(1), ...failure, ...retryCount });
const aggregateInput = syncPointInput.extend(retryCount);
const fanOutFailureInput = syncPointInput.extend(failure).strict();
const batchRange = { first: z.number().int().min(0), count: z.number().int().min(1) };
const batchDispatchInput = syncPointInput.extend({ ...batchRange, window: z.number().int().min(1), taskToken: z.string().min(1) }).strict();
const batchFailureInput = syncPointInput.extend({ ...batchRange, ...failure, ...retryCount }).strict();

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
      const input = parse(aggregateInput, event);
      logger.debug('aggregate', { runId: input.runId, branchId: input.parentId, seq: input.seq });
      await aggregateSyncPoint(deps, input);
    },
    recordFanOutFailure: async (event: unknown): Promise<void> => {
      const input = parse(fanOutFailureInput, event);
      logger.error('the fan-out failed: its parent fails', { runId: input.runId, branchId: input.parentId, seq: input.seq, error: input.error, cause: input.cause });
      await recordFanOutFailure(deps, input);
    },
    dispatchBatch: async (event: unknown): Promise<void> => {
      const input = parse(batchDispatchInput, event);
      logger.debug('dispatch batch', { runId: input.runId, branchId: input.parentId, seq: input.seq, first: input.first, count: input.count });
      await dispatchBatch(deps, input);
    },
    recordBatchFailure: async (event: unknown): Promise<void> => {
      const input = parse(batchFailureInput, event);
      logger.info('a fan-out batch failed', { runId: input.runId, branchId: input.parentId, seq: input.seq, first: input.first, error: input.error });
      await recordBatchFailure(deps, input);
    },
  };
  return {
    ...handlers,
    /**
     * RecordChildFailure, RecordFanOutFailure, DispatchBatch and RecordBatchFailure share one
     * function (the same reach): a payload with a task token dispatches a batch, one with a
     * batch's range records the batch's failure, one that names a branch is a child's failure,
     * one with none of these is the fan-out's own.
     */
    recordFailure: (event: unknown): Promise<void> => {
      const has = (field: string) => !!event && typeof event === 'object' && field in event;
      if (has('taskToken')) return handlers.dispatchBatch(event);
      if (has('first')) return handlers.recordBatchFailure(event);
      return has('branchId') ? handlers.recordChildFailure(event) : handlers.recordFanOutFailure(event);
    },
  };
}

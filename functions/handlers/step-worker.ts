/**
 * step-worker: the SQS consumer. One branch step per message; per-record failures are
 * reported (batchItemFailures) so only the failed messages come back.
 *
 * A failed step comes back after a backoff (exponential in its receive count, with jitter), set
 * with ChangeMessageVisibility before it is reported: left to the queue it would come back only
 * when its visibility timeout ends (1,800 s in the stack, past the 900 s default branch timeout).
 * The visibility timeout stays the net for a worker that dies or times out.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { AGENT_CALL_MARGIN_SECONDS } from '../../core/limit-table';
import { backoffDelay } from '../../adapters/retry';
import { errorMessage } from '../../core/errors';
import { retryEvent } from '../../core/events';
import type { StepMessage } from '../../core/ports';
import { executeStep, type SpawnerDeps } from '../../core/use-cases';
import { parseStepMessage } from '../messages';
import { createLogger, type Logger } from './logger';

/** The first retry comes back within 1-2 s; each later one waits twice as long, up to a minute. */
export const STEP_RETRY_BASE_SECONDS = 2;
export const STEP_RETRY_MAX_SECONDS = 60;

/** Seconds before a step that failed on its `receiveCount`-th delivery is offered again. */
export function stepRetryDelaySeconds(receiveCount: number, random: () => number = Math.random): number {
  const attempt = Number.isInteger(receiveCount) && receiveCount > 0 ? receiveCount : 1;
  const ms = backoffDelay(attempt, STEP_RETRY_BASE_SECONDS * 1000, STEP_RETRY_MAX_SECONDS * 1000, random);
  // SQS takes whole seconds; 0 would make the message visible at once.
  return Math.max(1, Math.round(ms / 1000));
}

export interface StepWorkerOptions {
  logger?: Logger;
  /** The jitter's source (tests pin it). */
  random?: () => number;
}

export function createStepWorkerHandler(deps: SpawnerDeps, options: StepWorkerOptions = {}) {
  const { logger = createLogger('step-worker'), random = Math.random } = options;
  const recordHandler = async (record: SQSRecord, deadline: number | undefined) => {
    const message = parseStepMessage(record.body);
    if (!message) {
      // A message that can never be read is dropped loudly rather than retried forever.
      logger.error('dropping a malformed step message', { messageId: record.messageId, body: record.body.slice(0, 500) });
      return;
    }
    const keys = { runId: message.runId, branchId: message.branchId, team: message.team, step: message.step };
    try {
      const outcome = await executeStep(deps, message, { messageId: record.messageId, receiveCount: receiveCountOf(record), deadline });
      logger.debug('step done', { ...keys, outcome });
    } catch (error) {
      const delaySeconds = await backOff(record, message, error);
      logger.error('step failed; the message will be retried', { ...keys, delaySeconds, error: error as Error });
      throw error;
    }
  };

  /** Asks for the failed message back after the backoff; says so in a lifecycle event. */
  async function backOff(record: SQSRecord, message: StepMessage, error: unknown): Promise<number | undefined> {
    const attempt = receiveCountOf(record);
    const delaySeconds = stepRetryDelaySeconds(attempt, random);
    try {
      await deps.queue.redeliverAfter({ message, receiptHandle: record.receiptHandle }, delaySeconds);
    } catch (visibilityError) {
      // The message still comes back, at the end of the queue's visibility timeout.
      logger.error('could not set the failed step’s backoff; it returns after the visibility timeout', {
        messageId: record.messageId,
        error: visibilityError as Error,
      });
      return undefined;
    }
    try {
      await deps.events.publish([retryEvent(message, deps.clock.now(), { attempt, delaySeconds, error: errorMessage(error) })]);
    } catch (eventError) {
      logger.error('could not publish BranchRetryScheduled', { messageId: record.messageId, error: eventError as Error });
    }
    return delaySeconds;
  }

  // One processor per invocation: a BatchProcessor keeps the batch's records and failures on
  // itself, so invocations sharing one (the local runtime's parallel pollers) would report each
  // other's failures and delete messages whose step failed.
  // In Lambda, every agent call of the batch ends a margin before the invocation would time out
  // (a timeout would fail the whole batch).
  return async (event: SQSEvent, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<SQSBatchResponse> => {
    const deadline = context ? deps.clock.now() + context.getRemainingTimeInMillis() - AGENT_CALL_MARGIN_SECONDS * 1000 : undefined;
    return processPartialResponse(event, (record: SQSRecord) => recordHandler(record, deadline), new BatchProcessor(EventType.SQS), {
      throwOnFullBatchFailure: false,
      processInParallel: true,
    });
  };
}

/** The delivery's number, 1 for the first (SQS's ApproximateReceiveCount). */
function receiveCountOf(record: SQSRecord): number {
  const count = Number(record.attributes?.ApproximateReceiveCount);
  return Number.isInteger(count) && count > 0 ? count : 1;
}

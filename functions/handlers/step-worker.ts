/**
 * step-worker: the SQS consumer. One branch step per message; per-record failures are
 * reported (batchItemFailures) so only the failed messages come back.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { executeStep, type SpawnerDeps } from '../../core/use-cases';
import { parseStepMessage } from '../messages';
import { createLogger, type Logger } from './logger';

export function createStepWorkerHandler(deps: SpawnerDeps, logger: Logger = createLogger('step-worker')) {
  const recordHandler = async (record: SQSRecord) => {
    const message = parseStepMessage(record.body);
    if (!message) {
      // A message that can never be read is dropped loudly rather than retried forever.
      logger.error('dropping a malformed step message', { messageId: record.messageId, body: record.body.slice(0, 500) });
      return;
    }
    const keys = { runId: message.runId, branchId: message.branchId, team: message.team, step: message.step };
    try {
      const outcome = await executeStep(deps, message, { messageId: record.messageId });
      logger.debug('step done', { ...keys, outcome });
    } catch (error) {
      logger.error('step failed; the message will be retried', { ...keys, error: error as Error });
      throw error;
    }
  };
  // One processor per invocation: a BatchProcessor keeps the batch's records and failures on
  // itself, so invocations sharing one (the local runtime's parallel pollers) would report each
  // other's failures and delete messages whose step failed.
  return async (event: SQSEvent): Promise<SQSBatchResponse> =>
    processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
      throwOnFullBatchFailure: false,
      processInParallel: true,
    });
}

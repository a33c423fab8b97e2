/**
 * dlq-handler: the consumer of the step queue's dead-letter queue. A step message lands there
 * after failing maxReceiveCount deliveries; if it was its branch's current work, nothing else
 * would ever move that branch, so the branch is FAILED ("poison message: ...") and its parent
 * told — the run ends instead of hanging. Stale messages are dropped. Infrastructure errors are
 * reported as batch item failures, so the record is tried again.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { failPoisonedStep, type PoisonOutcome, type SpawnerDeps } from '../../core/use-cases';
import { createLogger, type Logger } from './logger';
import { parseStepMessage } from '../messages';

export interface DlqHandlerOptions {
  /** Told what became of each dead-lettered step (metrics, tests). */
  onHandled?(outcome: PoisonOutcome | 'malformed'): void;
  /**
   * The step queue's maxReceiveCount, when known: each of those deliveries failed. Without it the
   * record's receive count is reported, which goes on counting in the dead-letter queue (the
   * receive that moved it, the DLQ's own).
   */
  maxReceiveCount?: number;
}

export function createDlqHandler(deps: SpawnerDeps, logger: Logger = createLogger('dlq-handler'), options: DlqHandlerOptions = {}) {
  const recordHandler = async (record: SQSRecord) => {
    const message = parseStepMessage(record.body);
    if (!message) {
      logger.error('dropping a malformed dead-lettered message', { messageId: record.messageId, body: record.body.slice(0, 500) });
      options.onHandled?.('malformed');
      return;
    }
    const receiveCount = options.maxReceiveCount ?? (Number(record.attributes?.ApproximateReceiveCount) || undefined);
    const outcome = await failPoisonedStep(deps, message, { messageId: record.messageId, receiveCount });
    logger.warn('dead-lettered step handled', { runId: message.runId, branchId: message.branchId, step: message.step, outcome });
    options.onHandled?.(outcome);
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

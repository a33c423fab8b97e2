/**
 * trigger: starts a run from an EventBridge `RunRequested` event. A malformed event throws a
 * ValidationError once: the async invocation's bounded retries then park it in the DLQ.
 */
import { randomUUID } from 'node:crypto';
import type { EventBridgeEvent } from 'aws-lambda';
import { ValidationError } from '../../core/errors';
import { toStartRunInput, type AgentPolicy } from '../../core/run-request';
import { startRun, type SpawnerDeps } from '../../core/use-cases';
import type { Limits } from '../../core/model';
import { idempotencyKeyHash } from '../messages';
import { createLogger, type Logger } from './logger';

/** Whom an event's idempotency key belongs to, among the keys the team's callers use (api.ts). */
const EVENT_CALLER = 'events:RunRequested';

export interface TriggerConfig {
  team: string;
  policy: AgentPolicy;
  limitMaxima?: Partial<Limits>;
}

export function createTriggerHandler(deps: SpawnerDeps, config: TriggerConfig, logger: Logger = createLogger('trigger')) {
  return async (event: EventBridgeEvent<string, unknown>): Promise<{ runId: string; created: boolean }> => {
    try {
      if (event['detail-type'] !== 'RunRequested') {
        throw new ValidationError(`detail-type must be RunRequested, got ${String(event['detail-type'])}`, 'detail-type');
      }
      const detail = event.detail as Record<string, unknown> | null;
      const key = typeof detail?.idempotencyKey === 'string' ? detail.idempotencyKey : event.id;
      const { idempotencyKey: _ignored, ...document } = (detail ?? {}) as Record<string, unknown>;
      // The key maps to a random id kept apart (as the API does for a caller's key): an id that
      // followed from a guessable key ("nightly-<date>") would let any caller of the team read it.
      const runId = await deps.store.claimRunId(config.team, idempotencyKeyHash(config.team, EVENT_CALLER, key), randomUUID());
      const input = toStartRunInput(document, { team: config.team, runId, policy: config.policy });
      const result = await startRun(deps, { ...input, limitMaxima: config.limitMaxima });
      logger.info('run started from an event', { runId: result.runId, created: result.created, eventId: event.id });
      return result;
    } catch (error) {
      logger.error('run request event refused', { eventId: event.id, error: error as Error });
      throw error;
    }
  };
}

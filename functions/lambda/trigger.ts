import type { EventBridgeEvent } from 'aws-lambda';
import { createTriggerHandler } from '../handlers/trigger';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let handle: ReturnType<typeof createTriggerHandler> | undefined;

const inner = flushingCost((event: EventBridgeEvent<string, unknown>) => {
  if (!handle) {
    const { config, deps } = awsRuntime();
    handle = createTriggerHandler(deps, { team: config.team, policy: config.policy, limitMaxima: config.limitMaxima });
  }
  return handle(event);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

import type { EventBridgeEvent } from 'aws-lambda';
import { createTriggerHandler } from '../handlers/trigger';
import { awsRuntime, flushingCost } from './aws-deps';

let handle: ReturnType<typeof createTriggerHandler> | undefined;

export const handler = flushingCost((event: EventBridgeEvent<string, unknown>) => {
  if (!handle) {
    const { config, deps } = awsRuntime();
    handle = createTriggerHandler(deps, { team: config.team, policy: config.policy, limitMaxima: config.limitMaxima });
  }
  return handle(event);
});

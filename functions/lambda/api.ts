import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { createApiHandler } from '../handlers/api';
import { awsRuntime, flushingCost } from './aws-deps';
import { instrument } from './powertools';

let handle: ReturnType<typeof createApiHandler> | undefined;

const inner = flushingCost((event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  if (!handle) {
    const { config, deps } = awsRuntime();
    handle = createApiHandler(deps, {
      policy: config.policy,
      // One stack per team: the stack's team scopes every request, whatever a token claims.
      teamOf: () => config.team,
      maxBodyBytes: config.maxBodyBytes,
      limitMaxima: config.limitMaxima,
      audience: config.audience,
      shareRuns: config.shareRuns,
    });
  }
  return handle(event, context);
});

/** Traced, with its metrics flushed after each invocation (functions/lambda/powertools.ts). */
export const handler = instrument(inner);

import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { createApiHandler } from '../handlers/api';
import { awsRuntime, flushingCost } from './aws-deps';

let handle: ReturnType<typeof createApiHandler> | undefined;

export const handler = flushingCost((event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  if (!handle) {
    const { config, deps } = awsRuntime();
    handle = createApiHandler(deps, {
      policy: config.policy,
      // One stack per team: the stack's team scopes every request, whatever a token claims.
      teamOf: () => config.team,
      maxBodyBytes: config.maxBodyBytes,
      limitMaxima: config.limitMaxima,
    });
  }
  return handle(event, context);
});

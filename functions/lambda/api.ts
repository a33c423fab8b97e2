import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { createApiHandler } from '../handlers/api';
import { awsRuntime } from './aws-deps';

let handle: ReturnType<typeof createApiHandler> | undefined;

export const handler = (event: APIGatewayProxyEvent, context: Context): Promise<APIGatewayProxyResult> => {
  if (!handle) {
    const { config, deps } = awsRuntime();
    handle = createApiHandler(deps, {
      policy: config.policy,
      // A JWT authorizer may carry the caller's team; IAM callers belong to the stack's team.
      teamOf: (e) => {
        const claims = (e.requestContext?.authorizer as { claims?: Record<string, string> } | null)?.claims;
        return claims?.['custom:team'] ?? config.team;
      },
      maxBodyBytes: Number(process.env.MAX_BODY_BYTES) || undefined,
      limitMaxima: config.limitMaxima,
    });
  }
  return handle(event, context);
};

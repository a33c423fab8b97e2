/** The api handler on in-memory ports, for the API fuzz and the isolation tests. */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { RunRecord } from '../../core/model';
import type { AgentPolicy } from '../../core/run-request';
import { createApiHandler } from '../../functions/handlers/api';
import { DEFAULT_MAX_BODY_BYTES } from '../../functions/lambda-environment';
import { createMemoryHarness } from '../support/memory-harness';

export function apiEvent(
  method: string,
  path: string,
  body: string | null,
  headers: Record<string, string> = {},
  extra: Partial<APIGatewayProxyEvent> = {},
): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    headers,
    body,
    isBase64Encoded: false,
    queryStringParameters: null,
    multiValueHeaders: {},
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    resource: path,
    requestContext: {} as never,
    ...extra,
  };
}

/** The api handler on in-memory ports, counting the runs its store really created. */
export function apiUnderTest(policy: AgentPolicy, maxBodyBytes = DEFAULT_MAX_BODY_BYTES) {
  const h = createMemoryHarness();
  const created: RunRecord[] = [];
  const createRun = h.store.createRun.bind(h.store);
  h.store.createRun = async (run) => {
    const ok = await createRun(run);
    if (ok) created.push(run);
    return ok;
  };
  const api = createApiHandler(h.deps, {
    policy,
    maxBodyBytes,
    teamOf: (event) => {
      const key = Object.keys(event.headers ?? {}).find((k) => k.toLowerCase() === 'x-team');
      return (key && event.headers[key]) || 'team-a';
    },
  });
  const call = (event: APIGatewayProxyEvent) => api(event, {} as never) as Promise<APIGatewayProxyResult>;
  return { h, created, call };
}

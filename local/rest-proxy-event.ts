/**
 * What API Gateway hands the api function, in one place for `dev` and the rehearsal: the REST API
 * (payload 1.0) proxy event of the stack infra/ deploys — a RestApi with one resource per path
 * (`/runs/{id}/branches`, …), each method an AWS_PROXY integration — and API Gateway's matching
 * of a request path to one of those resources.
 *
 * As API Gateway builds it: `path` is the path below the stage, `requestContext.path` the one the
 * client called (with the stage on the execute-api host); a repeated header or query parameter
 * has its last value in `headers`/`queryStringParameters` and all of them in the multi-value maps;
 * path parameters are URL-decoded; an empty body, no query or no path parameter is null.
 */
import type { APIGatewayEventIdentity, APIGatewayProxyEvent } from 'aws-lambda';
import { randomUUID } from 'node:crypto';

export interface ProxyRequest {
  method: string;
  /** Below the stage, as sent (not decoded): `/runs/r1/tree`. */
  path: string;
  /** Each header's values in the order sent (names as received). */
  headers: Record<string, string[]>;
  query: Record<string, string[]>;
  body: string | null;
  sourceIp: string;
  /** `HTTP/1.1` unless told. */
  protocol?: string;
}

/** The API and stage a request came through. */
export interface ProxyStage {
  accountId: string;
  apiId: string;
  stage: string;
  /** What comes before the resource path in the URL the client called: `/<stage>` on the execute-api host, nothing on dev's. */
  basePath: string;
}

/** Who API Gateway authenticated: an IAM caller's identity, or a Cognito authorizer's claims. */
export interface ProxyAuth {
  identity?: Partial<APIGatewayEventIdentity>;
  claims?: Record<string, string>;
}

export interface ResourceMatch {
  /** The resource's path template (`/runs/{id}`). */
  resource: string;
  pathParameters: Record<string, string> | null;
}

/**
 * The resource of `resources` (path templates: literal segments, `{name}` for one segment,
 * `{name+}` for the rest) a path reaches, as API Gateway picks it: the one with more literal
 * segments before a variable wins. Undefined: API Gateway has no such resource.
 */
export function matchResource(resources: readonly string[], path: string): ResourceMatch | undefined {
  const segments = splitPath(path);
  let best: { match: ResourceMatch; rank: number[] } | undefined;
  for (const resource of resources) {
    const found = matchTemplate(splitPath(resource), segments);
    if (!found) continue;
    const match = { resource, pathParameters: Object.keys(found.parameters).length ? found.parameters : null };
    if (!best || compareRanks(found.rank, best.rank) > 0) best = { match, rank: found.rank };
  }
  return best?.match;
}

/** The path's parameters if it fits the template, and how literal the fit is (per segment: 2 literal, 1 variable, 0 greedy). */
function matchTemplate(template: string[], segments: string[]): { parameters: Record<string, string>; rank: number[] } | undefined {
  const parameters: Record<string, string> = {};
  const rank: number[] = [];
  for (let i = 0; i < template.length; i++) {
    const variable = /^\{([^}+]+)(\+?)\}$/.exec(template[i]);
    if (variable?.[2]) {
      if (segments.length <= i) return undefined;
      parameters[variable[1]] = decode(segments.slice(i).join('/'));
      return { parameters, rank: [...rank, 0] };
    }
    if (i >= segments.length) return undefined;
    if (variable && segments[i] !== '') {
      parameters[variable[1]] = decode(segments[i]);
      rank.push(1);
    } else if (!variable && template[i] === segments[i]) rank.push(2);
    else return undefined;
  }
  return segments.length === template.length ? { parameters, rank } : undefined;
}

/** The proxy event for a request that reached `match` on `stage`. */
export function restProxyEvent(request: ProxyRequest, stage: ProxyStage, match: ResourceMatch, auth: ProxyAuth = {}): APIGatewayProxyEvent {
  const last = (values: Record<string, string[]>) => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v[v.length - 1]]));
  const headers = last(request.headers);
  const hasQuery = Object.keys(request.query).length > 0;
  const now = new Date();
  const header = (name: string) => Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return {
    resource: match.resource,
    path: request.path,
    httpMethod: request.method,
    headers,
    multiValueHeaders: request.headers,
    queryStringParameters: hasQuery ? last(request.query) : null,
    multiValueQueryStringParameters: hasQuery ? request.query : null,
    pathParameters: match.pathParameters,
    stageVariables: null,
    body: request.body ? request.body : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: stage.accountId,
      apiId: stage.apiId,
      authorizer: auth.claims ? { claims: auth.claims } : null,
      domainName: header('host') ?? 'localhost',
      protocol: request.protocol ?? 'HTTP/1.1',
      httpMethod: request.method,
      identity: { ...NO_IDENTITY, sourceIp: request.sourceIp, userAgent: header('user-agent') ?? null, ...auth.identity },
      path: `${stage.basePath}${request.path}`,
      stage: stage.stage,
      requestId: randomUUID(),
      requestTime: requestTime(now),
      requestTimeEpoch: now.getTime(),
      resourceId: match.resource,
      resourcePath: match.resource,
    },
  };
}

const NO_IDENTITY: APIGatewayEventIdentity = {
  accessKey: null,
  accountId: null,
  apiKey: null,
  apiKeyId: null,
  caller: null,
  clientCert: null,
  cognitoAuthenticationProvider: null,
  cognitoAuthenticationType: null,
  cognitoIdentityId: null,
  cognitoIdentityPoolId: null,
  principalOrgId: null,
  sourceIp: '',
  user: null,
  userAgent: null,
  userArn: null,
};

function splitPath(path: string): string[] {
  // API Gateway takes `/runs/` for `/runs`.
  const inner = path.replace(/^\//, '').replace(/\/$/, '');
  return inner === '' ? [] : inner.split('/');
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `08/Dec/2026:00:15:17 +0000`, as API Gateway writes requestTime. */
function requestTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`;
}

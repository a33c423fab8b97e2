/**
 * The stack's REST API, from the template: its stage, resources and AWS_PROXY methods with their
 * authorization, and a request through it as API Gateway serves one: a path or method the API
 * lacks is 403, a body over the payload cap 413 before anything runs, the integration's function
 * invoked with the proxy event once its resource policy allows API Gateway (else 500), 504 when
 * the function outlasts the integration timeout, 502 when it fails. Authentication happens in
 * front of this (api-gateway.ts): the caller's identity or claims come with the request.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import type { RehearsalAccess } from './access';
import { AWS_QUOTAS } from './aws-quotas';
import type { RehearsalFunctions } from './functions';
import { RehearsalError } from './rehearsal-error';
import type { RehearsalTemplate } from './template';

/** How a caller reaches one method of the REST API. */
export interface ApiMethodAuth {
  authorizationType: string;
  userPoolArns: string[];
  scopes: string[];
}

interface Route extends ApiMethodAuth {
  method: string;
  pathTemplate: string;
  pattern: RegExp;
  params: string[];
  functionArn: string;
}

export interface ApiRequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  identity?: Partial<APIGatewayProxyEvent['requestContext']['identity']>;
  /** A Cognito authorizer's claims (`requestContext.authorizer.claims`). */
  claims?: Record<string, string>;
}

export interface ApiAnswer {
  statusCode: number;
  headers: NonNullable<APIGatewayProxyResult['headers']>;
  body: string;
}

export interface RestApiContext {
  template: RehearsalTemplate;
  /** The API's id (physical-ids.ts). */
  apiId: string;
  access: RehearsalAccess;
  functions: RehearsalFunctions;
  onError(error: unknown): void;
}

export class RehearsalRestApi {
  readonly stage: string;
  private readonly routes: Route[];

  constructor(private readonly ctx: RestApiContext) {
    const t = ctx.template;
    const stage = t.ofType('AWS::ApiGateway::Stage')[0];
    this.stage = stage ? String(stage[1].Properties?.StageName ?? 'prod') : 'prod';
    this.routes = routesOf(t);
  }

  get id(): string {
    return this.ctx.apiId;
  }

  /** The user pools of the API's Cognito authorizers (ARNs). */
  get userPoolArns(): string[] {
    return [...new Set(this.routes.flatMap((r) => r.userPoolArns))];
  }

  authorizationOf(method: string, path: string): ApiMethodAuth | undefined {
    return this.routeOf(method, path);
  }

  /** A request to the API (the path without the stage, e.g. `/runs`). */
  async request(method: string, path: string, options: ApiRequestOptions = {}): Promise<ApiAnswer> {
    const route = this.routeOf(method, path);
    if (!route) {
      // What API Gateway answers for a path or method it does not have.
      return { statusCode: 403, headers: {}, body: JSON.stringify({ message: 'Missing Authentication Token' }) };
    }
    const values = route.pattern.exec(path)!.slice(1);
    const pathParameters = Object.fromEntries(route.params.map((p, i) => [p, decodeURIComponent(values[i])]));
    const t = this.ctx.template;
    const sourceArn = t.arn('execute-api', `${this.id}/${this.stage}/${route.method}${route.pathTemplate}`);
    const fn = this.ctx.functions.byArn(route.functionArn);
    if (!this.ctx.access.permits(fn.fn, 'apigateway.amazonaws.com', sourceArn)) {
      this.ctx.access.denyInvocation('API Gateway', fn.fn);
      return { statusCode: 500, headers: {}, body: JSON.stringify({ message: 'Internal server error' }) };
    }
    const body = options.body === undefined ? null : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    if (body !== null && Buffer.byteLength(body) > AWS_QUOTAS.apiGatewayPayloadBytes) {
      // API Gateway refuses it before any integration runs.
      return { statusCode: 413, headers: {}, body: JSON.stringify({ message: 'Request Too Long' }) };
    }
    const headers = { 'content-type': 'application/json', ...options.headers };
    const event: APIGatewayProxyEvent = {
      resource: route.pathTemplate,
      path,
      httpMethod: route.method,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      queryStringParameters: options.query ?? null,
      multiValueQueryStringParameters: options.query ? Object.fromEntries(Object.entries(options.query).map(([k, v]) => [k, [v]])) : null,
      pathParameters: route.params.length ? pathParameters : null,
      stageVariables: null,
      body,
      isBase64Encoded: false,
      requestContext: {
        accountId: t.env.account,
        apiId: this.id,
        authorizer: options.claims ? { claims: options.claims } : null,
        protocol: 'HTTP/1.1',
        httpMethod: route.method,
        identity: { sourceIp: '127.0.0.1', userAgent: 'branch-spawner-rehearsal', ...options.identity } as APIGatewayProxyEvent['requestContext']['identity'],
        path: `/${this.stage}${path}`,
        stage: this.stage,
        requestId: randomUUID(),
        requestTimeEpoch: Date.now(),
        resourceId: route.pathTemplate,
        resourcePath: route.pathTemplate,
      },
    };
    try {
      // API Gateway answers 504 when its integration takes longer than it waits (the invocation goes on).
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), AWS_QUOTAS.apiGatewayIntegrationSeconds * 1000);
      });
      const invocation = fn.invoke(event);
      const result = await Promise.race([invocation, timedOut]).finally(() => clearTimeout(timer));
      if (result === 'timeout') {
        invocation.catch((error: unknown) => this.ctx.onError(error));
        return { statusCode: 504, headers: {}, body: JSON.stringify({ message: 'Endpoint request timed out' }) };
      }
      const answer = result as APIGatewayProxyResult;
      return { statusCode: answer.statusCode, headers: answer.headers ?? {}, body: answer.body };
    } catch (error) {
      this.ctx.onError(error);
      return { statusCode: 502, headers: {}, body: JSON.stringify({ message: 'Internal server error' }) };
    }
  }

  private routeOf(method: string, path: string): Route | undefined {
    return this.routes.find((r) => r.method === method.toUpperCase() && r.pattern.test(path));
  }
}

/** Each AWS_PROXY method of the template's REST API, with its path as a pattern and its authorization. */
function routesOf(t: RehearsalTemplate): Route[] {
  const resources = new Map(t.ofType('AWS::ApiGateway::Resource').map(([id, r]) => [id, r.Properties ?? {}]));
  const pathOf = (ref: unknown): string => {
    const v = ref as Record<string, any>;
    if (v?.['Fn::GetAtt']?.[1] === 'RootResourceId') return '';
    const id = v?.Ref as string;
    const r = resources.get(id);
    if (!r) throw new RehearsalError(`API resource ${JSON.stringify(ref)} not in the template`);
    return `${pathOf(r.ParentId)}/${r.PathPart}`;
  };
  return t.ofType('AWS::ApiGateway::Method').flatMap(([, m]) => {
    const p = m.Properties ?? {};
    if (p.HttpMethod === 'OPTIONS' || p.Integration?.Type !== 'AWS_PROXY') return [];
    const pathTemplate = pathOf(p.ResourceId) || '/';
    const uri = String(t.resolve(p.Integration.Uri));
    const functionArn = /functions\/(arn:[^/]+)\/invocations/.exec(uri)?.[1];
    if (!functionArn) return [];
    const params: string[] = [];
    const source = pathTemplate
      .split('/')
      .map((segment) => {
        const param = /^\{(.+)\}$/.exec(segment)?.[1];
        if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        params.push(param);
        return '([^/]+)';
      })
      .join('/');
    const authorizationType = String(p.AuthorizationType ?? 'NONE');
    const authorizer = p.AuthorizerId?.Ref ? t.resources[p.AuthorizerId.Ref] : undefined;
    const userPoolArns = ((t.resolve(authorizer?.Properties?.ProviderARNs ?? []) as unknown[]) ?? []).map(String);
    const scopes = ((p.AuthorizationScopes ?? []) as unknown[]).map(String);
    return [{ method: String(p.HttpMethod), pathTemplate, pattern: new RegExp(`^${source}/?$`), params, functionArn, authorizationType, userPoolArns, scopes }];
  });
}

/**
 * The stack's REST API, from the template: its stage, resources and AWS_PROXY methods with their
 * authorization, and a request through it as API Gateway serves one: a path or method the API
 * lacks is 403, a body over the payload cap 413 before anything runs, the integration's function
 * invoked with the proxy event once its resource policy allows API Gateway (else 500), 504 when
 * the function outlasts the integration timeout, 502 when it fails. Authentication happens in
 * front of this (api-gateway.ts): the caller's identity or claims come with the request.
 */
import type { APIGatewayProxyResult } from 'aws-lambda';
import { matchResource, restProxyEvent, type ProxyAuth, type ResourceMatch } from '../rest-proxy-event';
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
  functionArn: string;
}

export interface ApiRequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  /** Who API Gateway authenticated (an IAM caller's identity, a Cognito authorizer's claims). */
  identity?: ProxyAuth['identity'];
  claims?: ProxyAuth['claims'];
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
    return this.routeOf(method, path)?.route;
  }

  /** A request to the API (the path without the stage, e.g. `/runs`). */
  async request(method: string, path: string, options: ApiRequestOptions = {}): Promise<ApiAnswer> {
    const found = this.routeOf(method, path);
    if (!found) {
      // What API Gateway answers for a path or method it does not have.
      return { statusCode: 403, headers: {}, body: JSON.stringify({ message: 'Missing Authentication Token' }) };
    }
    const { route, match } = found;
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
    const headers = { 'content-type': 'application/json', 'user-agent': 'branch-spawner-rehearsal', ...options.headers };
    const request = {
      method: route.method,
      path,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      query: Object.fromEntries(Object.entries(options.query ?? {}).map(([k, v]) => [k, [v]])),
      body,
      sourceIp: '127.0.0.1',
    };
    const stage = { accountId: t.env.account, apiId: this.id, stage: this.stage, basePath: `/${this.stage}` };
    const event = restProxyEvent(request, stage, match, { identity: options.identity, ...(options.claims ? { claims: options.claims } : {}) });
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

  /** The resource the path reaches, as API Gateway picks it, then its method. */
  private routeOf(method: string, path: string): { route: Route; match: ResourceMatch } | undefined {
    const match = matchResource([...new Set(this.routes.map((r) => r.pathTemplate))], path);
    const route = match && this.routes.find((r) => r.pathTemplate === match.resource && r.method === method.toUpperCase());
    return route && { route, match };
  }
}

/** Each AWS_PROXY method of the template's REST API: its resource's path, its function and its authorization. */
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
    const authorizationType = String(p.AuthorizationType ?? 'NONE');
    const authorizer = p.AuthorizerId?.Ref ? t.resources[p.AuthorizerId.Ref] : undefined;
    const userPoolArns = ((t.resolve(authorizer?.Properties?.ProviderARNs ?? []) as unknown[]) ?? []).map(String);
    const scopes = ((p.AuthorizationScopes ?? []) as unknown[]).map(String);
    return [{ method: String(p.HttpMethod), pathTemplate, functionArn, authorizationType, userPoolArns, scopes }];
  });
}

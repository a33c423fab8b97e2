/**
 * api: the HTTP API (docs/openapi.yaml) behind API Gateway (REST proxy events). middy carries the
 * plumbing (body limit, JSON errors); the routes only parse, call a use case and answer.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { NotFoundError, PayloadTooLargeError, ValidationError } from '../../core/errors';
import { toStartRunInput, type AgentPolicy } from '../../core/run-request';
import {
  cancelRun,
  startRun,
  type SpawnerDeps,
} from '../../core/use-cases';
import { branchDetail, branchResult, describeRun, listRunBranchesPage, listTeamRunsPage, RUNS_PAGE, runTree, storedValue, TREE_PAGE } from '../../core/use-cases/queries';
import { TREE_FORMATS, type TreeFormat } from '../../core/tree';
import { pageLimit } from '../../core/page-cursor';
import { runEventsAfter } from '../../core/use-cases/run-events';
import { answerCallback } from '../../core/use-cases/suspend';
import type { Limits, Scope } from '../../core/model';
import { errorResponse, ForeignRequestError, json, MethodNotAllowedError, text } from './http-errors';
import { DEFAULT_MAX_BODY_BYTES } from '../lambda-environment';
import { randomUUID } from 'node:crypto';
import { idempotencyKeyHash, runIdFor } from '../messages';
import { createLogger, type Logger } from './logger';

export interface ApiConfig {
  policy: AgentPolicy;
  /**
   * The app clients (Cognito `client_id` of an access token, `aud` of an ID token) whose tokens
   * this API takes; a token of any other client of the pool is refused (403). Unset: no check
   * (IAM auth, dev).
   */
  audience?: readonly string[];
  /** Whether a team's callers may read and cancel each other's runs (default: each caller its own). */
  shareRuns?: boolean;
  /** The team of a request: from the authorizer, or the stack's own team. */
  teamOf(event: APIGatewayProxyEvent): string;
  maxBodyBytes?: number;
  limitMaxima?: Partial<Limits>;
}

/**
 * The API's methods as API Gateway has them: infra/ creates a resource for each path and an
 * AWS_PROXY method for each of these (a test holds the stack to this list), and `dev` names the
 * resource a request reached from it as API Gateway would.
 */
export const API_METHODS = [
  'GET /runs',
  'POST /runs',
  'GET /runs/{id}',
  'GET /runs/{id}/branches',
  'GET /runs/{id}/branches/{branchId}',
  'GET /runs/{id}/branches/{branchId}/result',
  'GET /runs/{id}/values/{ref}',
  'GET /runs/{id}/tree',
  'GET /runs/{id}/metrics',
  'POST /runs/{id}/cancel',
  'POST /runs/{id}/callbacks/{token}',
  'GET /runs/{id}/events',
] as const;

type Route = {
  method: string;
  pattern: RegExp;
  handle(event: APIGatewayProxyEvent, params: string[], team: string): Promise<APIGatewayProxyResult>;
};

function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const headers = event.headers ?? {};
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key ? headers[key] ?? undefined : undefined;
}

function parseBody(event: APIGatewayProxyEvent): unknown {
  return parseJson(event, 'the body must be a JSON scenario document');
}

function parseJson(event: APIGatewayProxyEvent, missing: string): unknown {
  if (!event.body) throw new ValidationError(missing, '(root)');
  const raw = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new ValidationError(`the body is not valid JSON: ${(error as Error).message}`, '(root)');
  }
}

const RUN_ID = '([A-Za-z0-9_-]{1,64})';
/** `root`, then `<parentId>.<index>`. */
const BRANCH_ID = '(root(?:\\.\\d{1,9}){0,100})';
/** The response header of a tree page that has a next one: its `cursor`. */
export const NEXT_CURSOR_HEADER = 'next-cursor';
/** Anything up to a path segment's end: the use case says what a malformed token is (400). */
const CALLBACK_TOKEN = '([^/]{1,1200})';
/** A value kept by reference: the SHA-256 of its content. */
const VALUE_REF = '([0-9a-f]{64})';

/**
 * The caller API Gateway authenticated: the Cognito user (`cognito:<sub>`) or the IAM principal's
 * ARN; undefined where nothing authenticates (dev).
 */
export function callerOf(event: APIGatewayProxyEvent): string | undefined {
  const claims = event.requestContext?.authorizer?.claims as Record<string, unknown> | undefined;
  if (typeof claims?.sub === 'string' && claims.sub) return `cognito:${claims.sub}`;
  const arn = event.requestContext?.identity?.userArn;
  return typeof arn === 'string' && arn ? arn : undefined;
}

/** Refuses a token of an app client that is not an audience of this API (403, as an authorizer's audience check). */
function checkAudience(event: APIGatewayProxyEvent, audience: readonly string[] | undefined): void {
  if (!audience?.length) return;
  const claims = (event.requestContext?.authorizer?.claims ?? {}) as Record<string, unknown>;
  const client = typeof claims.client_id === 'string' ? claims.client_id : typeof claims.aud === 'string' ? claims.aud : undefined;
  if (!client || !audience.includes(client)) {
    throw new ForeignRequestError(`the token's app client ${client ? `"${client}" ` : ''}is not an audience of this API`, 'Authorization');
  }
}

function routes(deps: SpawnerDeps, config: ApiConfig): Route[] {
  const scopeOf = (team: string, runId: string): Scope => ({ team, runId });
  // Another caller's run reads as missing (its id is not even confirmed), unless the team shares runs.
  const ownScope = async (event: APIGatewayProxyEvent, team: string, runId: string): Promise<Scope> => {
    const scope = scopeOf(team, runId);
    if (config.shareRuns) return scope;
    const run = await deps.store.getRun(scope);
    if (run?.owner !== undefined && run.owner !== callerOf(event)) throw new NotFoundError(`run ${runId} not found`);
    return scope;
  };
  return [
    {
      method: 'POST',
      pattern: /^\/runs\/?$/,
      async handle(event, _params, team) {
        const key = header(event, 'idempotency-key');
        if (key !== undefined && (key.length === 0 || key.length > 256)) {
          throw new ValidationError('Idempotency-Key must be 1 to 256 characters', 'Idempotency-Key');
        }
        const caller = callerOf(event);
        // A known caller's key maps to a random id kept apart (nothing about the id follows from the
        // key); without one (dev) the id is derived from the key.
        const id =
          key !== undefined && caller !== undefined
            ? await deps.store.claimRunId(team, idempotencyKeyHash(team, caller, key), randomUUID())
            : runIdFor(team, key, caller);
        const input = toStartRunInput(parseBody(event), { team, runId: id, policy: config.policy });
        const { runId, created } = await startRun(deps, { ...input, limitMaxima: config.limitMaxima, ...(caller ? { owner: caller } : {}) });
        return json(202, { runId, created });
      },
    },
    {
      method: 'GET',
      pattern: /^\/runs\/?$/,
      async handle(event, _params, team) {
        const query = event.queryStringParameters ?? {};
        // Each caller lists its own runs, unless the team shares them (as reads of one run).
        const owner = config.shareRuns ? undefined : callerOf(event);
        return json(200, await listTeamRunsPage(deps, team, { limit: pageLimit(query.limit, RUNS_PAGE), cursor: query.cursor, ...(owner ? { owner } : {}) }));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/?$`),
      async handle(event, [runId], team) {
        const { view } = await describeRun(deps, await ownScope(event, team, runId));
        return json(200, view);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/branches/?$`),
      async handle(event, [runId], team) {
        const query = event.queryStringParameters ?? {};
        const page = await listRunBranchesPage(deps, await ownScope(event, team, runId), { limit: pageLimit(query.limit), cursor: query.cursor });
        return json(200, { runId, ...page });
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/branches/${BRANCH_ID}/result/?$`),
      async handle(event, [runId, branchId], team) {
        return json(200, await branchResult(deps, await ownScope(event, team, runId), branchId));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/values/${VALUE_REF}/?$`),
      async handle(event, [runId, ref], team) {
        return json(200, await storedValue(deps, await ownScope(event, team, runId), ref));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/branches/${BRANCH_ID}/?$`),
      async handle(event, [runId, branchId], team) {
        return json(200, await branchDetail(deps, await ownScope(event, team, runId), branchId));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/tree/?$`),
      async handle(event, [runId], team) {
        const query = event.queryStringParameters ?? {};
        const format = (query.format ?? 'json') as TreeFormat;
        if (!TREE_FORMATS.includes(format)) {
          throw new ValidationError(`format must be one of ${TREE_FORMATS.join(', ')}`, 'format');
        }
        const page = { limit: pageLimit(query.limit, TREE_PAGE), cursor: query.cursor };
        const { tree, cursor } = await runTree(deps, await ownScope(event, team, runId), format, page);
        // More pages: the cursor in a header for every format, and for people a last line in the drawings.
        const more: Record<string, string> = cursor === null ? {} : { [NEXT_CURSOR_HEADER]: cursor };
        if (typeof tree !== 'string') return json(200, { runId, tree, cursor }, more);
        const note = cursor === null ? '' : `\n${format === 'mermaid' ? '%% ' : ''}… more branches: ask again with cursor=${cursor}`;
        return text(200, `${tree}${note}`, undefined, more);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/metrics/?$`),
      async handle(event, [runId], team) {
        const { view } = await describeRun(deps, await ownScope(event, team, runId));
        return json(200, view.metrics);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/runs/${RUN_ID}/events/?$`),
      async handle(event, [runId], team) {
        const query = event.queryStringParameters ?? {};
        const limit = query.limit === undefined ? undefined : Number(query.limit);
        if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new ValidationError('limit must be a positive integer', 'limit');
        // `cursor`, as on the list routes, or `after` (its first name).
        if (query.after !== undefined && query.cursor !== undefined && query.after !== query.cursor) throw new ValidationError('give after or cursor, not both', 'cursor');
        return json(200, await runEventsAfter(deps, await ownScope(event, team, runId), query.cursor ?? query.after, limit));
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/runs/${RUN_ID}/callbacks/${CALLBACK_TOKEN}/?$`),
      async handle(event, [runId, token], team) {
        const answer = parseJson(event, 'the body must be the answer, as JSON');
        return json(202, await answerCallback(deps, await ownScope(event, team, runId), token, answer));
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/runs/${RUN_ID}/cancel/?$`),
      async handle(event, [runId], team) {
        await cancelRun(deps, await ownScope(event, team, runId));
        return json(202, { runId, status: 'CANCELLED' });
      },
    },
  ];
}

/** middy middleware: refuses bodies over the limit before anything parses them. */
export function bodyLimit(maxBytes: number): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  return {
    before: (request) => {
      const body = request.event.body;
      if (!body) return;
      const size = request.event.isBase64Encoded ? Math.floor((body.length * 3) / 4) : Buffer.byteLength(body);
      if (size > maxBytes) {
        throw new PayloadTooLargeError(`the body is ${size} bytes; at most ${maxBytes} are accepted`, size, maxBytes);
      }
    },
  };
}

/** middy middleware: every error becomes a JSON answer; unexpected ones are logged, never shown. */
export function jsonErrors(logger: Logger): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  return {
    onError: (request) => {
      const response = errorResponse(request.error);
      if (response.statusCode >= 500) logger.error('request failed', { error: request.error as Error, path: request.event.path });
      request.response = response;
    },
  };
}

export function createApiHandler(deps: SpawnerDeps, config: ApiConfig, logger: Logger = createLogger('api')) {
  const table = routes(deps, config);
  const base = async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const path = event.path ?? '/';
    const matches = table.map((r) => ({ r, m: r.pattern.exec(path) })).filter((x) => x.m);
    if (matches.length === 0) throw new NotFoundError(`no route for ${path}`);
    const match = matches.find((x) => x.r.method === event.httpMethod);
    if (!match) throw new MethodNotAllowedError(`${event.httpMethod} is not allowed on ${path}`);
    checkAudience(event, config.audience);
    return match.r.handle(event, match.m!.slice(1), config.teamOf(event));
  };
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult>(base)
    .use(jsonErrors(logger))
    .use(bodyLimit(config.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES));
}

/** The one place where errors become HTTP status codes and JSON bodies. */
import type { APIGatewayProxyResult } from 'aws-lambda';
import {
  ConflictError,
  ForbiddenError,
  GoneError,
  InvalidAgentResponseError,
  LimitExceededError,
  NotFoundError,
  PayloadTooLargeError,
  ValidationError,
} from '../../core/errors';

export class MethodNotAllowedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MethodNotAllowedError';
  }
}

/** A request from a place the server does not serve (a foreign Origin or Host): 403. */
export class ForeignRequestError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'ForeignRequestError';
  }
}

/** A body whose Content-Type the route does not take: 415. */
export class UnsupportedMediaTypeError extends Error {
  readonly field = 'Content-Type';
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedMediaTypeError';
  }
}

const STATUS: [new (...args: any[]) => Error, number][] = [
  [ValidationError, 400],
  [InvalidAgentResponseError, 400],
  [LimitExceededError, 400],
  // A request asking for agents the deployment does not trust is a bad request.
  [ForbiddenError, 400],
  [ForeignRequestError, 403],
  [NotFoundError, 404],
  [MethodNotAllowedError, 405],
  [ConflictError, 409],
  [GoneError, 410],
  [PayloadTooLargeError, 413],
  [UnsupportedMediaTypeError, 415],
];

/** The error names the API answers with (docs/openapi.yaml lists the same): one per status class. */
export const API_ERROR_NAMES: readonly string[] = [...STATUS.map(([type]) => type.name), 'InternalError'];

function classify(error: unknown): { status: number; name: string } {
  for (const [type, status] of STATUS) if (error instanceof type) return { status, name: type.name };
  return { status: 500, name: 'InternalError' };
}

export function statusOf(error: unknown): number {
  return classify(error).status;
}

export function errorResponse(error: unknown): APIGatewayProxyResult {
  const { status, name } = classify(error);
  const e = error as Error;
  // Subclasses answer with the name of their status class (a ScenarioError is a ValidationError).
  const body =
    status === 500
      ? { error: name, message: 'the request could not be completed' }
      : { error: name, message: e.message, ...((e as ValidationError).field ? { field: (e as ValidationError).field } : {}) };
  return json(status, body);
}

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

export function text(statusCode: number, body: string, contentType = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': contentType, ...headers }, body };
}

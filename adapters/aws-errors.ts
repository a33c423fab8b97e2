/** What every adapter agrees on about AWS SDK errors: which are worth retrying, and their core form. */
import { BranchSpawnerError, TransientError } from '../core/errors';

const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'KmsThrottled',
  'KmsThrottlingException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'InternalException',
  'InternalServerError',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

export interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

export function sdkError(error: unknown): SdkErrorShape {
  return (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
}

/** Throttling, 5xx and network failures; `extraNames` adds a service's own retryable names. */
export function isTransientAwsError(error: unknown, extraNames: readonly string[] = []): boolean {
  const e = sdkError(error);
  const status = e.$metadata?.httpStatusCode ?? 0;
  const name = e.name ?? '';
  return (
    status >= 500 ||
    status === 429 ||
    e.$retryable !== undefined ||
    e.$fault === 'server' ||
    TRANSIENT_NAMES.has(name) ||
    extraNames.includes(name) ||
    TRANSIENT_CODES.has(e.code ?? '')
  );
}

/** TransientError for retryable failures, BranchSpawnerError otherwise; the SDK error is the cause. */
export function toCoreError(error: unknown, context: string, extraNames: readonly string[] = []): BranchSpawnerError {
  if (error instanceof BranchSpawnerError) return error;
  const e = sdkError(error);
  const message = `${context}: ${e.name ?? 'Error'}: ${e.message ?? String(error)}`;
  return isTransientAwsError(error, extraNames)
    ? new TransientError(message, { cause: error })
    : new BranchSpawnerError(message, { cause: error });
}

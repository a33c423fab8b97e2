/** The one place where DynamoDB SDK errors become core errors (the SDK error is kept as `cause`). */
import { BranchSpawnerError, ConflictError, PayloadTooLargeError, TransientError } from '../../core/errors';
import { MAX_ITEM_BYTES } from './item-codec';

const TRANSIENT_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'InternalServerError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'TransactionConflictException',
  'ReplicatedWriteConflictException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Translates an error thrown by a DynamoDB request made for `context` (e.g. "updateBranch root.3").
 * A failed condition becomes ConflictError: the store catches it and answers false/undefined, so
 * it never leaks to callers.
 */
export function mapDynamoError(error: unknown, context: string): BranchSpawnerError {
  if (error instanceof BranchSpawnerError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
  const name = e.name ?? 'Error';
  const detail = e.message ?? String(error);
  const message = `${context}: ${name}: ${detail}`;

  if (name === 'ConditionalCheckFailedException') return new ConflictError(message, { cause: error });
  if (name === 'ValidationException' && /item size|exceeded the maximum allowed size/i.test(detail)) {
    // The engine saw the whole item (e.g. an update on top of a big item); its size is only known to exceed the limit.
    const tooLarge = new PayloadTooLargeError(
      `${context}: ${detail}; items are limited to 400 KB`,
      MAX_ITEM_BYTES + 1,
      MAX_ITEM_BYTES,
    );
    // PayloadTooLargeError's constructor takes no options: attach the cause as Error would.
    Object.defineProperty(tooLarge, 'cause', { value: error, writable: true, configurable: true });
    return tooLarge;
  }
  const status = e.$metadata?.httpStatusCode ?? 0;
  if (
    TRANSIENT_NAMES.has(name) ||
    (e.code !== undefined && TRANSIENT_CODES.has(e.code)) ||
    e.$retryable ||
    e.$fault === 'server' ||
    status >= 500
  ) {
    return new TransientError(message, { cause: error });
  }
  return new BranchSpawnerError(message, { cause: error });
}

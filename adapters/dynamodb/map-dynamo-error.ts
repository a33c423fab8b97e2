/** The one place where DynamoDB SDK errors become core errors (the SDK error is kept as `cause`). */
import { BranchSpawnerError, ConflictError, PayloadTooLargeError, TransientError } from '../../core/errors';
import { isTransientAwsError, sdkError } from '../aws-errors';
import { MAX_ITEM_BYTES } from './item-codec';

// DynamoDB's own retryable names, on top of the ones every AWS service shares.
const DYNAMO_TRANSIENT = ['LimitExceededException', 'TransactionConflictException', 'ReplicatedWriteConflictException'];

/**
 * Translates an error thrown by a DynamoDB request made for `context` (e.g. "updateBranch root.3").
 * A failed condition becomes ConflictError: the store catches it and answers false/undefined, so
 * it never leaks to callers.
 */
export function mapDynamoError(error: unknown, context: string): BranchSpawnerError {
  if (error instanceof BranchSpawnerError) return error;
  const e = sdkError(error);
  const name = e.name ?? 'Error';
  const detail = e.message ?? String(error);
  const message = `${context}: ${name}: ${detail}`;

  if (name === 'ConditionalCheckFailedException') return new ConflictError(message, { cause: error });
  if (name === 'ValidationException' && /item size|exceeded the maximum allowed size/i.test(detail)) {
    // The engine saw the whole item (e.g. an update on top of a big item); its size is only known to exceed the limit.
    return new PayloadTooLargeError(`${context}: ${detail}; items are limited to 400 KB`, MAX_ITEM_BYTES + 1, MAX_ITEM_BYTES, {
      cause: error,
    });
  }
  if (isTransientAwsError(error, DYNAMO_TRANSIENT)) return new TransientError(message, { cause: error });
  return new BranchSpawnerError(message, { cause: error });
}

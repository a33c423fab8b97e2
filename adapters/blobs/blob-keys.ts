/**
 * What every BlobStore shares: a content's reference (its SHA-256, so a repeated put is the same
 * put) and where a run's contents live (one prefix per run: a run's expiry or deletion takes them
 * all, and no run can name another's contents).
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../core/errors';
import type { Scope } from '../../core/model';

const REF = /^[0-9a-f]{64}$/;

/** Where the S3 blob store keeps contents in its bucket (the bucket's expiry rule names it: infra/). */
export const S3_BLOB_PREFIX = 'blobs/';

/** The reference of a content: the hex SHA-256 of its UTF-8 bytes. */
export function blobRef(content: string): string {
  return createHash('sha256').update(content, 'utf8').digest('hex');
}

/** Refuses anything that is not a reference blobRef could have made (refs are also path parts). */
export function checkBlobRef(ref: string): string {
  if (typeof ref !== 'string' || !REF.test(ref)) throw new ValidationError(`not a blob reference: ${String(ref).slice(0, 80)}`, 'ref');
  return ref;
}

/**
 * A path-safe, bounded name for a team or run id: percent-encoded (so no `/`, `..` is prefixed),
 * or a hash when long (a file name is at most 255 bytes).
 */
function part(value: string): string {
  const encoded = encodeURIComponent(value);
  return encoded.length <= 100 ? `_${encoded}` : `h${createHash('sha256').update(value).digest('hex')}`;
}

/** The run's prefix: `<team>/<run>` (each part made safe). */
export function blobRunPrefix(scope: Scope): string {
  return `${part(scope.team)}/${part(scope.runId)}`;
}

/** Where a content lives: `<team>/<run>/<ref>`. */
export function blobKey(scope: Scope, ref: string): string {
  return `${blobRunPrefix(scope)}/${checkBlobRef(ref)}`;
}

/**
 * The BlobStore on S3: one object per content, `<prefix><team>/<run>/<ref>` in the team stack's
 * bucket (encrypted, private, expired with the run's TTL: infra/). A put answers once S3 has
 * stored the object (S3 writes are durable and strongly consistent), so the reference written
 * after it always names an object; a repeated put writes the same bytes under the same key (and
 * renews the object's age, so the bucket's expiry never takes a content an item newly refers to
 * before that item expires).
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { BlobStore, ValueLinks } from '../../core/ports';
import { toCoreError } from '../aws-errors';
import { blobKey, blobRef, S3_BLOB_PREFIX } from '../blobs/blob-keys';

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Put before every key (default `blobs/`): the bucket's lifecycle rule expires this prefix. */
  prefix?: string;
  /** How long a link answers (default 1 hour; a presigned URL also ends with the credentials that signed it). */
  linkSeconds?: number;
}

/** How long a value's link answers by default: well past the longest agent call (270 s). */
export const LINK_SECONDS = 3600;

export class S3BlobStore implements BlobStore, ValueLinks {
  private readonly prefix: string;

  constructor(private readonly options: S3BlobStoreOptions) {
    this.prefix = options.prefix ?? S3_BLOB_PREFIX;
  }

  async put(scope: Scope, content: string): Promise<string> {
    const ref = blobRef(content);
    const key = this.prefix + blobKey(scope, ref);
    // A Buffer with its length: the SDK knows the size up front (no streamed upload).
    const body = Buffer.from(content, 'utf8');
    try {
      await this.options.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key: key, Body: body, ContentLength: body.length, ContentType: 'application/json; charset=utf-8' }),
      );
    } catch (error) {
      throw toCoreError(error, `put blob ${key}`);
    }
    return ref;
  }

  /**
   * A large value for an agent (core/agent-request.ts): stored like any blob, and handed out as a
   * presigned GET, so the agent needs no grant on the bucket, only the URL, and only until it expires.
   */
  async link(scope: Scope, content: string): Promise<{ url: string; expiresAt: string }> {
    const ref = await this.put(scope, content);
    const seconds = this.options.linkSeconds ?? LINK_SECONDS;
    const expiresAt = new Date(Date.now() + seconds * 1000).toISOString();
    try {
      const url = await getSignedUrl(this.options.client, new GetObjectCommand({ Bucket: this.options.bucket, Key: this.prefix + blobKey(scope, ref) }), { expiresIn: seconds });
      return { url, expiresAt };
    } catch (error) {
      throw toCoreError(error, `presign blob ${ref}`);
    }
  }

  async get(scope: Scope, ref: string): Promise<string> {
    const key = this.prefix + blobKey(scope, ref);
    try {
      const output = await this.options.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return (await output.Body?.transformToString('utf-8')) ?? '';
    } catch (error) {
      const name = (error as { name?: string })?.name;
      if (name === 'NoSuchKey' || name === 'NotFound') throw new NotFoundError(`blob ${ref} of run ${scope.runId} is not stored`, { cause: error });
      throw toCoreError(error, `get blob ${key}`);
    }
  }
}

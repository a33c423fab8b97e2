/** The blob stores: memory, the data folder's files (journal tier) and S3 (the AWS SDK on fauxqs' S3 API). */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../adapters/blobs/memory-blob-store';
import { blobKey } from '../../adapters/blobs/blob-keys';
import { S3BlobStore } from '../../adapters/s3/s3-blob-store';
import { DiskBlobStore } from '../../local/engines/disk-blob-store';
import { FAUXQS_REGION, startFauxqs, type FauxqsEngine } from '../../local/engines/fauxqs-engine';
import { describeBlobStoreConformance, describeValueLinksConformance } from './blob-store-conformance';
import { LocalValueLinks } from '../../local/value-links';

const folders: string[] = [];
const folder = () => {
  const dir = mkdtempSync(join(tmpdir(), 'bs-blobs-'));
  folders.push(dir);
  return dir;
};
let fauxqs: FauxqsEngine | undefined;
let s3: S3Client | undefined;

afterAll(async () => {
  s3?.destroy();
  await fauxqs?.close();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describeBlobStoreConformance('MemoryBlobStore', () => new MemoryBlobStore());
describeBlobStoreConformance('DiskBlobStore', () => new DiskBlobStore(folder()));
describeBlobStoreConformance('DiskBlobStore with fsync', () => new DiskBlobStore(folder(), { fsync: true }));
const bucket = 'branch-spawner-blobs';
/** fauxqs' S3 with the blob bucket, started once for the S3 suites. */
async function fauxqsS3(): Promise<S3Client> {
  if (!s3) {
    fauxqs = await startFauxqs();
    s3 = new S3Client({
      endpoint: fauxqs.endpoint,
      region: FAUXQS_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
  return s3;
}
describeBlobStoreConformance('S3BlobStore on fauxqs (AWS SDK S3 client over HTTP)', async () => new S3BlobStore({ client: await fauxqsS3(), bucket }));

const valueLinks: LocalValueLinks[] = [];
afterAll(async () => {
  for (const links of valueLinks) await links.close();
});
describeValueLinksConformance('S3BlobStore (presigned GETs) on fauxqs', async ({ linkSeconds }) => new S3BlobStore({ client: await fauxqsS3(), bucket, linkSeconds }));
describeValueLinksConformance('LocalValueLinks over the data folder', ({ linkSeconds }) => {
  const links = new LocalValueLinks(new DiskBlobStore(folder()), { linkSeconds });
  valueLinks.push(links);
  return links;
});

describe('LocalValueLinks', () => {
  it('a link answers until it expires, then 404; the server closes with the links', async () => {
    let now = Date.parse('2026-12-07T12:00:00Z');
    const links = new LocalValueLinks(new MemoryBlobStore(), { linkSeconds: 60, now: () => now });
    valueLinks.push(links);
    const { url, expiresAt } = await links.link({ team: 't', runId: 'r' }, '{"v":1}');
    expect(expiresAt).toBe('2026-12-07T12:01:00.000Z');
    expect(await (await fetch(url)).json()).toEqual({ v: 1 });
    expect((await fetch(url, { method: 'POST' })).status).toBe(405);
    now += 60_000;
    const expired = await fetch(url);
    expect(expired.status).toBe(404);
    expect(await expired.text()).toBe('this link has expired\n');
    await links.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});

describe('DiskBlobStore', () => {
  it('keeps contents across a reopen, and removes the temp files of puts a killed process never finished', async () => {
    const dir = folder();
    const run = { team: 't', runId: 'r' };
    const ref = await new DiskBlobStore(dir).put(run, 'kept');
    // What a process killed between its write and its rename leaves: a temp file, never a reference to it.
    const temp = `${join(dir, blobKey(run, 'b'.repeat(64)))}.123-0.tmp`;
    mkdirSync(join(dir, blobKey(run, ref), '..'), { recursive: true });
    writeFileSync(temp, 'half');
    const reopened = new DiskBlobStore(dir);
    expect(await reopened.get(run, ref)).toBe('kept');
    expect(existsSync(temp)).toBe(false);
    expect(readdirSync(join(dir, blobKey(run, ref), '..'))).toEqual([ref]);
  });
});

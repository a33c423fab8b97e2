/**
 * The BlobStore contract, run against every implementation (memory, the data folder's files, S3
 * through the AWS SDK on fauxqs' S3 API).
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { BlobStore, ValueLinks } from '../../core/ports';

export type BlobStoreFactory = () => BlobStore | Promise<BlobStore>;

const scope = (team = 'team-a'): Scope => ({ team, runId: `run-${randomUUID().slice(0, 8)}` });

export function describeBlobStoreConformance(name: string, factory: BlobStoreFactory): void {
  describe(`BlobStore conformance: ${name}`, () => {
    let blobs: BlobStore;
    beforeAll(async () => {
      blobs = await factory();
    });

    it('gives back exactly what was put (unicode, empty, several MB)', async () => {
      const run = scope();
      for (const content of ['{"v":1}', '', 'Grüße 🌍 中文 \u2028 "quoted" \\ \u0000 end', JSON.stringify({ text: 'x'.repeat(5 * 1024 * 1024) })]) {
        const ref = await blobs.put(run, content);
        expect(await blobs.get(run, ref)).toBe(content);
      }
    });

    it('keeps a 20 MB value whole (the aggregate of 10,000 children answering 2 KB each)', async () => {
      const run = scope();
      const content = JSON.stringify({ child_count: 10_000, results: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`root.${i}`, 'x'.repeat(2_000)])) });
      expect(content.length).toBeGreaterThan(20_000_000);
      const ref = await blobs.put(run, content);
      expect(await blobs.get(run, ref)).toBe(content);
    });

    it('is content-addressed: the same content has the same reference, and putting it again changes nothing', async () => {
      const run = scope();
      const content = JSON.stringify({ a: 1, b: 'two' });
      const refs = await Promise.all(Array.from({ length: 8 }, () => blobs.put(run, content)));
      expect(new Set(refs).size).toBe(1);
      expect(refs[0]).toMatch(/^[0-9a-f]{64}$/);
      expect(await blobs.put(run, content)).toBe(refs[0]);
      expect(await blobs.put(run, `${content} `)).not.toBe(refs[0]);
      expect(await blobs.get(run, refs[0])).toBe(content);
    });

    it("keeps each run's contents to that run (a reference read in another run or team is not there)", async () => {
      const run = scope();
      const ref = await blobs.put(run, 'ours');
      await expect(blobs.get({ ...run, runId: `${run.runId}-other` }, ref)).rejects.toBeInstanceOf(NotFoundError);
      await expect(blobs.get({ ...run, team: 'team-b' }, ref)).rejects.toBeInstanceOf(NotFoundError);
      // Ids that would be paths stay names.
      const odd = { team: '../..', runId: 'a/b%2F..' };
      const oddRef = await blobs.put(odd, 'odd');
      expect(await blobs.get(odd, oddRef)).toBe('odd');
      await expect(blobs.get({ team: '..', runId: '..' }, oddRef)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('answers NotFoundError for a reference never put, and ValidationError for one it could not have made', async () => {
      const run = scope();
      await expect(blobs.get(run, 'a'.repeat(64))).rejects.toBeInstanceOf(NotFoundError);
      for (const bad of ['../../etc/passwd', 'A'.repeat(64), '', 'a'.repeat(63)]) {
        await expect(blobs.get(run, bad)).rejects.toBeInstanceOf(ValidationError);
      }
    });
  });
}

export type ValueLinksFactory = (options: { linkSeconds: number }) => ValueLinks | Promise<ValueLinks>;


/** The ValueLinks contract (core/agent-request.ts): a link is a URL that a plain GET reads the value from, until it expires. */
export function describeValueLinksConformance(name: string, factory: ValueLinksFactory): void {
  describe(`ValueLinks conformance: ${name}`, () => {
    it('answers a URL that a plain GET (no credentials) reads the whole value from, with its expiry', async () => {
      const links = await factory({ linkSeconds: 600 });
      const run = scope();
      const value = JSON.stringify({ child_count: 2, results: { a: 'Grüße 🌍', b: 'x'.repeat(3 * 1024 * 1024) } });
      const before = Date.now();
      const { url, expiresAt } = await links.link(run, value);
      expect(url).toMatch(/^https?:\/\//);
      expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(before + 590_000);
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(value);
      // The same value linked twice: two links, one stored content.
      const again = await links.link(run, value);
      expect(await (await fetch(again.url)).text()).toBe(value);
    });

    it('a URL it never made answers nothing', async () => {
      const links = await factory({ linkSeconds: 600 });
      const { url } = await links.link(scope(), '{"v":1}');
      const forged = new URL(url);
      forged.pathname = forged.pathname.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'));
      expect((await fetch(forged)).status).toBeGreaterThanOrEqual(400);
    });
  });
}

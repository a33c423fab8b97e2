/** The reference BlobStore: contents in a map, gone with the process (the memory tier's). */
import { NotFoundError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { BlobStore } from '../../core/ports';
import { blobKey, blobRef } from './blob-keys';

export class MemoryBlobStore implements BlobStore {
  private readonly contents = new Map<string, string>();

  async put(scope: Scope, content: string): Promise<string> {
    const ref = blobRef(content);
    this.contents.set(blobKey(scope, ref), content);
    return ref;
  }

  async get(scope: Scope, ref: string): Promise<string> {
    const content = this.contents.get(blobKey(scope, ref));
    if (content === undefined) throw new NotFoundError(`blob ${ref} of run ${scope.runId} is not stored`);
    return content;
  }

  /** How many contents are kept (tests). */
  get size(): number {
    return this.contents.size;
  }
}

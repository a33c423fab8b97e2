/**
 * The journal tier's BlobStore: one file per content under `<dataDir>/blobs/<team>/<run>/<ref>`.
 * A put writes a temp file and renames it into place, so a file under its final name is always
 * whole (a process killed mid-write leaves only a temp file, removed on open); with `fsync` the
 * file and its folder are flushed first, as the journal's own appends are. Content-addressed: a
 * file already there is the same content, and is not written again.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DataFolderError, describeThrown, diskRefusal, NotFoundError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { BlobStore } from '../../core/ports';
import { blobKey, blobRef } from '../../adapters/blobs/blob-keys';

export const BLOBS_FOLDER = 'blobs';
const TEMP_SUFFIX = '.tmp';

export interface DiskBlobStoreOptions {
  /** Flush each content (and its folder entry) to the disk before put returns. */
  fsync?: boolean;
  /** Told when the disk refuses a put (full, read-only): retrying will not help. */
  onFailure?(error: DataFolderError): void;
}

export class DiskBlobStore implements BlobStore {
  private temps = 0;

  constructor(
    readonly folder: string,
    private readonly options: DiskBlobStoreOptions = {},
  ) {
    mkdirSync(folder, { recursive: true });
    removeTemps(folder);
  }

  async put(scope: Scope, content: string): Promise<string> {
    const ref = blobRef(content);
    const file = join(this.folder, blobKey(scope, ref));
    if (existsSync(file)) return ref;
    const folder = dirname(file);
    mkdirSync(folder, { recursive: true });
    const temp = `${file}.${process.pid}-${this.temps++}${TEMP_SUFFIX}`;
    try {
      const fd = openSync(temp, 'w');
      try {
        writeSync(fd, content);
        if (this.options.fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, file);
      if (this.options.fsync) syncFolder(folder);
    } catch (error) {
      rmSync(temp, { force: true });
      const code = diskRefusal(error);
      if (!code) throw error;
      const failure = new DataFolderError(`could not write ${file}: ${describeThrown(error)}`, code, { cause: error });
      this.options.onFailure?.(failure);
      throw failure;
    }
    return ref;
  }

  async get(scope: Scope, ref: string): Promise<string> {
    const file = join(this.folder, blobKey(scope, ref));
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`blob ${ref} of run ${scope.runId} is not stored`, { cause: error });
      }
      throw error;
    }
  }
}

function syncFolder(folder: string): void {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Temp files of puts a killed process never renamed (their references were never written). */
function removeTemps(folder: string): void {
  for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith(TEMP_SUFFIX)) rmSync(join(entry.parentPath, entry.name), { force: true });
  }
}

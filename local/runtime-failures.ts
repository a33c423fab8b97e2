/**
 * The local runtime's errors: each kept once (a failure that repeats is one error, and the list
 * stays bounded), and the data folder's failure, which stops the work and ends every wait for a
 * run: retrying cannot fix a full disk.
 */
import { DataFolderError, describeThrown, diskRefusal, errorMessage } from '../core/errors';

/** Different errors kept at most (each message once). */
const MAX_KEPT_ERRORS = 1000;

export class RuntimeFailures {
  readonly errors: unknown[] = [];
  private fatalError: DataFolderError | undefined;
  private readonly onFatal = new Set<(error: DataFolderError) => void>();
  /** Messages of the errors kept so far. */
  private readonly reported = new Set<string>();

  /** Set when the data folder fails (a full or read-only disk, a damaged journal): nothing more can be kept. */
  get fatal(): DataFolderError | undefined {
    return this.fatalError;
  }

  /** Keeps an error, once per message; a data folder's failure also becomes `fatal` and rejects every watch. */
  report(error: unknown): void {
    const folder = dataFolderErrorOf(error);
    if (folder) {
      if (this.fatalError) return; // told already
      this.fatalError = folder;
      for (const reject of this.onFatal) reject(folder);
      this.onFatal.clear();
    }
    const message = errorMessage(error);
    if (this.reported.has(message) || this.reported.size >= MAX_KEPT_ERRORS) return;
    this.reported.add(message);
    this.errors.push(error);
  }

  /** Runs `body` with a promise that rejects when the data folder has failed or fails meanwhile (race a wait with it). */
  async watching<T>(body: (failed: Promise<never>) => Promise<T>): Promise<T> {
    let listener: ((error: DataFolderError) => void) | undefined;
    const failed = new Promise<never>((_resolve, reject) => {
      listener = reject;
      if (this.fatalError) reject(this.fatalError);
      else this.onFatal.add(reject);
    });
    failed.catch(() => undefined);
    try {
      return await body(failed);
    } finally {
      this.onFatal.delete(listener!);
    }
  }
}

/** The data folder's failure this error is, or comes from (a disk refusing a write counts). */
function dataFolderErrorOf(error: unknown): DataFolderError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DataFolderError) return e;
    const code = diskRefusal(e);
    if (code) return new DataFolderError(`the data folder refused a write: ${describeThrown(e)}`, code, { cause: e });
  }
  return undefined;
}

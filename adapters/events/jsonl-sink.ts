/**
 * A LocalEventBus subscriber that appends each lifecycle event as one JSON line to a file
 * (`run --trace <file.jsonl>`). Writes are queued so lines keep the order events were published
 * in, even though each write is asynchronous.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BranchSpawnerError } from '../../core/errors';
import type { LifecycleEvent } from '../../core/events';

export class JsonlSink {
  private handle: Promise<FileHandle> | undefined;
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown;
  private closed = false;
  /** Pass to `bus.subscribe(sink.subscriber)`. */
  readonly subscriber = (event: LifecycleEvent): Promise<void> => this.write(event);

  constructor(readonly path: string) {}

  /** Opens (creates) the file now, so a path that cannot be written is known before any event. */
  async open(): Promise<void> {
    await this.file();
  }

  /** Appends the event as one line; resolves once the line is handed to the OS. */
  write(event: LifecycleEvent): Promise<void> {
    if (this.closed) return Promise.reject(new BranchSpawnerError(`trace file ${this.path} is closed`));
    const line = `${JSON.stringify(event)}\n`;
    const written = this.tail.then(async () => {
      const handle = await this.file();
      await handle.appendFile(line, 'utf8');
    });
    // The queue goes on after a failed write; the failure is kept for flush().
    this.tail = written.catch((error: unknown) => {
      this.failure ??= error;
    });
    return written;
  }

  /** Resolves when every line written so far is in the file; rejects if one of them failed. */
  async flush(): Promise<void> {
    await this.tail;
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw new BranchSpawnerError(`writing trace file ${this.path} failed`, { cause: failure });
    }
  }

  /** Flushes and closes the file; later writes are refused. Closing twice is fine. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
    } finally {
      const handle = this.handle;
      this.handle = undefined;
      if (handle) await handle.then((h) => h.close(), () => undefined);
    }
  }

  private file(): Promise<FileHandle> {
    this.handle ??= (async () => {
      await mkdir(dirname(this.path), { recursive: true });
      return open(this.path, 'a');
    })();
    return this.handle;
  }
}

/**
 * An append-only journal file: one JSON line per change, written to the file before the call
 * that made the change returns, replayed in order when the file is opened again. It knows
 * nothing of what it keeps: each part (the table, the queues) registers under a name, appends its
 * own records and says how to replay them and how to write its whole state as records.
 *
 * Durability: each append is one `write(2)` on the file, done synchronously. Once it returns the
 * change is in the operating system's file cache, so it survives the process being killed (even
 * with `kill -9`) at any moment; without `fsync` it does not survive an OS crash or power loss
 * (the last writes may be missing then). With `fsync` each append is also flushed to the disk
 * before returning (much slower).
 *
 * A line cut short by a process killed while writing it is ignored on replay (its call never
 * returned); any other unreadable line is refused. Compaction rewrites the file as the parts'
 * state (a temp file, flushed, then renamed over the journal, so a crash leaves either file
 * whole): on every open, and when the journal grows far beyond what the last compaction wrote.
 */
import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { BranchSpawnerError, DataFolderError, describeThrown, diskRefusal } from '../../core/errors';

/** One kind of state kept in the journal. */
export interface JournalPart {
  /** Applies one record read back from the file, in the order it was written. */
  replay(record: unknown): void;
  /** Records that rebuild the whole current state (compaction). */
  snapshot(): Iterable<unknown>;
  /** Called once the whole file was replayed (before the compaction that follows). */
  replayed?(): void;
}

export interface JournalOptions {
  /** Flush each append to the disk before returning (survives an OS crash, not only the process). */
  fsync?: boolean;
  /** Compact when the journal is this many times the size of the last compaction (default 4)... */
  growthFactor?: number;
  /** ...and at least this many bytes (default 64 MB). */
  minCompactBytes?: number;
  /** The write(2) of the journal, appends and compactions (default fs.writeSync); tests give one that fails as a full disk does. */
  write?: (fd: number, buffer: Uint8Array, offset: number, length: number) => number;
  /** Told once when an append fails (the journal refuses every later one): the runtime stops its work. */
  onFailure?(error: DataFolderError): void;
}

const CHUNK = 4 * 1024 * 1024;

export class Journal {
  private readonly parts = new Map<string, JournalPart>();
  private fd: number | undefined;
  private bytes = 0;
  private compactedBytes = 0;
  private compactionDue = false;
  private failed: unknown;
  private readonly growthFactor: number;
  private readonly minCompactBytes: number;

  constructor(
    readonly file: string,
    private readonly options: JournalOptions = {},
  ) {
    this.growthFactor = options.growthFactor ?? 4;
    this.minCompactBytes = options.minCompactBytes ?? 64 * 1024 * 1024;
  }

  /** Registers a part before open; the appender it answers writes its records (as `[name, record]` lines) in one write. */
  register(name: string, part: JournalPart): (...records: unknown[]) => void {
    if (this.fd !== undefined) throw new BranchSpawnerError(`journal part ${name} registered after the journal was opened`);
    this.parts.set(name, part);
    return (...records) => this.append(...records.map((record) => [name, record]));
  }

  /**
   * Replays the file into the registered parts (if it exists), then compacts it and opens it for
   * appending. A damaged journal, or a folder the disk refuses to write (full, read-only), is a
   * DataFolderError naming the file.
   */
  open(): void {
    try {
      const temp = `${this.file}.tmp`;
      // A compaction that died before its rename: the journal itself is whole.
      if (existsSync(temp)) unlinkSync(temp);
      if (existsSync(this.file)) this.replay();
      for (const part of this.parts.values()) part.replayed?.();
      this.compact();
    } catch (error) {
      if (error instanceof DataFolderError) throw error;
      const code = diskRefusal(error);
      if (!code) throw error;
      throw new DataFolderError(`could not open the journal ${this.file}: ${describeThrown(error)}`, code, { cause: error });
    }
  }

  /**
   * Appends entries (`[name, record]`) as one write: on the file when this returns. Callers
   * append before they change their state, in the same synchronous step, so a failed write
   * changes nothing.
   */
  append(...entries: unknown[]): void {
    if (this.failed) {
      throw new DataFolderError(`could not write the journal ${this.file} earlier (${describeThrown(this.failed)}); nothing more is kept`, diskRefusal(this.failed), {
        cause: this.failed,
      });
    }
    if (this.fd === undefined) throw new BranchSpawnerError('the journal is not open');
    let text = '';
    for (const entry of entries) text += `${JSON.stringify(entry)}\n`;
    const buffer = Buffer.from(text, 'utf8');
    try {
      let written = 0;
      const write = this.options.write ?? writeSync;
      while (written < buffer.length) written += write(this.fd, buffer, written, buffer.length - written);
      if (this.options.fsync) fsyncSync(this.fd);
    } catch (error) {
      // A partial line may be on the file now: a later line would be glued to it. Refuse from here.
      this.failed = error;
      const failure = new DataFolderError(`could not write the journal ${this.file}: ${describeThrown(error)}`, diskRefusal(error), { cause: error });
      this.options.onFailure?.(failure);
      throw failure;
    }
    this.bytes += buffer.length;
    if (!this.compactionDue && this.bytes > Math.max(this.minCompactBytes, this.compactedBytes * this.growthFactor)) {
      // Not now: the caller changes its state after this returns, and a snapshot must include it.
      this.compactionDue = true;
      setImmediate(() => {
        this.compactionDue = false;
        if (this.fd === undefined || this.failed) return;
        try {
          this.compact();
        } catch {
          // The journal is still whole and still appended to; the next threshold tries again.
          rmSync(`${this.file}.tmp`, { force: true });
          this.compactedBytes = this.bytes;
        }
      });
    }
  }

  /**
   * Rewrites the journal as the parts' current state: written to a temp file, flushed, renamed
   * over the journal (atomic), then appended to from there.
   */
  compact(): void {
    const temp = `${this.file}.tmp`;
    const fd = openSync(temp, 'w');
    const write = this.options.write ?? writeSync;
    let size = 0;
    try {
      let pending: string[] = [];
      let pendingBytes = 0;
      const flush = () => {
        const buffer = Buffer.from(pending.join(''), 'utf8');
        let written = 0;
        while (written < buffer.length) written += write(fd, buffer, written, buffer.length - written);
        size += buffer.length;
        pending = [];
        pendingBytes = 0;
      };
      for (const [name, part] of this.parts) {
        for (const record of part.snapshot()) {
          const line = `${JSON.stringify([name, record])}\n`;
          pending.push(line);
          pendingBytes += line.length;
          if (pendingBytes >= CHUNK) flush();
        }
      }
      flush();
      fsyncSync(fd);
    } catch (error) {
      // The journal is still whole; the half-written copy would only hold space (a full disk's).
      closeSync(fd);
      rmSync(temp, { force: true });
      throw error;
    }
    closeSync(fd);
    renameSync(temp, this.file);
    syncFolder(dirname(this.file));
    const previous = this.fd;
    this.fd = openSync(this.file, 'a');
    if (previous !== undefined) closeSync(previous);
    this.bytes = size;
    this.compactedBytes = size;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }

  private replay(): void {
    const fd = openSync(this.file, 'r');
    const chunk = Buffer.alloc(CHUNK);
    let rest = Buffer.alloc(0);
    let lineNo = 0;
    try {
      for (;;) {
        const n = readSync(fd, chunk, 0, CHUNK, null);
        if (n === 0) break;
        let data = rest.length ? Buffer.concat([rest, chunk.subarray(0, n)]) : chunk.subarray(0, n);
        let start = 0;
        for (let end = data.indexOf(10, start); end !== -1; end = data.indexOf(10, start)) {
          lineNo++;
          this.apply(data.toString('utf8', start, end), lineNo);
          start = end + 1;
        }
        // Copied: `chunk` is reused by the next read.
        rest = Buffer.from(data.subarray(start));
        data = rest;
      }
    } finally {
      closeSync(fd);
    }
    // `rest` is a last line without its newline: a write cut short by a killed process (its call
    // never returned). It is dropped; the compaction that follows removes it from the file.
  }

  private apply(line: string, lineNo: number): void {
    if (!line) return;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch (error) {
      throw new DataFolderError(`${this.file}: line ${lineNo} is not readable (the journal is damaged)`, undefined, { cause: error });
    }
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') {
      throw new DataFolderError(`${this.file}: line ${lineNo} is not a journal entry (the journal is damaged)`);
    }
    const part = this.parts.get(entry[0]);
    if (!part) throw new DataFolderError(`${this.file}: line ${lineNo} belongs to an unknown part "${entry[0]}" (the journal is damaged)`);
    part.replay(entry[1]);
  }
}

/** Makes a rename in `folder` durable (where the platform allows opening a folder). */
function syncFolder(folder: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(folder, 'r');
    fsyncSync(fd);
  } catch {
    // Not supported here (e.g. Windows): the rename is still atomic for the process.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

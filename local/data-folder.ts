/**
 * A `--data` folder belongs to one process at a time: the engines keep files there (the journal
 * tier's journal; the engines tier's LevelDB and SQLite) that a second process would corrupt or
 * crash on. The
 * holder writes its pid to `<dir>/branch-spawner.lock`; another process finds it and refuses,
 * naming that pid. A lock whose process is gone (killed with `kill -9`) is taken over.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { InUseError, ValidationError } from '../core/errors';

export const LOCK_FILE = 'branch-spawner.lock';
/** The journal tier's state: the table and the queues, one change per line. */
export const JOURNAL_FILE = 'journal.jsonl';
/** What the engines keep in a data folder: the journal, or the engines tier's table and queues. */
const DATA_ENTRIES = [JOURNAL_FILE, 'dynamodb', 'sqs'];

export interface DataFolderLock {
  /** Gives the folder up (idempotent). */
  release(): void;
}

/** Takes the folder for this process, creating it if needed; InUseError if a live process holds it. */
export function lockDataFolder(dir: string): DataFolderLock {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  // Two tries: the second after removing a lock its dead holder left behind.
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(file);
      if (holder !== undefined && isAlive(holder)) {
        const who = holder === process.pid ? `pid ${holder} (this process)` : `pid ${holder}`;
        throw new InUseError(`the data folder is in use by ${who} (${dir}); stop it or use another --data folder`, holder);
      }
      removeIfStill(file, holder);
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        removeIfStill(file, process.pid);
      },
    };
  }
  throw new InUseError(`the data folder ${dir} is being taken by another process at the same moment; try again`, -1);
}

/**
 * For commands that work on state a run kept (redrive, resume): refuses a folder that does not
 * exist or holds no such state, instead of creating an empty one.
 */
export function requireDataFolder(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ValidationError(`no data folder ${dir} (give the folder a run kept its state in: run --data <dir>)`, '--data');
  }
  if (!DATA_ENTRIES.some((entry) => existsSync(join(dir, entry)))) {
    throw new ValidationError(`${dir} is not a data folder: no state kept by run --data in it`, '--data');
  }
}

function readHolder(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the lock only if it still names `holder` (not one another process just took). */
function removeIfStill(file: string, holder: number | undefined): void {
  if (readHolder(file) !== holder) return;
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/**
 * A `--data` folder belongs to one process at a time: the engines keep files there (the journal
 * tier's journal; the engines tier's LevelDB and SQLite) that a second process would corrupt or
 * crash on. The
 * holder writes its pid to `<dir>/branch-spawner.lock`; another process finds it and refuses,
 * naming that pid. A lock whose process is gone (killed with `kill -9`) is taken over.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
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
  refuseNonFolder(dir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  // A few tries: after taking over a lock its dead holder left behind, or while another process
  // is taking it over (it then holds the folder, or it died and its claim is cleared).
  for (let attempt = 0; attempt < 4; attempt++) {
    if (createHolding(file, process.pid)) {
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          removeIfStill(file, process.pid);
        },
      };
    }
    const holder = readHolder(file);
    if (holder !== undefined && isAlive(holder)) {
      const who = holder === process.pid ? `pid ${holder} (this process)` : `pid ${holder}`;
      throw new InUseError(`the data folder is in use by ${who} (${dir}); stop it or use another --data folder`, holder);
    }
    if (existsSync(file)) takeOver(file, holder);
  }
  throw new InUseError(`the data folder ${dir} is being taken by another process at the same moment; try again`, -1);
}

/**
 * Creates `file` holding `pid`, only if it does not exist. Written whole before it appears (a
 * hard link of a finished temporary file), so no one ever reads a lock half-written: an empty
 * lock read as "no holder" would be removed while its process lives.
 */
function createHolding(file: string, pid: number): boolean {
  const temporary = `${file}.${pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(temporary, `${pid}\n`);
  try {
    linkSync(temporary, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    unlinkSync(temporary);
  }
}

/**
 * Removes a lock whose holder is dead, as one process only. Two processes that both read the
 * dead pid would otherwise both remove "the" lock — the second one removing the lock the first
 * had just created. So the remover first takes a claim on this very dead holder (created
 * exclusively, naming the claimer); the loser leaves the lock alone and looks again. While the
 * claim is held, only its holder may remove the lock, so the lock it reads is the lock it removes.
 * A claim whose claimer died (killed mid-takeover) is cleared the same way, one level up.
 */
function takeOver(file: string, dead: number | undefined, depth = 0): void {
  const claim = `${file}.takeover-${dead ?? 'unknown'}`;
  if (!createHolding(claim, process.pid)) {
    const claimer = readHolder(claim);
    if (depth < 2 && (claimer === undefined || !isAlive(claimer)) && existsSync(claim)) takeOver(claim, claimer, depth + 1);
    return;
  }
  try {
    if (readHolder(file) === dead) unlinkOrGone(file);
  } finally {
    unlinkOrGone(claim);
  }
}

/**
 * For commands that work on state a run kept (redrive, resume): refuses a folder that does not
 * exist or holds no such state, instead of creating an empty one (the CLI answers exit 2).
 */
export function requireDataFolder(command: string, dir: string): void {
  refuseNonFolder(dir);
  if (!existsSync(dir)) {
    throw new ValidationError(`${command}: no data folder ${dir} (give the folder a run kept its state in: run --data <dir>)`, '--data');
  }
  if (!DATA_ENTRIES.some((entry) => existsSync(join(dir, entry)))) {
    throw new ValidationError(`${command}: ${dir} is not a data folder: no state kept by run --data in it`, '--data');
  }
}

/** `--data` must name a folder (or where one may be made): a file there is refused, naming the option. */
function refuseNonFolder(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new ValidationError(`--data ${dir}: is a file, not a folder (give a folder for the run's state)`, '--data');
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

/** Removes the lock only if it still names `holder` (its own lock, on release). */
function removeIfStill(file: string, holder: number | undefined): void {
  if (readHolder(file) === holder) unlinkOrGone(file);
}

function unlinkOrGone(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/**
 * A `--data` folder belongs to one process at a time: the engines keep files there (the journal
 * tier's journal; the engines tier's LevelDB and SQLite) that a second process would corrupt or
 * crash on. The
 * holder writes its pid to `<dir>/branch-spawner.lock` (with, where /proc tells them, the boot,
 * its PID namespace and its start time); another process finds it and refuses, naming that pid.
 * A lock whose holder is gone is taken over: its process died (`kill -9`), or the lock was
 * written in another boot or another PID namespace (a container restarted), or its pid now
 * belongs to another process (reused: a different start time), or it names this very process,
 * which does not hold the folder (a container restarted with the same pid).
 */
import { existsSync, linkSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataFolderError, describeThrown, diskRefusal, InUseError, ValidationError } from '../core/errors';

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
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    // A file where a folder of the path should be, no permission: bad input naming the option.
    const code = (error as NodeJS.ErrnoException).code;
    throw new ValidationError(`--data ${dir}: the folder cannot be made (${code === 'ENOTDIR' || code === 'EEXIST' ? 'a part of the path is a file' : code})`, '--data', { cause: error });
  }
  const file = join(dir, LOCK_FILE);
  // A few tries: after taking over a lock its dead holder left behind, or while another process
  // is taking it over (it then holds the folder, or it died and its claim is cleared).
  const key = realpathSync(dir);
  for (let attempt = 0; attempt < 4; attempt++) {
    if (holdOrRefuse(dir, file)) {
      let released = false;
      heldHere.add(key);
      return {
        release() {
          if (released) return;
          released = true;
          heldHere.delete(key);
          removeIfStill(file, process.pid);
        },
      };
    }
    const holder = readHolder(file);
    if (holder !== undefined && holderLives(holder, heldHere.has(key))) {
      const who = holder.pid === process.pid ? `pid ${holder.pid} (this process)` : `pid ${holder.pid}`;
      throw new InUseError(`the data folder is in use by ${who} (${dir}); stop it or use another --data folder`, holder.pid);
    }
    if (existsSync(file)) takeOver(file, holder?.pid);
  }
  throw new InUseError(`the data folder ${dir} is being taken by another process at the same moment; try again`, -1);
}

/**
 * The pid of the live process holding `dir` now, or undefined when none does (no lock, or one
 * its dead holder left behind): `callback --data` watches it while a holder has its answer.
 */
export function liveHolderOf(dir: string): number | undefined {
  const holder = readHolder(join(dir, LOCK_FILE));
  if (holder === undefined) return undefined;
  let key: string;
  try {
    key = realpathSync(dir);
  } catch {
    return undefined; // the folder itself is gone
  }
  return holderLives(holder, heldHere.has(key)) ? holder.pid : undefined;
}

/**
 * createHolding for this process; a folder that refuses the write (read-only, full, not ours) is
 * a DataFolderError naming the folder, before anything else is opened there.
 */
function holdOrRefuse(dir: string, file: string): boolean {
  try {
    return createHolding(file, process.pid);
  } catch (error) {
    const code = diskRefusal(error);
    if (!code) throw error;
    // The system's reason without the lock's file name (the folder is what the user gave).
    const reason = describeThrown(error).split(', ')[0];
    throw new DataFolderError(`the data folder ${dir} cannot be written (${reason}): give a folder with space that this user may write`, code, { cause: error });
  }
}

/**
 * Creates `file` holding `pid`, only if it does not exist. Written whole before it appears (a
 * hard link of a finished temporary file), so no one ever reads a lock half-written: an empty
 * lock read as "no holder" would be removed while its process lives.
 */
function createHolding(file: string, pid: number): boolean {
  const temporary = `${file}.${pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const marks = Object.entries(THIS_LIFE).filter(([, value]) => value !== undefined).map(([name, value]) => ` ${name}=${value}`);
  try {
    writeFileSync(temporary, `${pid}${marks.join('')}\n`);
    linkSync(temporary, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    // Also when the write failed (a full disk leaves an empty file behind).
    rmSync(temporary, { force: true });
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
    // A claim is held only inside this synchronous function: one naming this process is stale.
    if (depth < 2 && (claimer === undefined || !holderLives(claimer, false)) && existsSync(claim)) takeOver(claim, claimer?.pid, depth + 1);
    return;
  }
  try {
    if (readHolder(file)?.pid === dead) unlinkOrGone(file);
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
export function refuseNonFolder(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new ValidationError(`--data ${dir}: is a file, not a folder (give a folder for the run's state)`, '--data');
  }
}

/** Folders this process holds now (a lock naming this pid is ours only if listed here). */
const heldHere = new Set<string>();

/** What tells this process's life apart from another with the same pid (undefined where /proc does not say). */
const THIS_LIFE = {
  boot: readProc(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()),
  pidns: readProc(() => readlinkSync('/proc/self/ns/pid')),
  start: startTimeOf(process.pid),
};

interface Holder {
  pid: number;
  boot?: string;
  pidns?: string;
  start?: string;
}

/** `<pid> [boot=…] [pidns=…] [start=…]` (a lock of an older version holds the pid alone). */
function readHolder(file: string): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
  const [first, ...marks] = text.split(/\s+/);
  const pid = Number(first);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const holder: Holder = { pid };
  for (const mark of marks) {
    const at = mark.indexOf('=');
    const name = mark.slice(0, at);
    if (name === 'boot' || name === 'pidns' || name === 'start') holder[name] = mark.slice(at + 1);
  }
  return holder;
}

/** Whether the lock's holder may still be running (then the folder is refused). */
function holderLives(holder: Holder, heldByThisProcess: boolean): boolean {
  if (holder.boot && THIS_LIFE.boot && holder.boot !== THIS_LIFE.boot) return false; // written before a reboot
  if (holder.pidns && THIS_LIFE.pidns && holder.pidns !== THIS_LIFE.pidns) return false; // another container's pids
  if (holder.pid === process.pid) return heldByThisProcess;
  if (!isAlive(holder.pid)) return false;
  const start = holder.start ? startTimeOf(holder.pid) : undefined;
  return !(start !== undefined && start !== holder.start); // the pid now names another process
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22), where /proc has it. */
function startTimeOf(pid: number): string | undefined {
  return readProc(() => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  });
}

function readProc(read: () => string | undefined): string | undefined {
  try {
    return read() || undefined;
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
  if (readHolder(file)?.pid === holder) unlinkOrGone(file);
}

function unlinkOrGone(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

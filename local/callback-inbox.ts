/**
 * Answers to callbacks for a data folder that a running process holds (`run --data`, `resume`):
 * one process at a time may open a folder, so `callback --data` cannot write the answer itself
 * while the run goes on. It leaves the answer in `<dataDir>/callbacks/` instead; the process that
 * holds the folder takes it there (answerCallback, as the API does), leaves the outcome beside it,
 * and the `callback` command reads that and exits as it would have. A request file is written
 * whole (a temporary name, then a rename), so the holder never reads half of one.
 *
 * The holder may let the folder go at any moment (its run ends) with the answer still lying
 * there. So an answer file is claimed by one side only: the holder takes it by renaming it
 * (`.request.json` to `.taken.json`), the `callback` command withdraws it by removing it; the
 * file system lets exactly one of the two succeed. The holder stops taking, and finishes what it
 * took (outcome written), before it lets the folder go; `callback` watches the folder's lock and,
 * once no live process holds it, withdraws its answer: withdrawn, it answers the folder itself;
 * already taken, the outcome is there.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { ConflictError, GoneError, NotFoundError, PayloadTooLargeError, ValidationError } from '../core/errors';
import { MAX_DOCUMENT_TEXT_BYTES } from '../core/input-bounds';
import type { CallbackAnswered } from '../core/use-cases/suspend';
import { liveHolderOf } from './data-folder';

export const INBOX_FOLDER = 'callbacks';
const REQUEST = /^([0-9a-f-]{36})\.request\.json$/;
/**
 * How often the holder looks for answers, and how long `callback` waits for a live holder to take
 * its answer (a holder that lets the folder go ends the wait at once).
 */
export const INBOX_POLL_MS = 200;
export const INBOX_WAIT_MS = 30_000;

interface Request {
  runId: string;
  token: string;
  answer: unknown;
}

/** An answer the holder took: the callback's answer, and whether the holder carries its run on. */
export interface InboxAnswer {
  answered: CallbackAnswered;
  carriedOn: boolean;
}

type Outcome = ({ ok: true } & InboxAnswer) | { ok: false; error: string; message: string };

/**
 * The holder's side: takes each answer left in the inbox. The returned function stops it: no
 * answer is taken after it is called, and it resolves once every answer taken has its outcome
 * written; call it (and await it) before letting the folder go. `drives` says whether the holder
 * carries a run on to its end (it started or resumed it).
 */
export function watchInbox(
  dataDir: string,
  answer: (runId: string, token: string, value: unknown) => Promise<CallbackAnswered>,
  drives: (runId: string) => boolean,
  onError: (error: unknown) => void,
): () => Promise<void> {
  const inbox = join(dataDir, INBOX_FOLDER);
  let stopped = false;
  let taking: Promise<void> | undefined;
  const take = async () => {
    let names: string[];
    try {
      names = readdirSync(inbox);
    } catch {
      return; // no answer was ever left
    }
    for (const name of names) {
      const id = REQUEST.exec(name)?.[1];
      if (!id) continue;
      if (stopped) return; // left for the `callback` command to withdraw
      const file = join(inbox, `${id}.taken.json`);
      try {
        renameSync(join(inbox, name), file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // withdrawn by its `callback`
        throw error;
      }
      let outcome: Outcome;
      try {
        const text = readFileSync(file, 'utf8');
        if (text.length > MAX_DOCUMENT_TEXT_BYTES) throw new PayloadTooLargeError(`the answer file is ${text.length} characters`, text.length, MAX_DOCUMENT_TEXT_BYTES);
        const request = JSON.parse(text) as Request;
        const runId = String(request.runId);
        const answered = await answer(runId, String(request.token), request.answer);
        // Stopping now: the answer's step is left in the folder's queue for `resume`.
        outcome = { ok: true, answered, carriedOn: !stopped && drives(runId) };
      } catch (error) {
        outcome = { ok: false, error: (error as Error).name ?? 'Error', message: (error as Error).message };
        if (!KNOWN[outcome.error]) onError(error);
      }
      writeFileSync(join(inbox, `${id}.outcome.tmp`), JSON.stringify(outcome));
      renameSync(join(inbox, `${id}.outcome.tmp`), join(inbox, `${id}.outcome.json`));
      rmSync(file, { force: true });
    }
  };
  const timer = setInterval(() => {
    if (taking || stopped) return;
    taking = take()
      .catch(onError)
      .finally(() => (taking = undefined));
  }, INBOX_POLL_MS);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await taking;
  };
}

/**
 * The `callback` command's side: leaves the answer and waits for the holder's outcome. Resolves
 * undefined when the answer was withdrawn because no process holds the folder any more (then the
 * caller answers the folder itself).
 */
export async function answerThroughInbox(dataDir: string, request: Request, holderPid: number, waitMs = INBOX_WAIT_MS): Promise<InboxAnswer | undefined> {
  const inbox = join(dataDir, INBOX_FOLDER);
  mkdirSync(inbox, { recursive: true });
  const id = randomUUID();
  const requestFile = join(inbox, `${id}.request.json`);
  writeFileSync(join(inbox, `${id}.tmp`), JSON.stringify(request));
  renameSync(join(inbox, `${id}.tmp`), requestFile);
  const outcomeFile = join(inbox, `${id}.outcome.json`);
  let taken = false;
  const end = Date.now() + waitMs;
  for (;;) {
    const outcome = readOutcome(outcomeFile);
    if (outcome) return settled(outcome);
    const holder = liveHolderOf(dataDir);
    const late = Date.now() >= end;
    if (holder === undefined || late) {
      if (!taken) {
        if (withdraw(requestFile)) {
          if (holder === undefined) return undefined;
          throw new ValidationError(
            `callback: the process holding ${dataDir} (pid ${holder}) did not take the answer within ${waitMs / 1000} s; answer while a run or resume holds the folder, or with none holding it`,
            '--data',
          );
        }
        // Taken: its taker writes the outcome before it lets the folder go. Read it again.
        taken = true;
        continue;
      }
      if (holder === undefined) {
        rmSync(join(inbox, `${id}.taken.json`), { force: true });
        throw new ValidationError(
          `callback: the process holding ${dataDir} (pid ${holderPid}) ended while it took the answer, before it said whether the callback took it; see the branch with: branch-spawner show ${request.runId} --data ${dataDir}`,
          '--data',
        );
      }
      // Taken by a live holder after the wait: it is being given now; its outcome follows, unless
      // the holder hangs.
      if (Date.now() >= end + waitMs) {
        throw new ValidationError(
          `callback: the process holding ${dataDir} (pid ${holder}) took the answer but did not say whether the callback took it within ${(2 * waitMs) / 1000} s; see the branch with: branch-spawner show ${request.runId} --data ${dataDir}`,
          '--data',
        );
      }
    }
    await delay(INBOX_POLL_MS / 2);
  }
}

/** The outcome the holder left for this answer, once it is there (read once, then removed). */
function readOutcome(file: string): Outcome | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  rmSync(file, { force: true });
  return JSON.parse(text) as Outcome;
}

function settled(outcome: Outcome): InboxAnswer {
  if (outcome.ok) return { answered: outcome.answered, carriedOn: outcome.carriedOn === true };
  const Known = KNOWN[outcome.error];
  throw Known ? new Known(outcome.message) : new Error(outcome.message);
}

/** Removes the answer file unless its holder took it first: true when it was still there. */
function withdraw(file: string): boolean {
  try {
    unlinkSync(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** The refusals answerCallback gives, by name (an outcome file carries the name and the message). */
const KNOWN: Record<string, new (message: string) => Error> = {
  ConflictError,
  GoneError,
  NotFoundError,
  ValidationError: class extends ValidationError {
    constructor(message: string) {
      super(message, 'answer');
    }
  },
  ScenarioError: class extends ValidationError {
    constructor(message: string) {
      super(message, 'answer');
    }
  },
  PayloadTooLargeError: class extends PayloadTooLargeError {
    constructor(message: string) {
      super(message, 0, 0, { field: 'answer' });
    }
  },
};

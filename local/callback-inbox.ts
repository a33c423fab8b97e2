/**
 * Answers to callbacks for a data folder that a running process holds (`run --data`, `resume`):
 * one process at a time may open a folder, so `callback --data` cannot write the answer itself
 * while the run goes on. It leaves the answer in `<dataDir>/callbacks/` instead; the process that
 * holds the folder takes it there (answerCallback, as the API does), leaves the outcome beside it,
 * and the `callback` command reads that and exits as it would have. A request file is written
 * whole (a temporary name, then a rename), so the holder never reads half of one.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { ConflictError, GoneError, NotFoundError, PayloadTooLargeError, ValidationError } from '../core/errors';
import { MAX_DOCUMENT_TEXT_BYTES } from '../core/input-bounds';
import type { CallbackAnswered } from '../core/use-cases/suspend';

export const INBOX_FOLDER = 'callbacks';
const REQUEST = /^([0-9a-f-]{36})\.request\.json$/;
/** How often the holder looks for answers, and how long `callback` waits for its outcome. */
export const INBOX_POLL_MS = 200;
export const INBOX_WAIT_MS = 30_000;

interface Request {
  runId: string;
  token: string;
  answer: unknown;
}

type Outcome = { ok: true; answered: CallbackAnswered } | { ok: false; error: string; message: string };

/** The holder's side: takes each answer left in the inbox, until the returned function is called. */
export function watchInbox(
  dataDir: string,
  answer: (runId: string, token: string, value: unknown) => Promise<CallbackAnswered>,
  onError: (error: unknown) => void,
): () => void {
  const inbox = join(dataDir, INBOX_FOLDER);
  let busy = false;
  const take = async () => {
    if (busy) return;
    busy = true;
    try {
      let names: string[];
      try {
        names = readdirSync(inbox);
      } catch {
        return; // no answer was ever left
      }
      for (const name of names) {
        const id = REQUEST.exec(name)?.[1];
        if (!id) continue;
        const file = join(inbox, name);
        let outcome: Outcome;
        try {
          const text = readFileSync(file, 'utf8');
          if (text.length > MAX_DOCUMENT_TEXT_BYTES) throw new PayloadTooLargeError(`the answer file is ${text.length} characters`, text.length, MAX_DOCUMENT_TEXT_BYTES);
          const request = JSON.parse(text) as Request;
          outcome = { ok: true, answered: await answer(String(request.runId), String(request.token), request.answer) };
        } catch (error) {
          outcome = { ok: false, error: (error as Error).name ?? 'Error', message: (error as Error).message };
          if (!KNOWN[outcome.error]) onError(error);
        }
        writeFileSync(join(inbox, `${id}.outcome.tmp`), JSON.stringify(outcome));
        renameSync(join(inbox, `${id}.outcome.tmp`), join(inbox, `${id}.outcome.json`));
        rmSync(file, { force: true });
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void take().catch(onError), INBOX_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The `callback` command's side: leaves the answer and waits for the holder's outcome. */
export async function answerThroughInbox(dataDir: string, request: Request, holderPid: number, waitMs = INBOX_WAIT_MS): Promise<CallbackAnswered> {
  const inbox = join(dataDir, INBOX_FOLDER);
  mkdirSync(inbox, { recursive: true });
  const id = randomUUID();
  writeFileSync(join(inbox, `${id}.tmp`), JSON.stringify(request));
  renameSync(join(inbox, `${id}.tmp`), join(inbox, `${id}.request.json`));
  const outcomeFile = join(inbox, `${id}.outcome.json`);
  for (const end = Date.now() + waitMs; Date.now() < end; await delay(INBOX_POLL_MS / 2)) {
    let text: string;
    try {
      text = readFileSync(outcomeFile, 'utf8');
    } catch {
      continue;
    }
    rmSync(outcomeFile, { force: true });
    const outcome = JSON.parse(text) as Outcome;
    if (outcome.ok) return outcome.answered;
    const Known = KNOWN[outcome.error];
    throw Known ? new Known(outcome.message) : new Error(outcome.message);
  }
  rmSync(join(inbox, `${id}.request.json`), { force: true });
  throw new ValidationError(
    `callback: the process holding ${dataDir} (pid ${holderPid}) did not take the answer within ${waitMs / 1000} s; answer while a run or resume holds the folder, or with none holding it`,
    '--data',
  );
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

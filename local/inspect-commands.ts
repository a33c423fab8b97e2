/**
 * `runs`, `show <runId>`, `tree <runId>`, `cancel <runId>` and `events <runId> [--follow]`, on a
 * team's API (`--api`) or a local data folder (`--data`): see local/run-sources.ts.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { readFileSync, statSync } from 'node:fs';
import { ConflictError, GoneError, InUseError, NotFoundError, ValidationError } from '../core/errors';
import { answerThroughInbox, type InboxAnswer } from './callback-inbox';
import { MAX_DOCUMENT_TEXT_BYTES } from '../core/input-bounds';
import { TREE_FORMATS, type TreeFormat } from '../core/tree';
import { ApiClient, type RemoteTarget } from './remote/api-client';
import { documentOf, reportDocument } from './run-command';
import { dataSource, remoteSource, type RunSource } from './run-sources';

export interface SourceOptions {
  api?: string;
  data?: string;
  token?: string;
  region?: string;
  profile?: string;
}

export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** The API (`--api`, or BRANCH_SPAWNER_API) or the data folder the command reads. */
export async function openSource(command: string, options: SourceOptions): Promise<RunSource> {
  if (options.api && options.data) throw new ValidationError(`${command}: give --api or --data, not both`, '--api');
  if (options.data) return dataSource(options.data, command);
  if (!options.api) throw new ValidationError(`${command}: say where the runs are: --api <url> (a team's API, or BRANCH_SPAWNER_API) or --data <dir> (run --data)`, '--api');
  const target: RemoteTarget = { api: options.api, token: options.token, region: options.region, profile: options.profile };
  return remoteSource(ApiClient.connect(target));
}

async function withSource<T>(command: string, options: SourceOptions, use: (source: RunSource) => Promise<T>): Promise<T> {
  const source = await openSource(command, options);
  try {
    return await use(source);
  } finally {
    await source.close();
  }
}

export function runsCommand(options: SourceOptions & { json: boolean }, io: Io): Promise<number> {
  return withSource('runs', options, async (source) => {
    const runs = await source.runs();
    if (options.json) {
      io.out.write(`${JSON.stringify({ runs })}\n`);
      return 0;
    }
    if (runs.length === 0) io.err.write(`no runs recorded for ${source.label}\n`);
    for (const r of runs) {
      io.out.write(`${r.runId}  ${r.status.padEnd(9)}  ${r.createdAt ? new Date(r.createdAt).toISOString() : '-'}  ${r.name}\n`);
    }
    return 0;
  });
}

/** The run as `run` prints it at its end (one document with --json). Exit code as `run`: 0 COMPLETED, 1 otherwise. */
export function showCommand(runId: string, options: SourceOptions & { json: boolean }, io: Io): Promise<number> {
  return withSource('show', options, async (source) => {
    const { view, branches } = await source.describe(runId);
    reportDocument(documentOf(view, branches), { json: options.json, tty: false, out: io.out });
    return view.status === 'COMPLETED' ? 0 : view.status === 'RUNNING' ? 0 : 1;
  });
}

export function treeCommand(runId: string, options: SourceOptions & { format: string }, io: Io): Promise<number> {
  if (!TREE_FORMATS.includes(options.format as TreeFormat)) throw new ValidationError(`--format must be one of ${TREE_FORMATS.join(', ')}`, '--format');
  return withSource('tree', options, async (source) => {
    io.out.write(`${await source.tree(runId, options.format as TreeFormat)}\n`);
    return 0;
  });
}

export function cancelCommand(runId: string, options: SourceOptions, io: Io): Promise<number> {
  return withSource('cancel', options, async (source) => {
    await source.cancel(runId);
    io.err.write(`run ${runId}: cancel requested\n`);
    return 0;
  });
}

/** How often `callback --data` goes back to a folder whose holders each let it go before taking the answer. */
const HELD_FOLDER_TRIES = 5;

/**
 * `callback <runId> <token> (--answer <json> | --answer-file <file>)`: answers a branch's callback
 * (POST /runs/{id}/callbacks/{token}, or the data folder's store). Exit 0 when the answer was
 * taken; 1 when it was refused (answered already, cancelled, timed out); 2 for bad input (no or
 * bad JSON, an unknown run or token).
 */
export function callbackCommand(runId: string, token: string, options: SourceOptions & { answer?: string; answerFile?: string }, io: Io): Promise<number> {
  const answer = readAnswer(options);
  // Answered here: a deployed API carries the run on; a data folder nobody holds waits for `resume`.
  const answerHere = async (source: RunSource): Promise<InboxAnswer> => ({ answered: await source.answer(runId, token, answer), carriedOn: !options.data });
  return (async () => {
    let taken: InboxAnswer | undefined;
    try {
      for (let attempt = 1; !taken; attempt++) {
        // Undefined: the holder let the folder go without taking the answer; answer the folder itself.
        taken = await withSource('callback', options, answerHere).catch((error: unknown) => {
          // A run or resume holds the folder: it takes the answer (local/callback-inbox.ts).
          if (!(error instanceof InUseError) || !options.data || attempt >= HELD_FOLDER_TRIES) throw error;
          return answerThroughInbox(options.data, { runId, token, answer }, error.pid);
        });
      }
    } catch (error) {
      if (error instanceof ConflictError || error instanceof GoneError || error instanceof NotFoundError) {
        io.err.write(`error: ${error.message}\n`);
        // No such run or callback is a bad argument, as the API's 404 is (see cli.ts).
        return error instanceof NotFoundError ? 2 : 1;
      }
      throw error;
    }
    const { branchId } = taken.answered;
    io.err.write(
      taken.carriedOn
        ? `run ${runId}: callback answered, branch ${branchId} goes on\n`
        : `run ${runId}: callback answered; branch ${branchId} waits for resume: npx branch-spawner resume ${runId} --data ${options.data}\n`,
    );
    return 0;
  })();
}

function readAnswer(options: { answer?: string; answerFile?: string }): unknown {
  if ((options.answer === undefined) === (options.answerFile === undefined)) {
    throw new ValidationError('callback: give the answer with --answer <json> or --answer-file <file> (one of them)', '--answer');
  }
  const [text, where] = options.answer !== undefined ? [options.answer, '--answer'] : [readTextFile(options.answerFile!), options.answerFile!];
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError(`callback: ${where} is not JSON (${(error as Error).message}); a text answer is quoted: --answer '"yes"'`, '--answer');
  }
}

function readTextFile(path: string): string {
  try {
    const size = statSync(path).size;
    if (size > MAX_DOCUMENT_TEXT_BYTES) throw new ValidationError(`callback: ${path} is ${size} bytes; an answer file may have ${MAX_DOCUMENT_TEXT_BYTES}`, '--answer-file');
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(`callback: cannot read --answer-file ${path}: ${(error as Error).message}`, '--answer-file');
  }
}

/** Every event as one JSON line (the `--trace` format); with --follow, until the run's last one. */
export function eventsCommand(runId: string, options: SourceOptions & { follow: boolean; after?: string; pollMs?: number }, io: Io): Promise<number> {
  return withSource('events', options, async (source) => {
    let cursor = options.after;
    // Events are at least once (a retried publication stores them again): each is printed once.
    const printed = new Set<string>();
    for (;;) {
      const page = await source.events(runId, cursor);
      for (const event of page.events) {
        if (printed.has(event.eventId)) continue;
        printed.add(event.eventId);
        io.out.write(`${JSON.stringify(event)}\n`);
      }
      cursor = page.cursor ?? undefined;
      if (page.done || (!options.follow && page.events.length === 0)) break;
      if (!options.follow) continue;
      if (page.events.length === 0) await delay(options.pollMs ?? 1000);
    }
    return 0;
  });
}

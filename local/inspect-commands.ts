/**
 * `runs`, `show <runId>`, `tree <runId>`, `cancel <runId>` and `events <runId> [--follow]`, on a
 * team's API (`--api`) or a local data folder (`--data`): see local/run-sources.ts.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ValidationError } from '../core/errors';
import type { TreeFormat } from '../core/use-cases/queries';
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

const FORMATS: TreeFormat[] = ['ascii', 'mermaid', 'json'];

export function treeCommand(runId: string, options: SourceOptions & { format: string }, io: Io): Promise<number> {
  if (!FORMATS.includes(options.format as TreeFormat)) throw new ValidationError(`--format must be one of ${FORMATS.join(', ')}`, '--format');
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

/** Every event as one JSON line (the `--trace` format); with --follow, until the run's last one. */
export function eventsCommand(runId: string, options: SourceOptions & { follow: boolean; after?: string; pollMs?: number }, io: Io): Promise<number> {
  return withSource('events', options, async (source) => {
    let cursor = options.after;
    for (;;) {
      const page = await source.events(runId, cursor);
      for (const event of page.events) io.out.write(`${JSON.stringify(event)}\n`);
      cursor = page.cursor ?? undefined;
      if (page.done || (!options.follow && page.events.length === 0)) break;
      if (!options.follow) continue;
      if (page.events.length === 0) await delay(options.pollMs ?? 1000);
    }
    return 0;
  });
}

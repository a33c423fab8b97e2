/**
 * `branch-spawner gc --data <dir>`: removes the blobs of a data folder that no item refers to any
 * more. They come from values that were replaced (a conversation's memory is stored again each
 * time it grows: the earlier contents are left behind), from a crash between a blob's write and
 * its reference's (the claim check writes the blob first), from values handed to `http` agents
 * by URL, and from runs whose state is gone. Blobs any stored item refers to stay.
 *
 * Safe against crashes and against runs: gc holds the data folder's lock the whole time (a run,
 * resume or dev on the folder refuses to start meanwhile, and gc refuses a folder in use), reads
 * every item first, and only then deletes, one file at a time: a gc killed half-way has removed
 * only blobs nothing refers to, and the next gc removes the rest.
 */
import { readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { referencedBlobKeys } from '../adapters/dynamodb/item-codec';
import { requireDataFolder } from './data-folder';
import { startLocalEngines, TABLE_NAME, type TieredEngines } from './embedded-engines';
import { BLOBS_FOLDER } from './engines/disk-blob-store';

export interface GcResult {
  removed: number;
  removedBytes: number;
  kept: number;
}

/** Every item of the folder's table, whichever tier keeps it. */
async function* everyItem(engines: TieredEngines): AsyncGenerator<Record<string, unknown>> {
  if (engines.tier !== 'engines') {
    yield* engines.store.items();
    return;
  }
  let start: Record<string, unknown> | undefined;
  do {
    const page = await engines.dynamo.doc.send(new ScanCommand({ TableName: TABLE_NAME, ExclusiveStartKey: start }));
    yield* page.Items ?? [];
    start = page.LastEvaluatedKey;
  } while (start);
}

/** Removes every blob of `dataDir` no item refers to; answers what it removed and kept. */
export async function collectGarbage(dataDir: string, options: { onRemoved?(file: string): void } = {}): Promise<GcResult> {
  const engines = await startLocalEngines({ dataDir });
  const result: GcResult = { removed: 0, removedBytes: 0, kept: 0 };
  try {
    // Mark: every reference of every item, before anything is deleted.
    const referenced = new Set<string>();
    for await (const item of everyItem(engines)) for (const key of referencedBlobKeys(item)) referenced.add(key);
    // Sweep: `blobs/<team>/<run>/<ref>`; a run's folder goes once empty.
    const root = join(dataDir, BLOBS_FOLDER);
    for (const team of list(root)) {
      for (const run of list(join(root, team))) {
        const folder = join(root, team, run);
        for (const name of list(folder)) {
          if (referenced.has(`${team}/${run}/${name}`)) {
            result.kept++;
            continue;
          }
          const file = join(folder, name);
          const { size } = statSync(file);
          unlinkSync(file);
          result.removed++;
          result.removedBytes += size;
          // Tests stop a gc here, as a kill between two deletions would.
          options.onRemoved?.(file);
        }
        if (list(folder).length === 0) rmdirSync(folder);
      }
      if (list(join(root, team)).length === 0) rmdirSync(join(root, team));
    }
  } finally {
    await engines.close();
  }
  return result;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

export async function gcCommand(options: { dataDir?: string; out: NodeJS.WritableStream; err: NodeJS.WritableStream }): Promise<number> {
  if (!options.dataDir) {
    options.err.write('error: gc needs --data <dir>, the folder the runs kept their state in (run --data <dir>)\n');
    return 2;
  }
  requireDataFolder('gc', options.dataDir);
  const { removed, removedBytes, kept } = await collectGarbage(options.dataDir);
  if (removed > 0) options.out.write(`removed ${removed} unreferenced blob${removed === 1 ? '' : 's'} (${formatBytes(removedBytes)}); ${kept} kept\n`);
  return 0;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} KB`;
}

/**
 * The runs started with `run --data <dir>`, listed in `<dir>/runs.jsonl` so that
 * `resume --data <dir>` can say which runs are unfinished without being given an id.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface DataRun {
  runId: string;
  name: string;
  scenario: string;
  startedAt: number;
}

const FILE = 'runs.jsonl';

export async function recordDataRun(dataDir: string, runId: string, name: string, scenario: string): Promise<void> {
  const entry: DataRun = { runId, name, scenario, startedAt: Date.now() };
  await appendFile(join(dataDir, FILE), `${JSON.stringify(entry)}\n`);
}

/** The runs recorded in the folder, oldest first (none when the folder has no list). */
export async function listDataRuns(dataDir: string): Promise<DataRun[]> {
  let text: string;
  try {
    text = await readFile(join(dataDir, FILE), 'utf8');
  } catch {
    return [];
  }
  const runs: DataRun[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      runs.push(JSON.parse(line) as DataRun);
    } catch {
      // A line cut short by a crash: the runs before and after it still count.
    }
  }
  return runs;
}

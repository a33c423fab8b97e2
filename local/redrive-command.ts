/**
 * `branch-spawner redrive --data <dir>`: moves the step messages parked in the dead-letter queue
 * back to the step queue (after the fault that poisoned them was fixed), and gives the step
 * messages still in the step queues the deliveries they failed (one stopped on its last allowed
 * delivery would be dead-lettered by its next receive, for the fault that was fixed). Nothing is
 * processed here: `resume <runId> --data <dir>` then runs them. Malformed messages stay in the DLQ.
 */
import { parseStepMessage } from '../functions/messages';
import { requireDataFolder } from './data-folder';
import { startLocalEngines } from './embedded-engines';

export interface RedriveCommandOptions {
  dataDir?: string;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface RedriveResult {
  moved: number;
  /** Messages that are not step messages (left in the DLQ). */
  skipped: number;
  /** Messages in the step queues whose failed deliveries were forgotten (the journal tier's). */
  restarted: number;
}

/** Moves every readable message from the DLQ to the step queue of the engines in `dataDir`. */
export async function redrive(dataDir: string): Promise<RedriveResult> {
  const engines = await startLocalEngines({ dataDir });
  const result: RedriveResult = { moved: 0, skipped: 0, restarted: 0 };
  const unreadable: string[] = [];
  try {
    // Before the DLQ's messages join them (those come back with no deliveries counted). The
    // engines tier (folders of earlier versions) has no such call: there only the DLQ moves.
    if (engines.tier === 'journal') {
      for (const queue of Object.values(engines.consumers)) result.restarted += queue.restartReceiveCounts();
    }
    for (;;) {
      // Held long enough not to come back while this loop runs.
      const records = await engines.dlqConsumer.receive({ max: 10, waitSeconds: 0, visibilityTimeout: 300 });
      if (records.length === 0) break;
      for (const record of records) {
        const message = parseStepMessage(record.body);
        if (!message) {
          unreadable.push(record.receiptHandle);
          continue;
        }
        // Send first, then delete: a crash in between leaves a duplicate, never a loss.
        await engines.queue.send([message]);
        await engines.dlqConsumer.delete([record.receiptHandle]);
        result.moved++;
      }
    }
    // Unreadable ones become visible again, for whoever wants to look at them.
    for (const handle of unreadable) await engines.dlqConsumer.changeVisibility(handle, 0);
    result.skipped = unreadable.length;
  } finally {
    await engines.close();
  }
  return result;
}

export async function redriveCommand(options: RedriveCommandOptions): Promise<number> {
  if (!options.dataDir) {
    options.err.write('error: redrive needs --data <dir>, the folder the runs kept their state in (run --data <dir>)\n');
    return 2;
  }
  requireDataFolder('redrive', options.dataDir);
  const { moved, skipped, restarted } = await redrive(options.dataDir);
  options.out.write(
    `moved ${moved} message(s) from the dead-letter queue back to the step queue` +
      (restarted ? `; ${restarted} step message(s) that had failed deliveries get them back` : '') +
      (skipped ? `; ${skipped} unreadable message(s) left in the dead-letter queue` : '') +
      (moved || restarted ? `\nrun them with: npx branch-spawner resume <runId> --data ${options.dataDir}\n` : '\n'),
  );
  return 0;
}

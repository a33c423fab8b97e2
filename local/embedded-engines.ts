/**
 * The engines the local runtime runs on, in three tiers that honour the same contracts and run
 * the same handlers and use cases:
 *
 * - `memory` (the default without a data folder): the in-memory branch store (the reference of
 *   the store contract, which the DynamoDB store also passes) and an in-memory queue pair with
 *   SQS semantics (visibility, receive counts, dead-letter redrive). Nothing is serialized to a
 *   wire format and nothing outlives the process: the fastest tier, for `run` and `dev`.
 * - `journal` (the default with a data folder: `run --data`, `resume`, `redrive`): the memory
 *   tier's store and queues, plus an append-only journal in `<dataDir>/journal.jsonl`
 *   (local/engines/journal.ts, local/engines/journaled-state.ts): every change is written there
 *   before the call that made it returns, and replayed when the folder is opened again, so a run
 *   whose process was killed can be resumed on the same data. Large values (the claim check) are
 *   files in `<dataDir>/blobs` (local/engines/disk-blob-store.ts), written before their references.
 * - `engines` (asked for: `run --engines`, the bench's AWS-request counts; and data folders
 *   written by earlier versions): the AWS-API engines in this process, dynalite for DynamoDB and
 *   fauxqs for SQS, reached by the real SDK clients and the DynamoDB/SQS adapters through an
 *   in-process transport (no HTTP, no signing). With `dataDir`, the table (dynalite's LevelDB,
 *   `<dataDir>/dynamodb`) and the queues with their messages (fauxqs' SQLite, `<dataDir>/sqs`)
 *   survive the process.
 *
 * The journal and engines tiers run the fan-out's shared ASL file in aws-local-stepfunctions;
 * the memory tier runs the in-memory orchestrator held equal to it by the fan-out contract
 * (adapters/memory/memory-fan-out.ts): the ASL engine was about 40 % of the memory tier's CPU.
 * Fan-out executions are not kept (both run in memory); `resumeRun` starts them again. Each tier has two step
 * queues, one per lane (core/step-lanes): a parent's resumed step never waits behind leaf steps.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { DynamoBranchStore } from '../adapters/dynamodb';
import type { SqsStepQueue } from '../adapters/sqs/sqs-step-queue';
import { MemoryBranchStore } from '../adapters/memory/memory-branch-store';
import { MemoryFanOut } from '../adapters/memory/memory-fan-out';
import type { RunningExecution } from '../adapters/stepfunctions/local-executions';
import type { CreatedQueues } from './sqs/create-queues';
import type { SqsQueueConsumer } from './sqs/queue-consumer';
import { CostMeter } from '../core/cost-meter';
import type { BlobStore, BranchStore, FanOutOrchestrator, FanOutTasks, StepQueue } from '../core/ports';
import { LanedStepQueue, MAX_RECEIVE_COUNT, type StepLane } from '../core/step-lanes';
import { JOURNAL_FILE, lockDataFolder } from './data-folder';
import { Journal, type JournalOptions } from './engines/journal';
import { journalQueues, journalTable } from './engines/journaled-state';
import { ValidationError } from '../core/errors';
import type { DynamoEngine } from './engines/dynalite-engine';
import type { FauxqsEngine } from './engines/fauxqs-engine';
import { MemorySqsQueue } from './engines/memory-sqs';
import { BLOBS_FOLDER, DiskBlobStore } from './engines/disk-blob-store';
import type { StepConsumer } from './engines/step-consumer';

export const TABLE_NAME = 'branch-spawner';
export const QUEUE_NAME = 'branch-steps';
/** The continue lane's queue (see core/step-lanes). */
export const CONTINUE_QUEUE_NAME = 'branch-steps-continue';

export type EngineTier = 'memory' | 'journal' | 'engines';
export const ENGINE_TIERS: readonly EngineTier[] = ['memory', 'journal', 'engines'];

export interface LocalEngines {
  tier: EngineTier;
  store: BranchStore;
  /** Sends each step message to the queue of its lane. */
  queue: StepQueue;
  /** The consumer of each lane's queue. */
  consumers: Record<StepLane, StepConsumer>;
  /** Sends to the dead-letter queue (tests park messages there). */
  dlqQueue: StepQueue;
  dlqConsumer: StepConsumer;
  createFanOut(queue: StepQueue, tasks: FanOutTasks, onError: (error: unknown) => void): LocalFanOut;
  /** The cost meter the store and the fan-out report to (each tier reports what DynamoDB would charge). */
  meter: CostMeter;
  /** Where the store keeps large values (memory, or the data folder's `blobs/`). */
  blobs: BlobStore;
  close(): Promise<void>;
}

/** The memory tier, or the journal tier (the same store and queues, kept in a journal). */
export interface MemoryEngines extends LocalEngines {
  tier: 'memory' | 'journal';
  store: MemoryBranchStore;
  consumers: Record<StepLane, MemorySqsQueue>;
  dlqConsumer: MemorySqsQueue;
}

/** Either tier; `tier` tells which. */
export type TieredEngines = MemoryEngines | EmbeddedEngines;

export interface EmbeddedEngines extends LocalEngines {
  tier: 'engines';
  dynamo: DynamoEngine;
  sqs: FauxqsEngine;
  /** The start lane's queue and the DLQ, plus the continue lane's queue. */
  queues: CreatedQueues & { continueUrl: string; continueArn: string };
  store: DynamoBranchStore;
  consumers: Record<StepLane, SqsQueueConsumer>;
  dlqQueue: SqsStepQueue;
  dlqConsumer: SqsQueueConsumer;
}

export interface EngineOptions {
  /** Which engines (default: see tierFor). */
  tier?: EngineTier;
  /** Keep the table and the queues on disk in this folder (the `journal` and `engines` tiers). */
  dataDir?: string;
  /** The journal tier: flush every journal write to the disk (survives an OS crash too; slower). */
  fsync?: boolean;
  /** The journal tier's compaction thresholds (see JournalOptions; the defaults suit runs). */
  compaction?: Pick<JournalOptions, 'growthFactor' | 'minCompactBytes'>;
  /** The journal's write(2) (tests simulate a full disk with it). */
  journalWrite?: JournalOptions['write'];
  /** Told when the data folder refuses a write (the journal's, a large value's file): see JournalOptions.onFailure. */
  onDataFolderFailure?: JournalOptions['onFailure'];
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
}

/**
 * The tier asked for; otherwise `memory` without a data folder, and with one the tier that wrote
 * it: `engines` for a folder an earlier version filled with dynalite's and fauxqs' files (and no
 * journal), `journal` for any other (new or journal) folder.
 */
export function tierFor(options: Pick<EngineOptions, 'tier' | 'dataDir'>): EngineTier {
  if (options.tier) return options.tier;
  if (!options.dataDir) return 'memory';
  return isEnginesFolder(options.dataDir) ? 'engines' : 'journal';
}

/** A data folder written by the engines tier: its subfolders and no journal. */
function isEnginesFolder(dataDir: string): boolean {
  return !existsSync(join(dataDir, JOURNAL_FILE)) && ['dynamodb', 'sqs'].some((sub) => existsSync(join(dataDir, sub)));
}

/** Starts the engines of the tier asked for (see tierFor). */
export async function startLocalEngines(options: EngineOptions = {}): Promise<TieredEngines> {
  const tier = tierFor(options);
  if (options.dataDir && tier !== 'memory') {
    const kept = isEnginesFolder(options.dataDir) ? 'engines' : existsSync(join(options.dataDir, JOURNAL_FILE)) ? 'journal' : undefined;
    if (kept && kept !== tier) {
      throw new ValidationError(`the data folder ${options.dataDir} holds the ${kept} tier's state; it cannot be opened on the ${tier} tier`, '--data');
    }
  }
  if (tier === 'engines') return startEmbeddedEngines(options);
  if (tier === 'journal') {
    if (!options.dataDir) throw new ValidationError('the journal tier keeps its journal in a data folder: give one (--data <dir>)', '--data');
    return startJournalEngines({ ...options, dataDir: options.dataDir });
  }
  if (options.dataDir) throw new ValidationError('the memory tier keeps nothing on disk: a data folder needs the journal or the engines tier', '--data');
  return startMemoryEngines(options);
}

/** What the runtime needs of a fan-out orchestrator: the port, and whether it is idle. */
export interface LocalFanOut extends FanOutOrchestrator {
  idle(): Promise<void>;
  activeExecutions(): number;
  /** The executions still running and what each waits for (see local/pending-work.ts). */
  describeRunning(): RunningExecution[];
}

/** Makes the fan-out orchestrator of a tier, reporting to the tier's cost meter. */
export type FanOutFactory = (meter: CostMeter) => LocalEngines['createFanOut'];

/**
 * The fan-out of the journal and engines tiers: the ASL on aws-local-stepfunctions. Loaded only
 * for them: the memory tier runs without the engine and the modules it brings (its validator,
 * JSONPath, JSONata, the Lambda client), some 8 MB of heap and 25 MB of resident memory.
 */
export async function loadAslFanOut(): Promise<FanOutFactory> {
  const { LocalFanOutOrchestrator } = await import('../adapters/stepfunctions/local-fan-out');
  return (meter) => (queue, tasks, onError) => new LocalFanOutOrchestrator({ queue, tasks, onExecutionError: onError, meter });
}

/** The fan-out of the memory tier: the same contract, in memory. */
const memoryFanOut: FanOutFactory = (meter) => (queue, tasks, onError) => new MemoryFanOut(queue, tasks, onError, meter);

/** The memory tier: the in-memory store and queues (nothing on disk). */
export function startMemoryEngines(options: Omit<EngineOptions, 'tier' | 'dataDir' | 'fsync' | 'compaction' | 'journalWrite' | 'onDataFolderFailure'> = {}): MemoryEngines {
  return memoryEngines(options, memoryFanOut);
}

/** The memory tier's store and queues, told to `kept` (the journal tier) when given. */
function memoryEngines(
  options: Omit<EngineOptions, 'tier' | 'dataDir' | 'fsync' | 'compaction' | 'journalWrite' | 'onDataFolderFailure'>,
  fanOut: FanOutFactory,
  kept?: { journal: Journal; blobs: DiskBlobStore; close(): void },
): MemoryEngines {
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 5;
  const maxReceiveCount = options.maxReceiveCount ?? MAX_RECEIVE_COUNT;
  const table = kept && journalTable(kept.journal);
  const queues = kept && journalQueues(kept.journal);
  const dlq = new MemorySqsQueue({ name: `${QUEUE_NAME}-dlq`, visibilityTimeoutSeconds, journal: queues?.journal });
  const lane = (name: string) =>
    new MemorySqsQueue({ name, visibilityTimeoutSeconds, maxReceiveCount, deadLetter: dlq, journal: queues?.journal });
  const consumers = { start: lane(QUEUE_NAME), continue: lane(CONTINUE_QUEUE_NAME) };
  const all = [consumers.start, consumers.continue, dlq];
  const meter = new CostMeter();
  const store = new MemoryBranchStore({ meter, onPut: table?.onPut, blobs: kept?.blobs });
  table?.attach(store);
  queues?.attach(all);
  return {
    tier: kept ? 'journal' : 'memory',
    meter,
    store,
    blobs: store.blobs,
    queue: new LanedStepQueue(consumers),
    consumers,
    dlqQueue: dlq,
    dlqConsumer: dlq,
    createFanOut: fanOut(meter),
    async close() {
      for (const queue of all) queue.close();
      kept?.close();
    },
  };
}

/**
 * The journal tier: the memory tier's store and queues, with every change kept in
 * `<dataDir>/journal.jsonl` and replayed on open (see the header).
 */
export async function startJournalEngines(options: Omit<EngineOptions, 'tier'> & { dataDir: string }): Promise<MemoryEngines> {
  const fanOut = await loadAslFanOut();
  // One process per data folder (refused with the holder's pid): taken before the journal is read.
  const lock = lockDataFolder(options.dataDir);
  try {
    const journal = new Journal(join(options.dataDir, JOURNAL_FILE), {
      ...options.compaction,
      fsync: options.fsync,
      write: options.journalWrite,
      onFailure: options.onDataFolderFailure,
    });
    // Large values (the claim check) in files next to the journal, flushed as the journal is.
    const blobs = new DiskBlobStore(join(options.dataDir, BLOBS_FOLDER), { fsync: options.fsync, onFailure: options.onDataFolderFailure });
    const engines = memoryEngines(options, fanOut, {
      journal,
      blobs,
      close() {
        try {
          journal.close();
        } finally {
          lock.release();
        }
      },
    });
    journal.open();
    return engines;
  } catch (error) {
    lock.release();
    throw error;
  }
}

/**
 * The engines tier: dynalite and fauxqs in this process (local/engines/aws-api-engines, loaded
 * only when this tier is asked for).
 */
export async function startEmbeddedEngines(options: Omit<EngineOptions, 'tier'> = {}): Promise<EmbeddedEngines> {
  const { startAwsApiEngines } = await import('./engines/aws-api-engines');
  return startAwsApiEngines(options);
}

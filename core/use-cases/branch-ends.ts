/**
 * What ending a branch takes and how it is told: the contract between end-branch.ts (which ends
 * branches and tells their ends) and sync-point.ts (whose settling ends branches, and which is told
 * of each end). Types only: with it, sync-point.ts needs nothing from end-branch.ts.
 */
import type { BranchRecord, BranchStatus, FanOutBatch } from '../model';
import type { BranchPatch } from '../ports';
import type { WorkMark } from '../work-mark';
import type { SpawnerDeps } from './deps';

export type EndStatus = Exclude<BranchStatus, 'PENDING' | 'RUNNING' | 'WAITING'>;

export interface BranchEnd {
  status: EndStatus;
  /** The work that ends it (a WorkMark: see end-branch.ts); written on the branch as `advancedBy`. */
  by: WorkMark;
  error?: string;
  result?: unknown;
  /** More fields written with the end (the step's memory, step count, usage). */
  patch?: BranchPatch;
  /** The write's condition: the branch is still at the version read (the step path), or still active. */
  atVersion?: boolean;
  /** Only from these statuses (default: any active one). */
  from?: readonly BranchStatus[];
}

export interface TellOptions {
  /** The parent is ending or settling this branch's sync point itself: only count the end. */
  parentDeciding?: boolean;
  /** Do the idempotent parts only, not the end event (another worker, alive, tells it). */
  quiet?: boolean;
  /** False when the branch is known not to have been waiting on children (nothing to cancel). */
  mayHaveChildren?: boolean;
  /** The task token of the branch's fan-out iteration, when the caller has it and the record not. */
  taskToken?: string;
  /** The branch's fan-out batch, when the caller has it (its first step's message) and the record not. */
  batch?: FanOutBatch;
  /** The branch's fan-out iteration is over (it failed): there is no token to release. */
  iterationOver?: boolean;
  /**
   * The caller's work is on its first try — a step message's first delivery, a fan-out task's
   * first attempt (Step Functions' RetryCount 0) — so no earlier try of it began anything.
   */
  firstTry?: boolean;
  /**
   * This very call wrote the end (set by endBranch): no earlier try of the work told any of it, so
   * a count found made is other work's (a duplicate that found the branch ended), not its own.
   */
  endedNow?: boolean;
}

/**
 * The condition of "end it, else tell its end again" (endOrRetell): when the branch is still this
 * work's to end, which ends found written are this work's to tell again, and how hard to look.
 * Each caller's condition differs (a step's failure, a parent's cancel, a sync point's settlement,
 * a run's start); the idiom is one.
 */
export interface RetellRule {
  /** Whether the active branch, as last read, is still this work's to end (default: yes). */
  mayEnd?: (branch: BranchRecord) => boolean;
  /**
   * The marks whose ends, found written, this work tells again, each under the mark that wrote it
   * (an earlier try of this work, or a concurrent one, may have died before telling). Default:
   * any end, told under this work's mark (the idempotent parts; the event only if this work wrote it).
   */
  mine?: readonly WorkMark[];
  /** Tell those ends without their event: another worker, alive, may be telling it. */
  quiet?: boolean;
  /** Conditional writes tried, each after reading the branch again (default 1): a write at a version loses to any change. */
  tries?: number;
  /**
   * When the branch is read back to tell the end found: `always` (the default; even one given
   * ended: its latest record is told), `after-loss` once the last write lost, `never` (the branch
   * as given decides; a lost write is the winner's to tell — a duplicate of this very work, alive,
   * may have won it).
   */
  readBack?: 'always' | 'after-loss' | 'never';
}

/** How branches end (end-branch.ts), handed to the sync point's steps that end branches. */
export interface BranchEnds {
  endOrRetell(
    deps: SpawnerDeps,
    branch: BranchRecord,
    end: BranchEnd,
    options?: TellOptions,
    rule?: RetellRule,
  ): Promise<{ endedNow: boolean; branch: BranchRecord }>;
  retellIfMine(deps: SpawnerDeps, branch: BranchRecord, mine: readonly WorkMark[], options?: TellOptions): Promise<void>;
  endForParent(
    deps: SpawnerDeps,
    child: BranchRecord,
    end: { status: 'CANCELLED' | 'FAILED'; by: WorkMark; error: string },
    retell?: boolean,
  ): Promise<BranchRecord>;
  cancelChildren(deps: SpawnerDeps, parent: BranchRecord, retell?: boolean, announcer?: WorkMark): Promise<void>;
}

/**
 * The work mark: which piece of work made a state change. Every end of a branch is written with
 * one (`BranchRecord.advancedBy`), every end of a run too (`RunRecord.endedBy`), and every advance
 * of a branch by a step (its message id) or an aggregation (`sync:<seq>`). The mark is the
 * idempotency key of the change: a retry of the same work finds its own mark and finishes what
 * the first try began (publishes the event again, tells the parent again); other work finds a
 * different mark and does nothing more.
 *
 * Marks are stored as strings, in the forms below; they must stay readable as written by every
 * earlier version (journals and tables outlive the code). This module is the only place that
 * builds or reads those forms.
 */

/**
 * A work mark as stored (`advancedBy`, `endedBy`). Build one with `WorkMark.*`, read one with
 * `readMark`. A string at run time; branded so that the compiler refuses a hand-built one.
 */
export type WorkMark = string & { readonly __workMark: unique symbol };

/** What a stored mark says, read back. */
export type ReadMark =
  /** A step message's delivery (the SQS message id). */
  | { kind: 'step'; messageId: string }
  /** A RecordChildFailure task of a child's fan-out iteration. */
  | { kind: 'fan-out'; branchId: string }
  /** A parent that ended cancelled its children. */
  | { kind: 'parent'; parentId: string }
  /** The settlement of a parent's sync point. */
  | { kind: 'settle'; parentId: string; seq: number }
  /**
   * The settlement of a parent's sync point by its fan-out's Aggregate task: a mark apart from
   * other settlements', so that each tells again only what it wrote (a stop may cut the task's
   * retries short; another settlement's retry must not take its writes for its own).
   */
  | { kind: 'aggregate'; parentId: string; seq: number }
  /** The aggregation that resumed the parent from sync point `seq`. */
  | { kind: 'sync'; seq: number }
  /** The dead-letter consumer's end of a poison message. */
  | { kind: 'dlq'; messageId: string }
  /** A cancel of the run. */
  | { kind: 'cancel' }
  /**
   * A run's start that found its run ended (a cancel came before its root was written) and ended
   * the root itself: its own mark, so the root's end is told by the start and the run's by the cancel.
   */
  | { kind: 'start' }
  /** A run budget's end of the run. */
  | { kind: 'budget' }
  /** The answer to the callback a branch suspended on at step `step` (it resumed the branch). */
  | { kind: 'callback'; step: number }
  /** `resume` telling an end again (never written on a record: it only tells). */
  | { kind: 'resume' };

export type MarkKind = ReadMark['kind'];

const CANCEL = 'cancel';
const START = 'start';
const BUDGET = 'budget';
const RESUME = 'resume';

/** The constructors: the only code that writes a mark's stored form. */
export const WorkMark = {
  step: (messageId: string): WorkMark => messageId as WorkMark,
  fanOut: (branchId: string): WorkMark => `fan-out:${branchId}` as WorkMark,
  parent: (parentId: string): WorkMark => `parent:${parentId}` as WorkMark,
  settle: (parentId: string, seq: number): WorkMark => `settle:${parentId}#${seq}` as WorkMark,
  aggregate: (parentId: string, seq: number): WorkMark => `aggregate:${parentId}#${seq}` as WorkMark,
  sync: (seq: number): WorkMark => `sync:${seq}` as WorkMark,
  callback: (step: number): WorkMark => `callback:${step}` as WorkMark,
  dlq: (messageId: string): WorkMark => `dlq:${messageId}` as WorkMark,
  cancel: CANCEL as WorkMark,
  start: START as WorkMark,
  budget: BUDGET as WorkMark,
  resume: RESUME as WorkMark,
} as const;

const PREFIXED = /^(fan-out|parent|settle|aggregate|sync|dlq|callback):(.*)$/s;

/** Reads a stored mark back. Anything not in another form is a step message's id. */
export function readMark(mark: WorkMark): ReadMark {
  if (mark === CANCEL) return { kind: 'cancel' };
  if (mark === START) return { kind: 'start' };
  if (mark === BUDGET) return { kind: 'budget' };
  if (mark === RESUME) return { kind: 'resume' };
  const m = PREFIXED.exec(mark);
  if (!m) return { kind: 'step', messageId: mark };
  const rest = m[2];
  switch (m[1]) {
    case 'fan-out':
      return { kind: 'fan-out', branchId: rest };
    case 'parent':
      return { kind: 'parent', parentId: rest };
    case 'dlq':
      return { kind: 'dlq', messageId: rest };
    case 'sync':
      return { kind: 'sync', seq: Number(rest) };
    case 'callback':
      return { kind: 'callback', step: Number(rest) };
    default: {
      const at = rest.lastIndexOf('#');
      return { kind: m[1] === 'aggregate' ? 'aggregate' : 'settle', parentId: rest.slice(0, at), seq: Number(rest.slice(at + 1)) };
    }
  }
}

/** The kind of a stored mark (undefined for none). */
export function markKind(mark: WorkMark | undefined): MarkKind | undefined {
  return mark === undefined ? undefined : readMark(mark).kind;
}

/** The work is a step message's delivery. */
export function isStepMark(mark: WorkMark | undefined): boolean {
  return markKind(mark) === 'step';
}

/** The branch was last advanced by the aggregation of one of its sync points (it was resumed). */
export function isSyncMark(mark: WorkMark | undefined): boolean {
  return markKind(mark) === 'sync';
}

/**
 * The branch was last resumed from outside its queue: by an aggregation or a callback's answer.
 * The step message that work sends may have died with it (`resume` sends it again).
 */
export function isResumeMark(mark: WorkMark | undefined): boolean {
  const kind = markKind(mark);
  return kind === 'sync' || kind === 'callback';
}

/**
 * Work a process holds in memory — fan-out tasks, settlements, a parent's cancel of its children,
 * a cancel or a budget's end of the run, a start's end of its root, the DLQ consumer — dies with
 * the process: `resume` tells ends made by it again. (A step message survives in its queue and
 * tells its own end again.)
 */
export function isInProcessWork(mark: WorkMark | undefined): boolean {
  const kind = markKind(mark);
  return kind !== undefined && kind !== 'step' && kind !== 'sync' && kind !== 'callback' && kind !== 'resume';
}

/**
 * Durable waits and callbacks (docs/agents.md, "Waits and callbacks").
 *
 * An agent's `wait` or `wait_for_callback` reply suspends its branch: one conditional write puts a
 * Suspension on it (the branch stays RUNNING and holds no worker), then a delayed step message,
 * the wake-up, is sent for when the wait is over or the callback times out. SQS delays a message
 * 900 s at most: a wake-up that comes back early is sent again for the time left, so a wait of any
 * length (within `limits.maxWaitSeconds`) survives restarts — the record, not a timer, knows when.
 *
 * - A wake-up acts only while the branch is suspended at its step: a wait is over (the branch goes
 *   on with its agent's next call), a callback still unanswered has timed out (the branch FAILS).
 * - An answer (answerCallback) resumes a branch suspended on its token with one write conditional
 *   on the version read: of two answers exactly one wins; the loser reads the branch again and is
 *   refused (409). A branch that ended while it waited (cancel, timeout) refuses answers (410).
 */
import { checkDocumentBounds } from '../input-bounds';
import { jsonBytes } from '../bounded-value';
import { ConflictError, GoneError, InvalidAgentResponseError, NotFoundError, PayloadTooLargeError, ValidationError } from '../errors';
import { resumedEvent, suspendedEvent } from '../events';
import { ANSWERED_TOKENS_KEPT, isTerminal, type BranchRecord, type RunRecord, type Scope, type Suspension } from '../model';
import { MAX_DELAY_SECONDS, type Delivery, type StepMessage } from '../ports';
import type { SuspendDecision } from '../protocol';
import { WorkMark } from '../work-mark';
import { hit, publish, scopeOf, type SpawnerDeps } from './deps';
import { endBranch } from './end-branch';

/** The largest answer to a callback, as JSON: it becomes the branch's next input (and is kept in its memory). */
export const MAX_CALLBACK_ANSWER_BYTES = 64 * 1024;

/**
 * The suspension an agent's reply asks for, within the run's `maxWaitSeconds`; past it the reply
 * is invalid (the agent is asked again, naming the field). `until` in the past wakes at once.
 */
export function suspensionFor(
  decision: SuspendDecision,
  context: { run: Pick<RunRecord, 'limits'>; branchId: string; step: number; now: number },
): Suspension {
  const { now, step } = context;
  const max = context.run.limits.maxWaitSeconds;
  if (decision.kind === 'wait') {
    const until = decision.until ?? now + decision.seconds! * 1000;
    if (until - now > max * 1000) {
      const asked = decision.until === undefined ? `${decision.seconds} s` : `${Math.ceil((until - now) / 1000)} s from now`;
      throw new InvalidAgentResponseError(`wait of ${asked} is longer than limits.maxWaitSeconds (${max} s)`, {
        field: decision.until === undefined ? 'seconds' : 'until',
      });
    }
    return { kind: 'wait', step, since: now, until: Math.max(now, until), ...(decision.input !== undefined ? { input: decision.input } : {}) };
  }
  const timeout = decision.timeoutSeconds ?? max;
  if (timeout > max) {
    throw new InvalidAgentResponseError(`timeout_seconds ${timeout} is longer than limits.maxWaitSeconds (${max} s)`, { field: 'timeout_seconds' });
  }
  return {
    kind: 'callback',
    step,
    since: now,
    until: now + timeout * 1000,
    token: newCallbackToken(context.branchId, step),
    ...(decision.message !== undefined ? { message: decision.message } : {}),
  };
}

/** After the suspending write: the event, then the wake-up (a crash between them: the step's redelivery sends it). */
export async function announceSuspension(deps: SpawnerDeps, branch: BranchRecord, suspension: Suspension): Promise<void> {
  await publish(deps, suspendedEvent(branch, suspension, deps.clock.now()));
  hit(deps, 'before-enqueue', branch, `${branch.id}@${branch.stepCount}~wake`);
  await sendWake(deps, branch, suspension);
}

/** Sends the branch's wake-up, delayed by the time left (at most MAX_DELAY_SECONDS: it may come back early). */
export async function sendWake(deps: Pick<SpawnerDeps, 'queue' | 'clock'>, branch: Scope & { id: string }, suspension: Suspension): Promise<void> {
  const left = Math.max(0, Math.ceil((suspension.until - deps.clock.now()) / 1000));
  const message: StepMessage = { ...scopeOf(branch), branchId: branch.id, step: suspension.step, wake: true };
  await deps.queue.send([message], { delaySeconds: Math.min(left, MAX_DELAY_SECONDS) });
}

/**
 * What carries a branch on after the step that advanced it died before it was done: a suspension
 * is told again (its event, the same eventId, and its wake-up), otherwise the next step is sent.
 */
export async function sendNext(deps: SpawnerDeps, branch: BranchRecord): Promise<void> {
  if (branch.suspended) await announceSuspension(deps, branch, branch.suspended);
  else await deps.queue.send([{ ...scopeOf(branch), branchId: branch.id, step: branch.stepCount }]);
}

export type WakeOutcome = 'waiting' | 'failed' | 'skipped';

/**
 * A step message for a suspended branch, or a wake-up (executeStep calls it after the checks every
 * step makes). Returns the branch to run its agent step on once a wait is over, else what happened.
 */
export async function wakeOrWait(
  deps: SpawnerDeps,
  branch: BranchRecord,
  message: StepMessage,
  delivery: Delivery,
): Promise<BranchRecord | WakeOutcome> {
  const suspension = branch.suspended;
  if (!suspension) {
    // This wake-up woke the branch, then its worker died before the agent call: the call is its to make.
    return message.wake && branch.advancedBy === WorkMark.step(delivery.messageId) ? branch : 'skipped';
  }
  // A plain step message never wakes a suspended branch; nor does an old wake-up.
  if (!message.wake || suspension.step !== message.step) return 'skipped';
  const now = deps.clock.now();
  if (now < suspension.until) {
    // Early: the queue's delay is shorter than the wait, or a restart made the message visible.
    await sendWake(deps, branch, suspension);
    return 'waiting';
  }
  if (suspension.kind === 'callback') {
    const seconds = Math.round((suspension.until - suspension.since) / 1000);
    const error = `CallbackTimeout: no answer to the callback within its ${seconds} s timeout (at ${new Date(suspension.until).toISOString()})`;
    const ended = await endBranch(deps, branch, { status: 'FAILED', by: WorkMark.step(delivery.messageId), error, atVersion: true }, { taskToken: message.taskToken });
    return ended ? 'failed' : 'skipped';
  }
  const input = suspension.input !== undefined
    ? suspension.input
    : { wait_over: { since: new Date(suspension.since).toISOString(), until: new Date(suspension.until).toISOString() } };
  const woken = await deps.store.updateBranch(scopeOf(branch), branch.id, branch.version, {
    suspended: null,
    input,
    advancedBy: WorkMark.step(delivery.messageId),
  });
  if (!woken) return 'skipped';
  await publish(deps, resumedEvent(woken, suspension, now));
  return woken;
}

/** What answering a callback did. */
export interface CallbackAnswered {
  runId: string;
  branchId: string;
  status: 'ANSWERED';
}

/**
 * Answers a callback: the branch suspended on `token` goes on with `answer` as its next input,
 * exactly once. Refusals: a token that names no callback (404), an answer too large or too deep
 * (413 / 400), a callback answered before (409 ConflictError), a callback whose branch ended —
 * cancelled, failed on the callback's timeout — or whose timeout passed (410 GoneError).
 */
export async function answerCallback(
  deps: Pick<SpawnerDeps, 'store' | 'queue' | 'events' | 'clock'>,
  scope: Scope,
  token: string,
  answer: unknown,
): Promise<CallbackAnswered> {
  const { branchId, step } = parseCallbackToken(token);
  checkAnswer(answer);
  const run = await deps.store.getRun(scope);
  if (!run) throw new NotFoundError(`run ${scope.runId} not found`);
  for (;;) {
    const branch = await deps.store.getBranch(scope, branchId);
    const suspension = branch?.suspended;
    if (!branch || !(suspension?.kind === 'callback' && suspension.token === token)) {
      if (branch?.answeredCallbacks?.includes(token)) {
        await finishAnswer(deps, branch, step);
        throw new ConflictError(`callback of branch ${branchId} was answered already; the first answer was taken and this one is refused`);
      }
      throw new NotFoundError(`no callback with this token in run ${scope.runId}`);
    }
    if (isTerminal(branch.status)) {
      const why = branch.status === 'CANCELLED' ? 'was cancelled' : `ended ${branch.status}`;
      throw new GoneError(`callback of branch ${branchId} can no longer be answered: the branch ${why}${branch.error ? ` (${branch.error})` : ''}`);
    }
    const now = deps.clock.now();
    if (now >= suspension.until) {
      // Its wake-up fails the branch (it may be on its way): the answer came too late either way.
      throw new GoneError(`callback of branch ${branchId} timed out at ${new Date(suspension.until).toISOString()}; the answer is refused`);
    }
    const answered = await deps.store.updateBranch(scope, branchId, branch.version, {
      suspended: null,
      input: answer,
      advancedBy: WorkMark.callback(suspension.step),
      answeredCallbacks: [...(branch.answeredCallbacks ?? []), token].slice(-ANSWERED_TOKENS_KEPT),
    });
    // Lost a race (a concurrent answer, a cancel, the timeout, the step moving on): read it again.
    if (!answered) continue;
    await deps.events.publish([resumedEvent(answered, suspension, now)]);
    await deps.queue.send([{ ...scope, branchId, step: answered.stepCount }]);
    return { runId: scope.runId, branchId, status: 'ANSWERED' };
  }
}

/**
 * A repeated answer finds the branch resumed: if it is still where the first answer left it, that
 * answer's step message may have died with its process; it is sent again (a repeat is harmless).
 */
async function finishAnswer(deps: Pick<SpawnerDeps, 'queue'>, branch: BranchRecord, step: number): Promise<void> {
  if (branch.status !== 'RUNNING' || branch.suspended || branch.stepCount !== step) return;
  if (branch.advancedBy !== WorkMark.callback(step)) return;
  await deps.queue.send([{ ...scopeOf(branch), branchId: branch.id, step }]);
}

function checkAnswer(answer: unknown): void {
  if (answer === undefined) throw new ValidationError('the answer must be a JSON value', 'answer');
  const bytes = jsonBytes(answer);
  if (bytes > MAX_CALLBACK_ANSWER_BYTES) {
    throw new PayloadTooLargeError(`the answer is ${bytes} bytes of JSON; at most ${MAX_CALLBACK_ANSWER_BYTES} are taken`, bytes, MAX_CALLBACK_ANSWER_BYTES, { field: 'answer' });
  }
  checkDocumentBounds(answer, 'answer');
}

/** `<branchId>~<step>~<secret>`: the branch and step it is for, and 128 random bits nobody can guess. */
const TOKEN = /^(root(?:\.\d{1,9}){0,100})~(\d{1,9})~([0-9a-f]{32})$/;

export function newCallbackToken(branchId: string, step: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const secret = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${branchId}~${step}~${secret}`;
}

export function parseCallbackToken(token: string): { branchId: string; step: number } {
  const m = token.length <= 1200 ? TOKEN.exec(token) : null;
  if (!m) throw new ValidationError('token: not a callback token (copy it from the BranchWaitingForCallback event or the branch view)', 'token');
  return { branchId: m[1], step: Number(m[2]) };
}

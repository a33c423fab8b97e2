/**
 * One branch step: call the branch's current agent, read its decision, and persist what
 * follows (next step, spawn, completion, failure). Safe under repeated and concurrent delivery:
 * every write is conditional on the branch version, and a stale message is acknowledged.
 */
import { budgetRefusesCall, chargeCall, endRunAtDeadline, withRunDeadline } from './budget-gate';
import { AgentInvocationError, boundedMessage, ConflictError, errorMessage, InvalidAgentResponseError, PayloadTooLargeError, TransientError } from '../errors';
import { toolCalledEvent } from '../events';
import { DEFAULT_LIMITS, refusalError, refusalInput } from '../limits';
import { groupSize, isTerminal, spawnWidth, type BranchRecord, type ChildGroup, type MemoryEntry, type RunRecord, type Suspension } from '../model';
import { WorkMark } from '../work-mark';
import type { AgentReply, BranchPatch, Delivery, StepMessage } from '../ports';
import { parseAgentResponse, type Decision } from '../protocol';
import { allowedTargets, checkTopology } from '../topology';
import { addToolCalls, type ToolCallRecord, type ToolLoopCheckpoint } from '../tools';
import { defined, hit, loadRun, scopeOf, type SpawnerDeps } from './deps';
import { branchEnds, endBranch, endedAbove, tellEnd } from './end-branch';
import { readableResponse } from './readable-json';
import { checkSpawn, spawnGroups, spawnStateFromDecision } from './spawn';
import { callAgent, validUsage, type CallAttempts } from './agent-call';
import { openSyncPoint } from './sync-point';
import { announceSuspension, sendNext, suspensionFor, wakeOrWait } from './suspend';
import { BRANCH_TIMED_OUT } from './fan-out-tasks';

export type StepOutcome =
  | 'advanced'
  | 'spawned'
  | 'completed'
  | 'failed'
  | 'skipped'
  | 'recovered'
  /** The reply suspended the branch (a wait, a callback). */
  | 'suspended'
  /** A wake-up came back before its time and was sent again. */
  | 'waiting';

export async function executeStep(deps: SpawnerDeps, message: StepMessage, delivery: Delivery): Promise<StepOutcome> {
  const scope = scopeOf(message);
  const run = await loadRun(deps, scope);
  let branch = await deps.store.getBranch(scope, message.branchId);
  if (!run || !branch) return 'skipped';
  hit(deps, 'after-read-branch', scope, `${branch.id}@${message.step}`);

  if (isTerminal(branch.status)) {
    // A late or repeated message: make sure the end was told (idempotent), then drop it. If this
    // very delivery ended the branch, its first attempt died before it finished: the end event
    // goes out again (see end-branch.ts).
    await tellEnd(deps, branch, WorkMark.step(delivery.messageId), { taskToken: message.taskToken, batch: message.batch, firstTry: delivery.receiveCount === 1 });
    // This very delivery spawned and died before telling its children, and the parent ended
    // meanwhile (its end left that telling to this delivery): tell them, and cancel those it missed.
    const spawn = branch.spawn;
    if (spawn && !spawn.announced && spawn.step === message.step && spawn.announcer === WorkMark.step(delivery.messageId)) {
      await branchEnds.cancelChildren(deps, branch, false, spawn.announcer);
    }
    return 'skipped';
  }
  if (branch.status === 'WAITING') {
    // This very message spawned, and its first attempt died before it finished opening the sync
    // point. Another message of the step (two settlements both resumed the parent) leaves the
    // opening to the delivery that spawned, alive or retried: opening it too would announce the
    // children again while that one announces them.
    if (branch.spawn?.step === message.step && branch.advancedBy === WorkMark.step(delivery.messageId)) {
      await openSyncPoint(deps, branchEnds, run, branch);
      return 'recovered';
    }
    return 'skipped';
  }
  if (branch.stepCount !== message.step) {
    if (branch.status === 'RUNNING' && branch.stepCount === message.step + 1 && branch.advancedBy === WorkMark.step(delivery.messageId)) {
      // This very message advanced the branch, then its worker died before sending the next step
      // (or, when it suspended the branch, its wake-up).
      await sendNext(deps, branch);
      return 'recovered';
    }
    return 'skipped';
  }
  // The run or the parent may have ended while this message waited (a cancel, an early exit, a
  // cascade cut short by a crash): the branch ends CANCELLED instead of running on. The ends above
  // were written before their cascades read this branch, so either this read sees them or their
  // cascade sees this branch.
  const above = await endedAbove(deps, branch);
  if (above) {
    await endBranch(deps, branch, { status: 'CANCELLED', by: WorkMark.step(delivery.messageId), error: above, atVersion: true }, { taskToken: message.taskToken, batch: message.batch });
    return 'skipped';
  }
  if (branch.status === 'PENDING') {
    const started = await deps.store.updateBranch(scope, branch.id, branch.version, defined({
      status: 'RUNNING' as const,
      startedAt: deps.clock.now(),
      taskToken: message.taskToken,
      batch: message.batch,
    }));
    if (!started) return 'skipped';
    branch = started;
  } else if (message.taskToken && !branch.taskToken) {
    branch = { ...branch, taskToken: message.taskToken };
  }
  // A batched child's own timeout is enforced where it runs: before each of its steps, and as the
  // bound of each agent call (its batch's timeout is only the safety net: core/fan-out-plan.ts).
  const left = batchedTimeLeftMs(deps, run, branch);
  if (left !== undefined && left <= 0) return timedOut(deps, branch, delivery);
  if (branch.suspended || message.wake) {
    const woken = await wakeOrWait(deps, branch, message, delivery);
    if (typeof woken === 'string') return woken;
    branch = woken;
  }
  return runAgentStep(deps, run, branch, delivery);
}

/** A batched child's time left before its branch timeout (undefined for any other branch). */
function batchedTimeLeftMs(deps: SpawnerDeps, run: RunRecord, branch: BranchRecord): number | undefined {
  if (!branch.batch || branch.startedAt === undefined) return undefined;
  return branch.startedAt + run.limits.branchTimeoutSeconds * 1000 - deps.clock.now();
}

/** A batched child past its timeout ends TIMED_OUT, as its own iteration's timeout would end it. */
async function timedOut(deps: SpawnerDeps, branch: BranchRecord, delivery: Delivery): Promise<StepOutcome> {
  await endBranch(deps, branch, { status: 'TIMED_OUT', by: WorkMark.step(delivery.messageId), error: BRANCH_TIMED_OUT, atVersion: true });
  return 'failed';
}

async function runAgentStep(
  deps: SpawnerDeps,
  run: RunRecord,
  branch: BranchRecord,
  delivery: Delivery,
): Promise<StepOutcome> {
  const step = branch.stepCount;
  if (step >= run.limits.maxStepsPerBranch) {
    return failBranch(deps, branch, delivery, `LimitExceeded maxStepsPerBranch: the branch made ${step} agent calls; maxStepsPerBranch is ${run.limits.maxStepsPerBranch}`);
  }
  const definition = run.agents[branch.agent];
  if (!definition) return failBranch(deps, branch, delivery, `agent "${branch.agent}" is not registered in this run`);

  // Run budgets (maxRunTokens, maxRunSeconds): no call starts once one is spent.
  if (await budgetRefusesCall(deps, run)) return 'skipped';
  let reply: AgentReply;
  const branchSignal = deps.signalFor?.(scopeOf(branch), branch.id);
  // Every call is bounded: by the run's agent call limit, and below what the worker has left.
  const callSeconds = run.limits.agentTimeoutSeconds ?? DEFAULT_LIMITS.agentTimeoutSeconds;
  const workerMs = delivery.deadline === undefined ? undefined : delivery.deadline - deps.clock.now();
  const branchLeftMs = batchedTimeLeftMs(deps, run, branch);
  const cutAtBranchTimeout = branchLeftMs !== undefined && branchLeftMs < callSeconds * 1000;
  const deadline = withRunDeadline(deps, run, branchSignal, { callMs: cutAtBranchTimeout ? Math.max(1, branchLeftMs) : callSeconds * 1000, workerMs });
  const signal = deadline.signal;
  // A tool loop keeps its conversation on the branch as it grows: a redelivered step (or a retried
  // attempt) continues from there. Each save is conditional on the branch version; a lost race
  // means the step is someone else's.
  const resumeFrom = branch.toolLoop?.step === step ? branch.toolLoop : undefined;
  let checkpointing = true;
  const checkpoint = () => ({
    ...(branch.toolLoop?.step === step ? { resumeFrom: branch.toolLoop } : {}),
    save: async (toolLoop: ToolLoopCheckpoint) => {
      if (!checkpointing) return;
      try {
        const saved = await deps.store.updateBranch(scopeOf(branch), branch.id, branch.version, { toolLoop });
        if (!saved) throw new ConflictError(`branch ${branch.id} moved on during step ${step}`);
        branch = saved;
      } catch (error) {
        if (!(error instanceof PayloadTooLargeError)) throw error;
        // Too large to keep: the rest of this loop runs without checkpoints (a redelivery starts it over).
        checkpointing = false;
      }
    },
  });
  // Each user tool call goes out as a ToolCalled event when it ends, and into the branch's toolStats with the step.
  const toolCalls: ToolCallRecord[] = [...(resumeFrom?.records ?? [])];
  const told: Promise<void>[] = [];
  const onToolCall = (record: ToolCallRecord) => {
    const call = toolCalls.push(record) - 1;
    told.push(deps.events.publish([toolCalledEvent(branch, step, call, record, deps.clock.now())]));
  };
  // The agent's retry policy (agent-call.ts): every attempt within this step's call bound.
  const attempts: CallAttempts = { retries: 0 };
  const call = {
    branch,
    step,
    definition,
    maxAttempts: run.limits.maxAgentAttempts ?? DEFAULT_LIMITS.maxAgentAttempts,
    signal,
    until: deps.clock.now() + callSeconds * 1000,
    invalid: (r: AgentReply) => readDecision(deps, run, branch, step, r).invalid,
  };
  try {
    reply = await callAgent(deps, call, async (retryAttempt, called) => {
      const answer = await untilAborted(deps.invoker.invoke({
        ...scopeOf(branch),
        agentName: branch.agent,
        definition: called,
        branchId: branch.id,
        step,
        input: branch.input,
        memory: branch.memory,
        allowed: allowedTargets({ agents: run.agents, branch }),
        depth: branch.depth,
        branchType: branch.type,
        ...(delivery.receiveCount !== undefined ? { attempt: delivery.receiveCount } : {}),
        retryAttempt,
        signal,
        maxToolCalls: run.limits.maxToolCallsPerStep,
        onToolCall,
        checkpoint: checkpoint(),
      }), signal);
      if (answer === null || typeof answer !== 'object') throw new TypeError(`the invoker returned ${describeValue(answer)}, not a reply`);
      return answer;
    }, attempts);
  } catch (error) {
    if (deadline.expired()) {
      await endRunAtDeadline(deps, run);
      return 'skipped';
    }
    const cut = deadline.cutBy();
    // Not the call's fault: the invocation started too late for it. The step comes back (backoff).
    if (cut === 'worker') throw new TransientError(`agent ${branch.agent}: the step worker's invocation ended before the call could`, { cause: error });
    if (cut === 'call' && cutAtBranchTimeout) return timedOut(deps, branch, delivery);
    if (cut === 'call') {
      const message = `agent ${branch.agent} failed: AgentTimeoutError: no answer within limits.agentTimeoutSeconds (${callSeconds} s)`;
      return failBranch(deps, branch, delivery, message, { stepCount: step + 1 });
    }
    // Aborted because the branch or its run ended elsewhere: nothing of ours to record.
    if (signal?.aborted) return 'skipped';
    // The branch moved on while the tool loop ran (another delivery, a cancel): nothing of ours to record.
    if (error instanceof ConflictError) return 'skipped';
    // Throttling and the like: the message comes back later (and ends in the DLQ if it never passes).
    if (error instanceof TransientError) throw error;
    // Tokens the call reported before it failed were spent: they count (budget and metrics), with the failed attempts'.
    const spent = sumUsage(attempts.spent, error instanceof AgentInvocationError && validUsage(error.usage) ? error.usage : undefined);
    if (await chargeCall(deps, run, branch, spent)) return 'skipped';
    return failBranch(deps, branch, delivery, `agent ${branch.agent} failed: ${agentFailure(error)}`, defined({
      stepCount: step + 1,
      toolStats: addToolCalls(branch.toolStats, toolCalls),
      usage: spent ? addUsage(branch.usage, spent) : undefined,
      toolLoop: branch.toolLoop ? null : undefined,
      agentRetries: retriesAfter(branch, attempts),
    }));
  } finally {
    deadline.done();
    await Promise.all(told);
  }

  const spent = sumUsage(attempts.spent, validUsage(reply.usage) ? reply.usage : undefined);
  if (await chargeCall(deps, run, branch, spent)) return 'skipped';

  const read = readDecision(deps, run, branch, step, reply);
  const response = read.response;
  const memory: MemoryEntry[] = [
    ...branch.memory,
    { role: 'user', agent: branch.agent, content: branch.input ?? null },
    { role: 'assistant', agent: branch.agent, content: response ?? null },
  ];
  const usage = spent ? addUsage(branch.usage, spent) : undefined;
  const toolStats = addToolCalls(branch.toolStats, toolCalls);
  const toolLoop = branch.toolLoop ? null : undefined;
  const agentRetries = retriesAfter(branch, attempts);
  const base = defined({ stepCount: step + 1, memory, usage, toolStats, toolLoop, agentRetries, advancedBy: WorkMark.step(delivery.messageId), taskToken: branch.taskToken });

  const { decision, suspension, invalid: error } = read;
  if (error) {
    const invalidCount = branch.invalidCount + 1;
    if (invalidCount > run.limits.maxInvalidResponses) {
      return failBranch(deps, branch, delivery, `InvalidAgentResponse after ${invalidCount} tries: ${error.message}`, base);
    }
    const input = { error: 'InvalidAgentResponse', field: error.field, message: error.message };
    return advance(deps, branch, delivery, { ...base, input, invalidCount });
  }

  switch (decision.kind) {
    case 'complete':
      return completeBranch(deps, branch, delivery, decision.content, base);
    case 'continue':
      return advance(deps, branch, delivery, { ...base, input: decision.input });
    case 'handoff': {
      if (branch.type === 'CONVERSATION' && branch.maxTurns !== undefined && step + 1 >= branch.maxTurns) {
        const content = { max_turns_reached: true, turns: step + 1, last_message: decision.input ?? null };
        return completeBranch(deps, branch, delivery, content, base);
      }
      return advance(deps, branch, delivery, { ...base, agent: decision.agent, input: decision.input });
    }
    case 'wait':
    case 'callback': {
      const suspended = await write(deps, branch, { ...base, suspended: suspension! });
      if (suspended.kind === 'conflict') return 'skipped';
      if (suspended.kind === 'too-large') return failBranch(deps, branch, delivery, suspended.message, base);
      await announceSuspension(deps, suspended.branch, suspension!);
      return 'suspended';
    }
    case 'spawn': {
      const refusal = await checkSpawn(deps, run, branch, decision, step);
      if (refusal) {
        const refusalCount = branch.refusalCount + 1;
        if (refusalCount > 1) return failBranch(deps, branch, delivery, refusalError(refusal).message, base);
        return advance(deps, branch, delivery, { ...base, input: refusalInput(refusal), refusalCount });
      }
      const groups = await spawnGroups(deps, branch, decision, step, delivery.messageId);
      // The children's BranchCreated is this delivery's to tell (its retry's, should it die first).
      const spawn = { ...spawnStateFromDecision(branch, decision, step, groups), announcer: WorkMark.step(delivery.messageId) };
      const waiting = await write(deps, branch, {
        ...base,
        // A wide spawn's answer lives on in its children's records, not in the parent's memory.
        ...(groups === decision.groups ? {} : { memory: [...branch.memory, memory[memory.length - 2], wideSpawnEntry(branch.agent, groups)] }),
        status: 'WAITING',
        type: branch.type === 'SIMPLE' ? 'NESTED' : branch.type,
        spawn,
        childCount: branch.childCount + spawnWidth(spawn),
      });
      if (waiting.kind === 'conflict') return 'skipped';
      if (waiting.kind === 'too-large') return failBranch(deps, branch, delivery, waiting.message, base);
      await openSyncPoint(deps, branchEnds, run, waiting.branch, Array.isArray(spawn.childSpecs) ? undefined : decision.groups[0]);
      return 'spawned';
    }
  }
}

type WriteResult =
  | { kind: 'ok'; branch: BranchRecord }
  | { kind: 'conflict' }
  | { kind: 'too-large'; message: string };

/** Conditional write of the branch; a too-large item becomes a result, not an exception. */
async function write(deps: SpawnerDeps, branch: BranchRecord, patch: BranchPatch): Promise<WriteResult> {
  try {
    const updated = await deps.store.updateBranch(scopeOf(branch), branch.id, branch.version, patch);
    return updated ? { kind: 'ok', branch: updated } : { kind: 'conflict' };
  } catch (error) {
    if (!(error instanceof PayloadTooLargeError)) throw error;
    return { kind: 'too-large', message: `the branch state would be too large to store: ${error.message}` };
  }
}

async function advance(deps: SpawnerDeps, branch: BranchRecord, delivery: Delivery, patch: BranchPatch): Promise<StepOutcome> {
  const written = await write(deps, branch, patch);
  if (written.kind === 'conflict') return 'skipped';
  if (written.kind === 'too-large') return failBranch(deps, branch, delivery, written.message);
  const next = written.branch;
  hit(deps, 'before-enqueue', next, `${next.id}@${next.stepCount}`);
  await deps.queue.send([{ ...scopeOf(next), branchId: next.id, step: next.stepCount }]);
  return 'advanced';
}

async function completeBranch(
  deps: SpawnerDeps,
  branch: BranchRecord,
  delivery: Delivery,
  content: unknown,
  base: BranchPatch,
): Promise<StepOutcome> {
  try {
    const done = await endBranch(deps, branch, { status: 'COMPLETED', by: WorkMark.step(delivery.messageId), result: content ?? null, patch: base, atVersion: true });
    return done ? 'completed' : 'skipped';
  } catch (error) {
    if (!(error instanceof PayloadTooLargeError)) throw error;
    return failBranch(deps, branch, delivery, `the branch state would be too large to store: ${error.message}`);
  }
}

/** Fails the branch at its current version (a lost race means someone else moved it on). */
async function failBranch(
  deps: SpawnerDeps,
  branch: BranchRecord,
  delivery: Delivery,
  error: string,
  base: BranchPatch = {},
): Promise<StepOutcome> {
  const end = { status: 'FAILED' as const, by: WorkMark.step(delivery.messageId), error, atVersion: true };
  let failed: BranchRecord | undefined;
  try {
    failed = await endBranch(deps, branch, { ...end, patch: base });
  } catch (e) {
    if (!(e instanceof PayloadTooLargeError)) throw e;
    // Even the memory would not fit: fail without it.
    failed = await endBranch(deps, branch, end);
  }
  return failed ? 'failed' : 'skipped';
}

/** What the parent's memory keeps of a wide spawn's answer: how many children, in which groups. */
function wideSpawnEntry(agent: string, groups: ChildGroup[]): MemoryEntry {
  return {
    role: 'assistant',
    agent,
    content: { next_action: 'parallel_invoke', children: groups.map(groupSize), note: 'each child keeps its own spec (too many to repeat here)' },
  };
}

function addUsage(
  total: { inputTokens: number; outputTokens: number } | undefined,
  more: { inputTokens: number; outputTokens: number },
): { inputTokens: number; outputTokens: number } {
  return { inputTokens: (total?.inputTokens ?? 0) + more.inputTokens, outputTokens: (total?.outputTokens ?? 0) + more.outputTokens };
}

function sumUsage(
  a: { inputTokens: number; outputTokens: number } | undefined,
  b: { inputTokens: number; outputTokens: number } | undefined,
): { inputTokens: number; outputTokens: number } | undefined {
  return a && b ? addUsage(a, b) : (a ?? b);
}

/** The branch's retries with this step's (unchanged when it made none). */
function retriesAfter(branch: BranchRecord, attempts: CallAttempts): number | undefined {
  return attempts.retries ? (branch.agentRetries ?? 0) + attempts.retries : undefined;
}

/** The reply's decision, or why it is outside the protocol (with what memory keeps of it). */
function readDecision(
  deps: SpawnerDeps,
  run: RunRecord,
  branch: BranchRecord,
  step: number,
  reply: AgentReply,
):
  | { response: unknown; decision: Decision; suspension?: Suspension; invalid?: undefined }
  | { response: unknown; decision?: undefined; suspension?: undefined; invalid: InvalidAgentResponseError } {
  // Whatever came back must be plain JSON before it is parsed or stored (see readableResponse).
  const readable = readableResponse(reply.response);
  const response = readable.ok ? readable.value : `[unreadable agent response: ${readable.reason}]`;
  try {
    if (reply.invalid) throw new InvalidAgentResponseError(reply.invalid.message, { field: reply.invalid.field });
    if (!readable.ok) throw new InvalidAgentResponseError(`response ${readable.reason}`, { field: '(root)' });
    const decision = parseAgentResponse(response, { currentAgent: branch.agent, currentInput: branch.input });
    // A JSON text parses into any depth; what the decision carries on must be storable too.
    const carried = readableResponse(decision);
    if (!carried.ok) throw new InvalidAgentResponseError(`response ${carried.reason}`, { field: '(root)' });
    checkTopology(decision, { agents: run.agents, aggregators: deps.aggregators.names(), branch });
    const suspension =
      decision.kind === 'wait' || decision.kind === 'callback'
        ? suspensionFor(decision, { run, branchId: branch.id, step: step + 1, now: deps.clock.now() })
        : undefined;
    return { response, decision, suspension };
  } catch (error) {
    if (!(error instanceof InvalidAgentResponseError)) throw error;
    return { response, invalid: error };
  }
}

/**
 * The call's answer, or the signal's reason as soon as it aborts (the deadline, the branch's or
 * the run's end): the step does not wait on an agent that ignores its signal, and what such an
 * agent answers later is dropped (ignored, never stored).
 */
function untilAborted<T>(call: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return call;
  call.catch(() => undefined); // abandoned on abort: its later failure is nobody's
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function describeValue(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

/**
 * What an agent's failure says after "agent X failed: ": the invoker's own message as is (its
 * class name would repeat what the sentence says), any other error with its name (TypeError,
 * AgentTimeoutError, ...), so that `$fail: boom` reads `agent X failed: boom`.
 */
function agentFailure(error: unknown): string {
  if (error instanceof AgentInvocationError && error.name === 'AgentInvocationError') return boundedMessage(error.message);
  return errorMessage(error);
}

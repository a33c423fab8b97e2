/**
 * Which lifecycle events go to the team's EventBridge bus (each entry is billed): run-level
 * events always; per-branch events (BranchCreated/Completed/Failed/Cancelled, SyncPointReached,
 * ToolCalled, BranchRetryScheduled, AgentRetryScheduled, ...) all of them, only the branch ends,
 * or none, and of those only a sampled fraction of the branches. The sample is decided by the branch (a stable draw
 * on team, run and branch id), so a sampled branch sends all its events and a run sends the same
 * ones however often it is replayed. The bus and the run's stored stream (recordedEvents) are
 * filtered; the trace, the local hooks and the handlers' metrics see every event.
 */
import { isRunEnd, type LifecycleEvent, type EventType } from './events';
import type { EventPublisher } from './ports';
import { stableChance } from './stable-chance';

export const BRANCH_EVENT_MODES = ['all', 'ends', 'off'] as const;
export type BranchEventMode = (typeof BRANCH_EVENT_MODES)[number];

export interface EventPolicy {
  /** Per-branch events sent: `all`, only the branch ends, or `off`. */
  branches: BranchEventMode;
  /** The fraction of branches whose events are sent, in (0, 1]. */
  sample: number;
}

/** Every event to the bus (the default). */
export const SEND_ALL_EVENTS: EventPolicy = { branches: 'all', sample: 1 };

const BRANCH_ENDS: ReadonlySet<EventType> = new Set(['BranchCompleted', 'BranchFailed', 'BranchCancelled']);
/** The draw's seed: fixed, so the sample is the same in every function and every replay. */
const SAMPLE_SEED = 0x5eed;

/** Whether the event goes to the bus under the policy. */
export function sendsToBus(event: LifecycleEvent, policy: EventPolicy = SEND_ALL_EVENTS): boolean {
  if (event.type === 'RunStarted' || isRunEnd(event)) return true;
  if (policy.branches === 'off') return false;
  if (policy.branches === 'ends' && !BRANCH_ENDS.has(event.type)) return false;
  return policy.sample >= 1 || stableChance(SAMPLE_SEED, `${event.team}/${event.runId}/${event.branchId ?? ''}`) < policy.sample;
}

/** A publisher that passes on only the events the policy sends (the bus's). */
export function busPublisher(publisher: EventPublisher, policy: EventPolicy): EventPublisher {
  if (policy.branches === 'all' && policy.sample >= 1) return publisher;
  return {
    publish: async (events) => {
      const sent = events.filter((event) => sendsToBus(event, policy));
      if (sent.length) await publisher.publish(sent);
    },
  };
}

/** Checks a policy from outside (team config, environment); the error names the bad field. */
export function eventPolicyProblem(policy: { branches?: unknown; sample?: unknown }): { field: 'branches' | 'sample'; message: string } | undefined {
  if (!BRANCH_EVENT_MODES.includes(policy.branches as BranchEventMode)) return { field: 'branches', message: `must be one of ${BRANCH_EVENT_MODES.join(', ')}` };
  const sample = policy.sample;
  if (typeof sample !== 'number' || !Number.isFinite(sample) || sample <= 0 || sample > 1) return { field: 'sample', message: 'must be a number in (0, 1]' };
  return undefined;
}

/**
 * Fault injection for the local runtime (`--chaos`): duplicate deliveries, crashes at named
 * points of the worker, flaky agents, poisoned branches. Deterministic for a given seed.
 *
 * A crash fault crashes each piece of work once at its point: the first time a given step,
 * sync point or branch end reaches the point, the worker "dies" there (throws); its retry (the
 * message coming back, the state machine's retrier) passes. So every piece of work of a run is
 * crashed at that point (real coverage: each step of each branch, each sync point's aggregation)
 * and the number of crashes is bounded by the amount of work, whatever the interleaving.
 */
import { ValidationError } from '../core/errors';
import type { AgentInvoker, SendOptions, StepMessage, StepQueue } from '../core/ports';
import { stableChance } from '../core/stable-chance';
import type { CrashPoint, Faults } from '../core/use-cases';

export const CRASH_POINTS: CrashPoint[] = [
  'after-read-branch',
  'after-write-children',
  'before-enqueue',
  'after-mark-complete',
  'before-task-success',
  'inside-aggregate',
];

export interface ChaosOptions {
  duplicateDelivery?: boolean;
  crash?: CrashPoint[];
  /** Probability that an agent call throws (decided per branch, step and agent from the seed). */
  agentFlaky?: number;
  /** Branch ids whose every step crashes after reading the branch: poison messages, for the DLQ. */
  poison?: string[];
  seed?: number;
}

export class InjectedCrash extends Error {
  constructor(
    readonly point: CrashPoint,
    readonly key: string,
  ) {
    super(`chaos: injected crash at ${point} (${key})`);
    this.name = 'InjectedCrash';
  }
}

export interface RuntimeFaults extends Faults {
  wrapInvoker(invoker: AgentInvoker): AgentInvoker;
  /** Faults injected so far, by kind: crash points, `agent-flaky`, `poison`. */
  readonly injected: Record<string, number>;
}

/** The faults `--chaos` takes, as its help and its errors list them. */
export const CHAOS_FAULTS = 'duplicate-delivery, crash=<point>, agent-flaky=<p>, poison=<branchId>';

/** Parses `duplicate-delivery,crash=before-enqueue,agent-flaky=0.2,poison=root.1`. */
export function parseChaos(spec: string | undefined, seed = 1): ChaosOptions | undefined {
  if (!spec) return undefined;
  const options: ChaosOptions = { seed };
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, value] = part.split('=');
    if (name === 'duplicate-delivery') options.duplicateDelivery = true;
    else if (name === 'crash') {
      if (!CRASH_POINTS.includes(value as CrashPoint)) {
        throw new ValidationError(`--chaos crash=${value}: the points are ${CRASH_POINTS.join(', ')}`, 'chaos');
      }
      options.crash = [...(options.crash ?? []), value as CrashPoint];
    } else if (name === 'agent-flaky') {
      const p = Number(value);
      if (!(p >= 0 && p <= 1)) throw new ValidationError(`--chaos agent-flaky=${value}: give a probability from 0 to 1`, 'chaos');
      options.agentFlaky = p;
    } else if (name === 'poison') {
      if (!value) throw new ValidationError('--chaos poison=<branchId>: name the branch, e.g. poison=root.1', 'chaos');
      options.poison = [...(options.poison ?? []), value];
    } else {
      throw new ValidationError(`--chaos ${part}: known faults are ${CHAOS_FAULTS}`, 'chaos');
    }
  }
  return options;
}

/** The branch id in a crash key (`team/runId/branchId@step`), for poison matching. */
function branchOfKey(key: string): string {
  const subject = key.slice(key.lastIndexOf('/') + 1);
  return subject.split('@')[0];
}

export function createFaults(options: ChaosOptions = {}): RuntimeFaults {
  const injected: Record<string, number> = {};
  const crashed = new Set<string>();
  const count = (kind: string) => (injected[kind] = (injected[kind] ?? 0) + 1);
  const seed = options.seed ?? 1;
  return {
    injected,
    hit(point, key) {
      if (point === 'after-read-branch' && options.poison?.includes(branchOfKey(key))) {
        count('poison');
        throw new InjectedCrash(point, key);
      }
      if (!options.crash?.includes(point)) return;
      // Once per piece of work and point: the retry of a crashed piece of work gets through.
      const id = `${point}|${key}`;
      if (crashed.has(id)) return;
      crashed.add(id);
      count(point);
      throw new InjectedCrash(point, key);
    },
    wrapInvoker(invoker) {
      const p = options.agentFlaky;
      if (!p) return invoker;
      return {
        invoke: async (call) => {
          // Decided by the branch, step and agent (not by call order), so a seed gives the same
          // failures whatever the interleaving of the run.
          if (stableChance(seed, `${call.branchId}@${call.step}:${call.agentName}`) < p) {
            count('agent-flaky');
            throw new Error(`chaos: agent ${call.agentName} failed (agent-flaky=${p})`);
          }
          return invoker.invoke(call);
        },
      };
    },
  };
}

/** Chaos `duplicateDelivery`: every message is sent twice (two SQS messages, as a duplicate delivery would be). */
export function duplicatingQueue(queue: StepQueue): StepQueue {
  return {
    send: async (messages: StepMessage[], options?: SendOptions) => {
      await queue.send(messages, options);
      await queue.send(messages, options);
    },
    redeliverAfter: (receipt, seconds) => queue.redeliverAfter(receipt, seconds),
  };
}

/**
 * Fault injection for the local runtime (`--chaos`): duplicate deliveries, crashes at named
 * points of the worker, flaky agents. Deterministic for a given seed.
 */
import { ValidationError } from '../core/errors';
import type { AgentInvoker } from '../core/ports';
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
  /** Probability that an agent call throws. */
  agentFlaky?: number;
  seed?: number;
}

export class InjectedCrash extends Error {
  constructor(readonly point: CrashPoint) {
    super(`chaos: injected crash at ${point}`);
    this.name = 'InjectedCrash';
  }
}

export interface RuntimeFaults extends Faults {
  wrapInvoker(invoker: AgentInvoker): AgentInvoker;
  readonly injected: Record<string, number>;
}

/** Parses `duplicate-delivery,crash=before-enqueue,agent-flaky=0.2`. */
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
    } else {
      throw new ValidationError(`--chaos ${part}: known faults are duplicate-delivery, crash=<point>, agent-flaky=<p>`, 'chaos');
    }
  }
  return options;
}

/** A small seeded PRNG (mulberry32), so a chaos run can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function createFaults(options: ChaosOptions = {}): RuntimeFaults {
  const injected: Record<string, number> = {};
  const hits = new Map<CrashPoint, number>();
  const rand = random(options.seed ?? 1);
  return {
    injected,
    hit(point) {
      if (!options.crash?.includes(point)) return;
      // Crash every other time the point is reached, so every retry can eventually pass.
      const n = (hits.get(point) ?? 0) + 1;
      hits.set(point, n);
      if (n % 2 === 1) {
        injected[point] = (injected[point] ?? 0) + 1;
        throw new InjectedCrash(point);
      }
    },
    wrapInvoker(invoker) {
      const p = options.agentFlaky;
      if (!p) return invoker;
      return {
        invoke: async (call) => {
          if (rand() < p) {
            injected['agent-flaky'] = (injected['agent-flaky'] ?? 0) + 1;
            throw new Error(`chaos: agent ${call.agentName} failed (agent-flaky=${p})`);
          }
          return invoker.invoke(call);
        },
      };
    },
  };
}

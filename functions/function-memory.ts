/**
 * The memory each branch-spawner function is deployed with: the one table the CDK stack
 * configures from (infra/spawner-functions.ts) and the local tiers meter with (local/invocation-meter.ts),
 * so a local run's Lambda GB-seconds are those the stack would bill.
 */

/** The Lambda entry files (functions/lambda/<name>.ts, each `export const handler`). */
export type SpawnerFunctionName = 'api' | 'trigger' | 'step-worker' | 'record-child-failure' | 'aggregate' | 'dlq-handler';

/**
 * MB per function. The step-worker's default is the measured one (docs/performance.md,
 * "Right-sized workers"): a team may set its own (`workerMemoryMb`); the others do short
 * DynamoDB and SQS work and keep Lambda's usual 512.
 */
export const FUNCTION_MEMORY_MB: Readonly<Record<SpawnerFunctionName, number>> = {
  api: 512,
  trigger: 512,
  // Measured on the rehearsal (bench/worker-size.ts): 124-177 MB for script and http agents at
  // 0 ms and 2 s, 189 MB holding a 600 KB default aggregate; most of an invocation is waiting.
  'step-worker': 512,
  'record-child-failure': 512,
  aggregate: 512,
  'dlq-handler': 512,
};

/** Lambda's own bounds on a function's memory (MB). */
export const LAMBDA_MEMORY_MB = { min: 128, max: 10_240 } as const;

/**
 * Lambda's concurrency quota of an account in a Region by default, and what no function may
 * reserve of it (ReservedConcurrentExecutions beyond the rest fails the deploy).
 */
export const LAMBDA_CONCURRENCY = { accountDefault: 1000, minUnreserved: 100 } as const;

/** The memory a function is deployed with, for a team that may size its step-worker. */
export function functionMemoryMb(name: SpawnerFunctionName, team: { workerMemoryMb?: number } = {}): number {
  return name === 'step-worker' && team.workerMemoryMb !== undefined ? team.workerMemoryMb : FUNCTION_MEMORY_MB[name];
}

/** What the handlers share about their inputs: the run id of a request and the step message. */
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { StepMessage } from '../core/ports';

/** What an idempotency key is kept under (BranchStore.claimRunId): its team, caller and key, hashed. */
export function idempotencyKeyHash(team: string, caller: string, idempotencyKey: string): string {
  return createHash('sha256').update(`${team}\n${caller}\n${idempotencyKey}`).digest('hex');
}

/**
 * A fresh id, or the same id for the same team, caller and Idempotency-Key (so a retried start is
 * one run). Another caller's key names another run: a key never reaches someone else's run.
 */
export function runIdFor(team: string, idempotencyKey: string | undefined, caller?: string): string {
  if (!idempotencyKey) return randomUUID();
  const scoped = caller === undefined ? `${team}\n${idempotencyKey}` : `${team}\n${caller}\n${idempotencyKey}`;
  return `k-${createHash('sha256').update(scoped).digest('hex').slice(0, 32)}`;
}

const stepMessageSchema = z.object({
  team: z.string().min(1),
  runId: z.string().min(1),
  branchId: z.string().min(1),
  step: z.number().int().min(0),
  taskToken: z.string().min(1).optional(),
  wake: z.literal(true).optional(),
  batch: z.object({ first: z.number().int().min(0), count: z.number().int().min(1), window: z.number().int().min(1) }).strict().optional(),
});

/** The step message in an SQS body, or undefined when the body is not one. */
export function parseStepMessage(body: string): StepMessage | undefined {
  try {
    const parsed = stepMessageSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The fan-out state machine (infra/state-machines/fan-out.asl.json), shared by CDK
 * (DefinitionBody.fromFile + definitionSubstitutions) and the local engine, plus the payloads
 * its two Lambda tasks receive.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { FanOutRequest } from '../../core/ports';

export const FAN_OUT_ASL_PATH = aslPath();

function aslPath(): string {
  try {
    return fileURLToPath(new URL('../../infra/state-machines/fan-out.asl.json', import.meta.url));
  } catch {
    // Bundled to CommonJS (a Lambda importing this module) there is no import.meta.url; only the
    // types and names are of use there, so don't fail at load time.
    return resolve('infra/state-machines/fan-out.asl.json');
  }
}

/** The state names (the local engine keys its task overrides by them). */
export const FAN_OUT_STATES = {
  fanOut: 'FanOut',
  dispatchChild: 'DispatchChild',
  recordChildFailure: 'RecordChildFailure',
  aggregate: 'Aggregate',
} as const;

export interface FanOutSubstitutions {
  StepQueueUrl: string;
  RecordChildFailureFunctionArn: string;
  AggregateFunctionArn: string;
}

/** Payload of the RecordChildFailure task: a child's iteration failed (`States.Timeout`, dispatch error). */
export interface RecordChildFailureInput extends Scope {
  parentId: string;
  seq: number;
  branchId: string;
  /** The Step Functions error name, e.g. `States.Timeout`. */
  error: string;
  /** The error's cause (AWS gives "" for a task timeout). */
  cause?: string;
}

/** Payload of the Aggregate task: the Map is done; settle the sync point. */
export interface AggregateInput extends Scope {
  parentId: string;
  seq: number;
}

/** The ASL as a plain object (JSON-compatible). */
export type AslDefinition = Record<string, any>;

/** Reads the ASL, replaces every `${Name}` with its substitution and parses it. */
export function loadFanOutDefinition(substitutions: FanOutSubstitutions): AslDefinition {
  const text = readFileSync(FAN_OUT_ASL_PATH, 'utf8');
  const values = substitutions as unknown as Record<string, string>;
  const replaced = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_match, name: string) => {
    const value = values[name];
    if (typeof value !== 'string') throw new ValidationError(`no substitution for \${${name}} in ${FAN_OUT_ASL_PATH}`, name);
    // Substituted into JSON strings: escape like JSON does (quotes, backslashes).
    return JSON.stringify(value).slice(1, -1);
  });
  return JSON.parse(replaced) as AslDefinition;
}

/**
 * Checks what the state machine would otherwise reject at run time with an uncatchable
 * States.Runtime (TimeoutSecondsPath must be a positive integer, MaxConcurrencyPath a
 * non-negative one), so a bad request fails the spawn instead of hanging the parent.
 */
export function assertFanOutRequest(request: FanOutRequest): void {
  if (!/^[A-Za-z0-9_-]{1,80}$/.test(request.executionName)) {
    throw new ValidationError(`invalid fan-out execution name ${JSON.stringify(request.executionName)}`, 'executionName');
  }
  if (!Number.isInteger(request.maxConcurrency) || request.maxConcurrency < 0) {
    throw new ValidationError(`maxConcurrency must be a non-negative integer, got ${request.maxConcurrency}`, 'maxConcurrency');
  }
  const seen = new Set<string>();
  request.children.forEach((child, i) => {
    if (!Number.isInteger(child.timeoutSeconds) || child.timeoutSeconds < 1) {
      throw new ValidationError(
        `children[${i}].timeoutSeconds must be a positive integer, got ${child.timeoutSeconds}`,
        `children.${i}.timeoutSeconds`,
      );
    }
    if (seen.has(child.branchId)) throw new ValidationError(`duplicate child ${child.branchId}`, `children.${i}.branchId`);
    seen.add(child.branchId);
  });
}

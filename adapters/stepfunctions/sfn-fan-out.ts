/** FanOutOrchestrator on AWS Step Functions: one Standard execution of fan-out.asl.json per sync point. */
import { toCoreError as awsError } from '../aws-errors';
import { isDeepStrictEqual } from 'node:util';
import {
  DescribeExecutionCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  StopExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { BranchSpawnerError, ConflictError } from '../../core/errors';
import { fanOutUsage } from '../../core/fan-out-plan';
import type { ChildReport, CostSink, FanOutOrchestrator, FanOutRequest } from '../../core/ports';
import { assertFanOutRequest, fanOutInput } from './fan-out-definition';

export interface SfnFanOutOptions {
  client: SFNClient;
  stateMachineArn: string;
  /** Counts each started execution's transitions and DispatchChild sends (see core/fan-out-plan.ts). */
  meter?: CostSink;
}

/** The error name a stopped execution records (StopExecution's `error`). */
export const STOPPED_ERROR = 'BranchSpawner.FanOutStopped';
const MAX_CAUSE = 32_768;

export class SfnFanOutOrchestrator implements FanOutOrchestrator {
  private readonly client: SFNClient;
  private readonly stateMachineArn: string;
  private readonly meter: CostSink | undefined;

  constructor(options: SfnFanOutOptions) {
    this.client = options.client;
    this.stateMachineArn = options.stateMachineArn;
    this.meter = options.meter;
  }

  async start(request: FanOutRequest): Promise<void> {
    assertFanOutRequest(request);
    const input = fanOutInput(request);
    try {
      await this.client.send(
        new StartExecutionCommand({ stateMachineArn: this.stateMachineArn, name: request.executionName, input: JSON.stringify(input) }),
      );
      this.meter?.add(request, fanOutUsage(request.count, request.maxConcurrency));
    } catch (error) {
      // The name is the idempotency key: a repeated spawn finds its own execution (running or
      // closed). Only a different input under the same name is a real conflict.
      if (nameOf(error) !== 'ExecutionAlreadyExists') throw toCoreError(error, 'StartExecution');
      await this.assertSameInput(request.executionName, input, error);
    }
  }

  async childFinished(taskToken: string, report: ChildReport): Promise<void> {
    try {
      await this.client.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(report) }));
    } catch (error) {
      // The iteration is gone (timed out, execution stopped or finished): nothing waits for this.
      if (['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'].includes(nameOf(error))) return;
      throw toCoreError(error, 'SendTaskSuccess');
    }
  }

  async stop(executionName: string, reason: string): Promise<void> {
    try {
      await this.client.send(
        new StopExecutionCommand({
          executionArn: this.executionArn(executionName),
          error: STOPPED_ERROR,
          cause: reason.slice(0, MAX_CAUSE),
        }),
      );
    } catch (error) {
      if (nameOf(error) === 'ExecutionDoesNotExist') return;
      throw toCoreError(error, 'StopExecution');
    }
  }

  /** arn:<partition>:states:<region>:<account>:stateMachine:<sm> → …:execution:<sm>:<name> */
  executionArn(executionName: string): string {
    const parts = this.stateMachineArn.split(':');
    if (parts.length < 7 || parts[5] !== 'stateMachine') {
      throw new BranchSpawnerError(`not a state machine ARN: ${this.stateMachineArn}`);
    }
    return [...parts.slice(0, 5), 'execution', parts[6], executionName].join(':');
  }

  private async assertSameInput(executionName: string, input: unknown, original: unknown): Promise<void> {
    let existing: string | undefined;
    try {
      const described = await this.client.send(new DescribeExecutionCommand({ executionArn: this.executionArn(executionName) }));
      existing = described.input;
    } catch (error) {
      throw toCoreError(error, 'DescribeExecution (after ExecutionAlreadyExists)');
    }
    if (existing !== undefined && isDeepStrictEqual(safeParse(existing), input)) return;
    throw new ConflictError(`fan-out execution ${executionName} already exists with a different input`, { cause: original });
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function nameOf(error: unknown): string {
  return typeof error === 'object' && error !== null && 'name' in error ? String((error as { name: unknown }).name) : '';
}

/** Throttling, 5xx and network failures are TransientError; anything else a BranchSpawnerError. */
export function toCoreError(error: unknown, operation: string): BranchSpawnerError {
  return awsError(error, `Step Functions ${operation} failed`);
}

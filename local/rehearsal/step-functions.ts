/**
 * The template's state machines on aws-local-stepfunctions, behind the Step Functions API the
 * bundled functions call (StartExecution with name idempotency, DescribeExecution,
 * StopExecution, SendTaskSuccess, SendTaskFailure). Task states are served by their Resource ARN:
 * `sqs:sendMessage.waitForTaskToken` sends the real message with a real token and waits for
 * SendTaskSuccess/SendTaskFailure; `lambda:invoke` invokes the bundled function; each call is
 * authorized against the state machine's role.
 *
 * The engine's differences from AWS (docs/deploy.md points to them) are absorbed by
 * adapters/stepfunctions/engine-definition.ts, shared with the local fan-out: no `$$.Task.Token`
 * (a token made here takes the placeholder's place), no `$$.State.RetryCount` (the task's failed
 * attempts, counted here: task-retry-count.ts), TimeoutSecondsPath enforced here, a backstop on
 * tasks without TimeoutSeconds, a Distributed Map refused; and abort() does not stop a Map, so a
 * stopped execution's remaining tasks do nothing.
 */
import { randomUUID } from 'node:crypto';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { engineContext, engineDefinition, takeTimeoutSeconds, taskStates, timerMs, withTaskToken } from '../../adapters/stepfunctions/engine-definition';
import { TaskRetryCounts } from '../../adapters/stepfunctions/task-retry-count';
import { AWS_QUOTAS } from './aws-quotas';

export interface RehearsalMachine {
  arn: string;
  name: string;
  definition: Record<string, any>;
  roleLogicalId: string;
}

export interface TaskServices {
  /** Authorizes a call of the state machine's role; throws AccessDeniedError. */
  authorize(roleLogicalId: string, principal: string, action: string, resource: string): void;
  queueArnOf(queueUrl: string): string;
  sendMessage(queueUrl: string, body: string, attributes: Record<string, any> | undefined): Promise<void>;
  invokeFunction(functionArn: string, payload: unknown): Promise<unknown>;
  /** A top-level execution failed (in this stack: a parent left waiting, an alarm in AWS). */
  onExecutionError(error: unknown, execution: { arn: string; input: string }): void;
}

/** An error with the Step Functions shape (name = error code). */
export class SfnServiceError extends Error {
  constructor(code: string, message: string) {
    super(message);
    this.name = code;
  }
}

class TaskFailure extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

type Status = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

interface Execution {
  arn: string;
  name: string;
  machine: RehearsalMachine;
  input: string;
  status: Status;
  startDate: Date;
  stopDate?: Date;
  output?: string;
  error?: string;
  cause?: string;
  tokens: Set<string>;
  abort?: () => void;
  done: Promise<void>;
  /** State transitions counted from the engine's event log: each state entered, and each retry. */
  transitions: number;
}

interface PendingTask {
  execution: Execution;
  settle(outcome: { output: unknown } | { error: Error }): void;
}


export class RehearsalStepFunctions {
  private readonly machines = new Map<string, { machine: RehearsalMachine; engine: StateMachine }>();
  private readonly executions = new Map<string, Execution>();
  private readonly pending = new Map<string, PendingTask>();

  constructor(
    machines: RehearsalMachine[],
    private readonly services: TaskServices,
  ) {
    for (const machine of machines) {
      const definition = engineDefinition(machine.definition);
      this.machines.set(machine.arn, { machine, engine: new StateMachine(definition as StateMachineDefinition) });
    }
  }

  /** StartExecution: a name is unique per machine; the same name and input while running returns it. */
  startExecution(request: { stateMachineArn: string; name?: string; input?: string }): { executionArn: string; startDate: Date } {
    const entry = this.machines.get(request.stateMachineArn);
    if (!entry) throw new SfnServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${request.stateMachineArn}'`);
    const name = request.name ?? randomUUID();
    const arn = executionArnOf(request.stateMachineArn, name);
    const input = request.input ?? '{}';
    const existing = this.executions.get(arn);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === input) return { executionArn: arn, startDate: existing.startDate };
      throw new SfnServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
    }
    if (Buffer.byteLength(input) > AWS_QUOTAS.stepFunctionsPayloadBytes) {
      throw new SfnServiceError('InvalidExecutionInput', `The input is ${Buffer.byteLength(input)} bytes; an execution's input is at most ${AWS_QUOTAS.stepFunctionsPayloadBytes}`);
    }
    const execution = this.newExecution(arn, name, entry.machine, input);
    this.run(execution, entry.engine, entry.machine.definition);
    return { executionArn: arn, startDate: execution.startDate };
  }

  private newExecution(arn: string, name: string, machine: RehearsalMachine, input: string): Execution {
    const execution: Execution = {
      arn,
      name,
      machine,
      input,
      status: 'RUNNING',
      startDate: new Date(),
      tokens: new Set(),
      done: Promise.resolve(),
      transitions: 0,
    };
    this.executions.set(arn, execution);
    return execution;
  }

  private run(execution: Execution, engine: StateMachine, definition: Record<string, any>): void {
    const { arn, name, input } = execution;
    const handlers = this.taskHandlers(execution, definition);
    const run = engine.run(JSON.parse(input), {
      context: engineContext({ Execution: { Id: arn, Name: name, Input: JSON.parse(input) } }),
      overrides: { taskResourceLocalHandlers: handlers },
    });
    execution.abort = () => run.abort();
    void this.countTransitions(execution, run.eventLogs);
    execution.done = run.result.then(
      (output: unknown) => {
        if (execution.status !== 'RUNNING') return;
        execution.status = 'SUCCEEDED';
        execution.output = JSON.stringify(output ?? null);
      },
      (error: unknown) => {
        if (execution.status !== 'RUNNING') return;
        // The engine wraps the error that ended the execution; AWS reports that error itself.
        let failure = error as Error | undefined;
        while (failure?.name === 'ExecutionError' && failure.cause instanceof Error) failure = failure.cause;
        this.fail(execution, failure?.name, failure?.message, error);
      },
    ).finally(() => {
      execution.stopDate ??= new Date();
      this.release(execution, new TaskFailure('States.Aborted', 'the execution ended'));
    });
  }

  /** What AWS bills: one transition per state entered (each Map iteration's states too) and per retry. */
  private async countTransitions(execution: Execution, events: AsyncGenerator<{ type: string }>): Promise<void> {
    try {
      for await (const event of events) if (event.type === 'StateEntered' || event.type === 'StateRetried') execution.transitions++;
    } catch {
      // The log ends with the execution, however it ends; its outcome is the execution's own.
    }
  }

  /** State transitions an execution made so far. */
  transitionsOf(executionArn: string): number {
    return this.executions.get(executionArn)?.transitions ?? 0;
  }

  /** State transitions of every execution started for a run (its fan-outs' inputs name it). */
  transitionsOfRun(team: string, runId: string): number {
    let total = 0;
    for (const execution of this.executions.values()) {
      const input = JSON.parse(execution.input) as { team?: string; runId?: string };
      if (input.team === team && input.runId === runId) total += this.transitionsOf(execution.arn);
    }
    return total;
  }

  /** The execution fails (an uncaught error, or one no Catch may catch), and is reported. */
  private fail(execution: Execution, error: string | undefined, cause: string | undefined, original?: unknown): void {
    if (execution.status !== 'RUNNING') return;
    execution.status = 'FAILED';
    execution.error = error;
    execution.cause = cause;
    execution.stopDate = new Date();
    this.release(execution, new TaskFailure('States.Aborted', 'the execution failed'));
    this.services.onExecutionError(Object.assign(new Error(`execution ${execution.name} failed: ${error}: ${cause}`), { cause: original }), execution);
  }

  describeExecution(executionArn: string) {
    const e = this.executions.get(executionArn);
    if (!e) throw new SfnServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return {
      executionArn: e.arn,
      stateMachineArn: e.machine.arn,
      name: e.name,
      status: e.status,
      startDate: e.startDate.getTime() / 1000,
      ...(e.stopDate ? { stopDate: e.stopDate.getTime() / 1000 } : {}),
      input: e.input,
      ...(e.output !== undefined ? { output: e.output } : {}),
      ...(e.error !== undefined ? { error: e.error, cause: e.cause } : {}),
    };
  }

  stopExecution(request: { executionArn: string; error?: string; cause?: string }): { stopDate: number } {
    const e = this.executions.get(request.executionArn);
    if (!e) throw new SfnServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${request.executionArn}'`);
    if (e.status === 'RUNNING') {
      e.status = 'ABORTED';
      e.error = request.error;
      e.cause = request.cause;
      e.stopDate = new Date();
      this.release(e, new TaskFailure('States.Aborted', 'the execution was stopped'));
    }
    return { stopDate: (e.stopDate ?? new Date()).getTime() / 1000 };
  }

  /** The state machine that issued a token (SendTask* is authorized against it). */
  machineOfToken(taskToken: string): string | undefined {
    return this.pending.get(taskToken)?.execution.machine.arn ?? tokenMachine(taskToken);
  }

  sendTaskSuccess(taskToken: string, output: string): void {
    const task = this.taskOf(taskToken);
    if (Buffer.byteLength(output) > AWS_QUOTAS.stepFunctionsPayloadBytes) {
      throw new SfnServiceError('ValidationException', `Value at 'output' failed to satisfy constraint: Member must have length less than or equal to ${AWS_QUOTAS.stepFunctionsPayloadBytes}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(output);
    } catch {
      throw new SfnServiceError('InvalidOutput', 'Invalid State Machine Output');
    }
    task.settle({ output: parsed });
  }

  sendTaskFailure(taskToken: string, error?: string, cause?: string): void {
    this.taskOf(taskToken).settle({ error: new TaskFailure(error ?? 'States.TaskFailed', cause ?? '') });
  }

  running(): number {
    return [...this.executions.values()].filter((e) => e.status === 'RUNNING').length;
  }

  /** Resolves when no execution runs (including ones started meanwhile). */
  /** Executions running now. */
  get busy(): boolean {
    return [...this.executions.values()].some((e) => e.status === 'RUNNING');
  }

  async idle(): Promise<void> {
    for (;;) {
      const open = [...this.executions.values()].filter((e) => e.status === 'RUNNING').map((e) => e.done);
      if (open.length === 0) return;
      await Promise.all(open);
    }
  }

  stopAll(): void {
    for (const e of this.executions.values()) if (e.status === 'RUNNING') this.stopExecution({ executionArn: e.arn, error: 'Rehearsal.Closed' });
  }

  private taskOf(taskToken: string): PendingTask {
    if (!taskToken || !taskToken.startsWith('rehearsal:')) throw new SfnServiceError('InvalidToken', 'Invalid Token');
    const task = this.pending.get(taskToken);
    if (!task) throw new SfnServiceError('TaskDoesNotExist', 'Task Does Not Exist');
    return task;
  }

  private release(execution: Execution, error: Error): void {
    for (const token of [...execution.tokens]) this.pending.get(token)?.settle({ error });
  }

  private taskHandlers(execution: Execution, definition: Record<string, any>): Record<string, (input: any) => Promise<any>> {
    const handlers: Record<string, (input: any) => Promise<any>> = {};
    const retryCounts = new TaskRetryCounts();
    for (const [name, state] of taskStates(definition)) {
      handlers[name] = (input) => retryCounts.attempt(name, input, (filled) => this.runTask(execution, name, state, filled));
    }
    return handlers;
  }

  private async runTask(execution: Execution, stateName: string, state: Record<string, any>, input: any): Promise<unknown> {
    // A stopped execution runs nothing more (the engine would: see the header).
    if (execution.status !== 'RUNNING') return {};
    const resource: string = state.Resource;
    const { machine } = execution;
    const principal = `state machine ${machine.name}`;
    const timeoutSeconds = takeTimeoutSeconds(input);
    if (resource.startsWith('arn:aws:states:::sqs:sendMessage')) {
      const queueUrl = String(input.QueueUrl);
      this.services.authorize(machine.roleLogicalId, principal, 'sqs:SendMessage', this.services.queueArnOf(queueUrl));
      if (!resource.endsWith('.waitForTaskToken')) {
        await this.services.sendMessage(queueUrl, bodyText(input.MessageBody), input.MessageAttributes);
        return {};
      }
      return this.waitForToken(execution, timeoutSeconds, (token) =>
        this.services.sendMessage(queueUrl, bodyText(withTaskToken(input.MessageBody, token)), withTaskToken(input.MessageAttributes, token)),
      );
    }
    if (resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken') {
      // The function gets the token in its payload and returns; the task waits for the token.
      const functionArn = String(input.FunctionName);
      this.services.authorize(machine.roleLogicalId, principal, 'lambda:InvokeFunction', functionArn);
      return this.waitForToken(execution, timeoutSeconds, async (token) => {
        try {
          await this.services.invokeFunction(functionArn, withTaskToken(input.Payload, token));
        } catch (error) {
          throw lambdaTaskFailure(error);
        }
      });
    }
    if (resource === 'arn:aws:states:::lambda:invoke' || resource.startsWith('arn:aws:lambda:')) {
      const direct = resource.startsWith('arn:aws:lambda:');
      const functionArn = direct ? resource : String(input.FunctionName);
      this.services.authorize(machine.roleLogicalId, principal, 'lambda:InvokeFunction', functionArn);
      const payload = direct ? input : input.Payload;
      try {
        const result = await this.services.invokeFunction(functionArn, payload);
        return direct ? result : { ExecutedVersion: '$LATEST', Payload: result, StatusCode: 200 };
      } catch (error) {
        throw lambdaTaskFailure(error);
      }
    }
    throw new TaskFailure('States.Runtime', `${stateName}: the rehearsal does not serve the resource ${resource}`);
  }

  /**
   * A `.waitForTaskToken` task: a token made here is handed on by `send`, and the task waits for
   * SendTaskSuccess/SendTaskFailure on it, or fails with States.Timeout past its timeout.
   */
  private async waitForToken(execution: Execution, timeoutSeconds: number | undefined, send: (token: string) => Promise<void>): Promise<unknown> {
    const token = `rehearsal:${Buffer.from(execution.machine.arn).toString('base64url')}:${execution.name}:${randomUUID()}`;
    const outcome = new Promise<unknown>((resolve, reject) => {
      const timer =
        timeoutSeconds === undefined
          ? undefined
          : setTimeout(() => settle({ error: new TaskFailure('States.Timeout', '') }), timerMs(timeoutSeconds));
      const settle: PendingTask['settle'] = (result) => {
        if (!this.pending.delete(token)) return;
        clearTimeout(timer);
        execution.tokens.delete(token);
        if ('output' in result) resolve(result.output);
        else reject(result.error);
      };
      this.pending.set(token, { execution, settle });
      execution.tokens.add(token);
    });
    outcome.catch(() => undefined);
    try {
      await send(token);
    } catch (error) {
      this.pending.get(token)?.settle({ error: error instanceof Error ? error : new Error(String(error)) });
    }
    return outcome;
  }
}

/** As the lambda:invoke integration reports a function error: its type, and the error document as the cause. */
function lambdaTaskFailure(error: unknown): TaskFailure {
  const e = error as Error & { trace?: string[] };
  return new TaskFailure(e.name || 'Error', JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: e.trace ?? [] }));
}

export function executionArnOf(stateMachineArn: string, name: string): string {
  const parts = stateMachineArn.split(':');
  return [...parts.slice(0, 5), 'execution', parts[6], name].join(':');
}

function tokenMachine(token: string): string | undefined {
  const [prefix, machine] = token.split(':');
  if (prefix !== 'rehearsal' || !machine) return undefined;
  try {
    return Buffer.from(machine, 'base64url').toString('utf8');
  } catch {
    return undefined;
  }
}

function bodyText(body: unknown): string {
  return typeof body === 'string' ? body : JSON.stringify(body);
}

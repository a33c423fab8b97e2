/**
 * The template's state machines on the engine (step-functions.ts): their definitions read as
 * CloudFormation reads them (inline, or the asset, with DefinitionSubstitutions), their tasks
 * sending to the stack's queues and invoking its functions as the state machine's role; and the
 * Step Functions API the functions call, authorized against the caller's role.
 */
import { SendMessageCommand, type MessageAttributeValue, type SQSClient } from '@aws-sdk/client-sqs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RehearsalAccess } from './access';
import { ServiceError, type Caller } from './aws-endpoint';
import { FunctionError, THROTTLED } from './function-host';
import type { RehearsalFunctions } from './functions';
import { RehearsalError } from './rehearsal-error';
import { RehearsalStepFunctions, SfnServiceError, type RehearsalMachine } from './step-functions';
import type { RehearsalTemplate } from './template';

export interface StateMachineContext {
  template: RehearsalTemplate;
  assemblyDir: string;
  access: RehearsalAccess;
  functions: RehearsalFunctions;
  sqs: SQSClient;
  queueArnOf(queueUrl: string): string;
  onThrottle(throttle: { functionName: string; caller: string }): void;
  /** A top-level execution failed; `runId` when its input names the run (a fan-out's does). */
  onExecutionError(error: Error, runId: string | undefined): void;
}

export function createStateMachines(ctx: StateMachineContext): RehearsalStepFunctions {
  return new RehearsalStepFunctions(machinesOf(ctx.template, ctx.assemblyDir), {
    authorize: (role, principal, action, resource) => ctx.access.authorize({ principal, roleLogicalId: role }, action, resource),
    queueArnOf: (url) => ctx.queueArnOf(url),
    sendMessage: async (queueUrl, body, attributes) => {
      await ctx.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageAttributes: attributes as Record<string, MessageAttributeValue> }));
    },
    invokeFunction: (arn, payload) =>
      ctx.functions
        .byArn(arn)
        .invoke(payload)
        .catch((error: unknown) => {
          // The lambda:invoke integration names a throttle Lambda.TooManyRequestsException (the ASL retries it).
          if (error instanceof FunctionError && error.name === THROTTLED) {
            ctx.onThrottle({ functionName: error.functionName, caller: 'Step Functions' });
            error.name = `Lambda.${THROTTLED}`;
          }
          throw error;
        }),
    onExecutionError: (error, execution) => ctx.onExecutionError(error as Error, runIdOf(execution.input)),
  });
}

function runIdOf(input: string): string | undefined {
  try {
    const runId = (JSON.parse(input) as { runId?: unknown }).runId;
    return typeof runId === 'string' ? runId : undefined;
  } catch {
    return undefined;
  }
}

function machinesOf(t: RehearsalTemplate, assemblyDir: string): RehearsalMachine[] {
  return t.ofType('AWS::StepFunctions::StateMachine').map(([id, r]) => {
    const p = r.Properties ?? {};
    const { attributes } = t.physicalOf(id);
    let text: string;
    if (typeof p.DefinitionString === 'string' || p.DefinitionString) text = String(t.resolve(p.DefinitionString));
    else if (p.Definition) text = JSON.stringify(p.Definition);
    else {
      const file = join(assemblyDir, `asset.${p.DefinitionS3Location?.Key}`);
      if (!existsSync(file)) throw new RehearsalError(`state machine ${id}: definition asset ${file} not found`);
      text = readFileSync(file, 'utf8');
    }
    const substitutions = t.resolve(p.DefinitionSubstitutions ?? {}) as Record<string, string>;
    text = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (match, name: string) =>
      name in substitutions ? JSON.stringify(String(substitutions[name])).slice(1, -1) : match,
    );
    return { arn: attributes.Arn, name: attributes.Name, definition: JSON.parse(text), roleLogicalId: (p.RoleArn?.['Fn::GetAtt'] ?? [])[0] };
  });
}

/** The Step Functions API (JSON protocol) as the functions call it, each call authorized against the caller's role. */
export function stepFunctionsApi(sfn: RehearsalStepFunctions, access: RehearsalAccess) {
  return (caller: Caller, operation: string, body: Record<string, any>): unknown => {
    const resourceOf = (): string => {
      switch (operation) {
        case 'StartExecution':
          return String(body.stateMachineArn);
        case 'DescribeExecution':
        case 'StopExecution':
          return String(body.executionArn);
        case 'SendTaskSuccess':
        case 'SendTaskFailure':
        case 'SendTaskHeartbeat':
          return sfn.machineOfToken(String(body.taskToken)) ?? '*';
        default:
          throw new ServiceError('UnknownOperationException', `the rehearsal does not serve Step Functions ${operation}`);
      }
    };
    access.authorize(caller, `states:${operation}`, resourceOf());
    try {
      switch (operation) {
        case 'StartExecution': {
          const { executionArn, startDate } = sfn.startExecution(body as { stateMachineArn: string; name?: string; input?: string });
          return { executionArn, startDate: startDate.getTime() / 1000 };
        }
        case 'DescribeExecution':
          return sfn.describeExecution(String(body.executionArn));
        case 'StopExecution':
          return sfn.stopExecution(body as { executionArn: string; error?: string; cause?: string });
        case 'SendTaskSuccess':
          sfn.sendTaskSuccess(String(body.taskToken), String(body.output));
          return {};
        case 'SendTaskFailure':
          sfn.sendTaskFailure(String(body.taskToken), body.error, body.cause);
          return {};
        default:
          return {};
      }
    } catch (error) {
      if (error instanceof SfnServiceError) throw new ServiceError(error.name, error.message);
      throw error;
    }
  };
}

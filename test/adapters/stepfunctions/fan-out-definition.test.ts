/** The fan-out ASL: valid after substitution, and shaped as the runtime and CDK expect. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../core/errors';
import type { FanOutRequest } from '../../../core/ports';
import {
  FAN_OUT_ASL_PATH,
  assertFanOutRequest,
  loadFanOutDefinition,
  type FanOutSubstitutions,
} from '../../../adapters/stepfunctions/fan-out-definition';

type AslValidator = (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText(separator?: string): string };
// asl-validator is CommonJS without type declarations.
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const substitutions: FanOutSubstitutions = {
  StepQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/team-a-branch-steps',
  RecordChildFailureFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-record-child-failure',
  AggregateFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:team-a-aggregate',
};

describe('fan-out.asl.json', () => {
  it('uses exactly the three substitution variables', () => {
    const text = readFileSync(FAN_OUT_ASL_PATH, 'utf8');
    expect(new Set(text.match(/\$\{[A-Za-z0-9_]+\}/g))).toEqual(
      new Set(['${StepQueueUrl}', '${RecordChildFailureFunctionArn}', '${AggregateFunctionArn}']),
    );
  });

  it('validates with asl-validator (paths and ARNs checked) after substitution', () => {
    const definition = loadFanOutDefinition(substitutions);
    const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('is JSONPath, an inline Map over the children, then Aggregate', () => {
    const definition = loadFanOutDefinition(substitutions);
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    expect(definition.StartAt).toBe('FanOut');
    const fanOut = definition.States.FanOut;
    expect(fanOut).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.children',
      MaxConcurrencyPath: '$.maxConcurrency',
      ResultPath: null,
      Next: 'Aggregate',
      ItemSelector: {
        'team.$': '$.team',
        'runId.$': '$.runId',
        'parentId.$': '$.parentId',
        'seq.$': '$.seq',
        'branchId.$': '$$.Map.Item.Value.branchId',
        'timeoutSeconds.$': '$$.Map.Item.Value.timeoutSeconds',
      },
    });
    expect(fanOut.ItemProcessor.ProcessorConfig.Mode).toBe('INLINE');
    // Failure policy is ours: the local engine ignores ToleratedFailure*, so neither engine gets it.
    expect(JSON.stringify(definition)).not.toMatch(/ToleratedFailure|JSONata|ItemReader|ItemBatcher/);
  });

  it('DispatchChild sends the step message with the task token and waits for it, with a per-child timeout', () => {
    const dispatch = loadFanOutDefinition(substitutions).States.FanOut.ItemProcessor.States.DispatchChild;
    expect(dispatch).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
      TimeoutSecondsPath: '$.timeoutSeconds',
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordChildFailure' }],
      Parameters: {
        QueueUrl: substitutions.StepQueueUrl,
        MessageBody: { 'team.$': '$.team', 'runId.$': '$.runId', 'branchId.$': '$.branchId', step: 0, 'taskToken.$': '$$.Task.Token' },
        MessageAttributes: {
          team: { DataType: 'String', 'StringValue.$': '$.team' },
          runId: { DataType: 'String', 'StringValue.$': '$.runId' },
          branchId: { DataType: 'String', 'StringValue.$': '$.branchId' },
        },
      },
    });
  });

  it('RecordChildFailure and Aggregate invoke their Lambdas with the documented payloads', () => {
    const definition = loadFanOutDefinition(substitutions);
    const record = definition.States.FanOut.ItemProcessor.States.RecordChildFailure;
    expect(record).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      ResultPath: null,
      End: true,
      Parameters: {
        FunctionName: substitutions.RecordChildFailureFunctionArn,
        Payload: {
          'team.$': '$.team',
          'runId.$': '$.runId',
          'parentId.$': '$.parentId',
          'seq.$': '$.seq',
          'branchId.$': '$.branchId',
          'error.$': '$.error.Error',
          'cause.$': '$.error.Cause',
        },
      },
    });
    const aggregate = definition.States.Aggregate;
    expect(aggregate).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      End: true,
      Parameters: {
        FunctionName: substitutions.AggregateFunctionArn,
        Payload: { 'team.$': '$.team', 'runId.$': '$.runId', 'parentId.$': '$.parentId', 'seq.$': '$.seq' },
      },
    });
    expect(aggregate.Retry[0].ErrorEquals).toContain('Lambda.ServiceException');
    expect(aggregate.Retry[0].ErrorEquals).not.toContain('States.ALL');
  });

  it('refuses a missing substitution', () => {
    const partial = { StepQueueUrl: 'q', AggregateFunctionArn: 'a' } as unknown as FanOutSubstitutions;
    expect(() => loadFanOutDefinition(partial)).toThrow(ValidationError);
  });
});

describe('assertFanOutRequest', () => {
  const request = (patch: Partial<FanOutRequest> = {}): FanOutRequest => ({
    team: 't',
    runId: 'r',
    parentId: 'root',
    seq: 1,
    executionName: 'r-root-s1',
    maxConcurrency: 3,
    children: [{ branchId: 'root.0', timeoutSeconds: 30 }],
    ...patch,
  });

  it('accepts a well-formed request', () => {
    expect(() => assertFanOutRequest(request())).not.toThrow();
  });

  it.each([
    ['a zero timeout', { children: [{ branchId: 'root.0', timeoutSeconds: 0 }] }],
    ['a fractional timeout', { children: [{ branchId: 'root.0', timeoutSeconds: 1.5 }] }],
    ['a negative maxConcurrency', { maxConcurrency: -1 }],
    ['a name AWS would refuse', { executionName: 'has space' }],
    ['a duplicate child', { children: [{ branchId: 'a', timeoutSeconds: 1 }, { branchId: 'a', timeoutSeconds: 1 }] }],
  ])('refuses %s', (_what, patch) => {
    expect(() => assertFanOutRequest(request(patch as Partial<FanOutRequest>))).toThrow(ValidationError);
  });
});

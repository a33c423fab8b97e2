/** The fan-out ASL: valid after substitution, and shaped as the runtime and CDK expect. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../core/errors';
import type { FanOutRequest } from '../../../core/ports';
import {
  FAN_OUT_ASL_PATH,
  assertFanOutRequest,
  fanOutInput,
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

  it('is JSONPath: ChoosePath, then a Map over batches or an inline Map over the children (as indices), then Aggregate; no Distributed Map', () => {
    const definition = loadFanOutDefinition(substitutions);
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    expect(definition.StartAt).toBe('ChoosePath');
    expect(definition.States.ChoosePath).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.mode', StringEquals: 'BATCHED', Next: 'FanOutBatched' }],
      Default: 'FanOut',
    });
    const childSelector = {
      'team.$': '$.team',
      'runId.$': '$.runId',
      'parentId.$': '$.parentId',
      'seq.$': '$.seq',
      'branchId.$': "States.Format('{}.{}', $.parentId, $$.Map.Item.Value)",
      'timeoutSeconds.$': '$.timeoutSeconds',
    };
    const fanOut = definition.States.FanOut;
    expect(fanOut).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.children',
      MaxConcurrencyPath: '$.maxConcurrency',
      ResultPath: null,
      Next: 'Aggregate',
      ItemSelector: childSelector,
    });
    expect(fanOut.ItemProcessor.ProcessorConfig.Mode).toBe('INLINE');
    // Every Map is inline: a fan-out is one execution (no child executions, no map runs).
    expect(JSON.stringify(definition)).not.toMatch(/DISTRIBUTED|ToleratedFailure|ResultWriter/);
    expect(JSON.stringify(definition)).not.toMatch(/JSONata|ItemReader|ItemBatcher/);
  });

  it('the batched path: one iteration per batch range, DispatchBatch invokes the tasks function with the token and waits, RecordBatchFailure is its Catch', () => {
    const definition = loadFanOutDefinition(substitutions);
    const scope = { 'team.$': '$.team', 'runId.$': '$.runId', 'parentId.$': '$.parentId', 'seq.$': '$.seq' };
    const batched = definition.States.FanOutBatched;
    expect(batched).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.batchRanges',
      MaxConcurrencyPath: '$.batchConcurrency',
      ResultPath: null,
      Next: 'Aggregate',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFanOutFailure' }],
      ItemSelector: { ...scope, 'first.$': '$$.Map.Item.Value.first', 'count.$': '$$.Map.Item.Value.count', 'window.$': '$.window', 'timeoutSeconds.$': '$.batchTimeoutSeconds' },
      ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: 'DispatchBatch' },
    });
    const { DispatchBatch: dispatch, RecordBatchFailure: record } = batched.ItemProcessor.States;
    expect(dispatch).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      TimeoutSecondsPath: '$.timeoutSeconds',
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordBatchFailure' }],
      Parameters: {
        FunctionName: substitutions.RecordChildFailureFunctionArn,
        Payload: { ...scope, 'first.$': '$.first', 'count.$': '$.count', 'window.$': '$.window', 'taskToken.$': '$$.Task.Token' },
      },
    });
    // Only errors before the function ran are retried (a retry hands out a new token, which the store keeps).
    expect(dispatch.Retry.flatMap((r: { ErrorEquals: string[] }) => r.ErrorEquals)).not.toContain('States.ALL');
    expect(record).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      End: true,
      Parameters: {
        FunctionName: substitutions.RecordChildFailureFunctionArn,
        Payload: { ...scope, 'first.$': '$.first', 'count.$': '$.count', 'error.$': '$.error.Error', 'cause.$': '$.error.Cause' },
      },
    });
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

  it('per child: passes children as indices when one inline Map holds them (at most 1,000, at most 40 at once), in batches when not', () => {
    const base = { team: 't', runId: 'r', parentId: 'root.3', seq: 2, executionName: 'r-root_3-s2', timeoutSeconds: 60, dispatch: 'per-child' as const };
    expect(fanOutInput({ ...base, maxConcurrency: 10, firstIndex: 5, count: 3 })).toEqual({
      team: 't', runId: 'r', parentId: 'root.3', seq: 2, timeoutSeconds: 60, mode: 'INLINE', children: [5, 6, 7], maxConcurrency: 10,
    });
    expect(fanOutInput({ ...base, maxConcurrency: 10, firstIndex: 0, count: 1_000 }).mode).toBe('INLINE');
    expect(fanOutInput({ ...base, maxConcurrency: 100, firstIndex: 0, count: 40 }).mode).toBe('INLINE');
    // Past the inline Map's 40 at once, or 1,000 children: batched, as the default dispatch.
    const concurrent = fanOutInput({ ...base, maxConcurrency: 100, firstIndex: 0, count: 100 });
    expect(concurrent).toEqual(fanOutInput({ ...base, maxConcurrency: 100, firstIndex: 0, count: 100, dispatch: 'batched' }));
    expect(concurrent).toMatchObject({ mode: 'BATCHED', batchRanges: [{ first: 0, count: 100 }], window: 100 });
    expect(fanOutInput({ ...base, maxConcurrency: 10, firstIndex: 0, count: 1_001 }).mode).toBe('BATCHED');
  });

  it('passes batches as ranges: one batch for 150 children, 40 for 10,000; the window keeps batches × window within the limit', () => {
    const base = { team: 't', runId: 'r', parentId: 'root', seq: 1, executionName: 'r-root-s1', timeoutSeconds: 60 };
    expect(fanOutInput({ ...base, maxConcurrency: 10, firstIndex: 3, count: 150 })).toEqual({
      team: 't', runId: 'r', parentId: 'root', seq: 1, timeoutSeconds: 60, mode: 'BATCHED',
      batchRanges: [{ first: 3, count: 150 }], batchConcurrency: 1, window: 10, batchTimeoutSeconds: 60 * 16,
    });
    const wide = fanOutInput({ ...base, maxConcurrency: 200, firstIndex: 0, count: 10_000 });
    expect(wide).toMatchObject({ mode: 'BATCHED', batchConcurrency: 40, window: 5 });
    expect(wide.batchRanges).toHaveLength(40);
    expect(wide.batchRanges!.reduce((n, b) => n + b.count, 0)).toBe(10_000);
    expect(Buffer.byteLength(JSON.stringify(wide))).toBeLessThan(4 * 1024);
    // One child: the per-child path (batching saves nothing there).
    expect(fanOutInput({ ...base, maxConcurrency: 10, firstIndex: 0, count: 1 }).mode).toBe('INLINE');
    // No limit (0): every child of every batch at once.
    expect(fanOutInput({ ...base, maxConcurrency: 0, firstIndex: 0, count: 600 })).toMatchObject({ batchConcurrency: 3, window: 250 });
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
    firstIndex: 0,
    count: 1,
    timeoutSeconds: 30,
    ...patch,
  });

  it('accepts a well-formed request', () => {
    expect(() => assertFanOutRequest(request())).not.toThrow();
  });

  it.each([
    ['a zero timeout', { timeoutSeconds: 0 }],
    ['a fractional timeout', { timeoutSeconds: 1.5 }],
    ['a negative maxConcurrency', { maxConcurrency: -1 }],
    ['a name AWS would refuse', { executionName: 'has space' }],
    ['a negative first index', { firstIndex: -1 }],
    ['a fractional count', { count: 2.5 }],
  ])('refuses %s', (_what, patch) => {
    expect(() => assertFanOutRequest(request(patch as Partial<FanOutRequest>))).toThrow(ValidationError);
  });
});

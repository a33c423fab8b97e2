/**
 * The synthesized state machine definition runs in the local engine: take what the stack will
 * deploy (the DefinitionBody.fromFile asset plus CloudFormation's DefinitionSubstitutions), do
 * the substitution CloudFormation does with fake ARNs/URL, and run it in aws-local-stepfunctions
 * with the three Task states overridden by local functions.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { FAN_OUT_STATES, fanOutInput } from '../../adapters/stepfunctions/fan-out-definition';
import { functionOf, resourcesOf, stepQueuesOf, synthTeam, type Synthesized } from './support';

type AslValidator = (definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }) => {
  isValid: boolean;
  errorsText(separator?: string): string;
};
// asl-validator is CommonJS without type declarations.
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const FAKE = {
  queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/branch-spawner-research-steps',
  recordChildFailureArn: 'arn:aws:lambda:eu-west-1:123456789012:function:branch-spawner-research-record-child-failure',
  aggregateArn: 'arn:aws:lambda:eu-west-1:123456789012:function:branch-spawner-research-aggregate',
};

let research: Synthesized;
let definitionText: string;
let substitutions: Record<string, unknown>;

beforeAll(() => {
  research = synthTeam('research', { bundle: false });
  const [, sm] = resourcesOf(research.template, 'AWS::StepFunctions::StateMachine')[0];
  substitutions = sm.Properties.DefinitionSubstitutions;
  // The definition CloudFormation will read: the file asset named by DefinitionS3Location, found
  // through the stack's asset manifest in the cloud assembly.
  const key = sm.Properties.DefinitionS3Location.Key as string;
  const manifest = JSON.parse(readFileSync(join(research.app.outdir, `${research.stack.artifactId}.assets.json`), 'utf8'));
  const asset = Object.values(manifest.files as Record<string, any>).find((f) =>
    Object.values(f.destinations as Record<string, any>).some((d) => d.objectKey === key),
  );
  expect(asset, `no file asset with object key ${key}`).toBeDefined();
  definitionText = readFileSync(join(research.app.outdir, asset.source.path), 'utf8');
});

/** What CloudFormation does with DefinitionSubstitutions, with our fake values for the references. */
function substituted(): Record<string, any> {
  const { template } = research;
  // DispatchChild sends first steps: the start lane's queue.
  const queueId = stepQueuesOf(template).start;
  const fakeOf = (value: unknown): string => {
    const json = JSON.stringify(value);
    if (json === JSON.stringify({ Ref: queueId })) return FAKE.queueUrl;
    if (json === JSON.stringify({ 'Fn::GetAtt': [functionOf(template, 'record-child-failure').id, 'Arn'] })) return FAKE.recordChildFailureArn;
    if (json === JSON.stringify({ 'Fn::GetAtt': [functionOf(template, 'aggregate').id, 'Arn'] })) return FAKE.aggregateArn;
    throw new Error(`unexpected substitution value ${json}`);
  };
  const values = Object.fromEntries(Object.entries(substitutions).map(([k, v]) => [k, fakeOf(v)]));
  const text = definitionText.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => {
    if (!(name in values)) throw new Error(`\${${name}} has no DefinitionSubstitution`);
    return values[name];
  });
  expect(text).not.toMatch(/\$\{/);
  return JSON.parse(text);
}

/**
 * The one engine difference (documented in adapters/stepfunctions/local-fan-out.ts): the engine
 * resolves TimeoutSecondsPath against the task input after Parameters, where `$.timeoutSeconds`
 * does not exist. Replace it by a fixed timeout; everything else runs as synthesized.
 */
function forLocalEngine(definition: Record<string, any>): Record<string, any> {
  const copy = structuredClone(definition);
  const dispatches = [
    copy.States[FAN_OUT_STATES.fanOut].ItemProcessor.States[FAN_OUT_STATES.dispatchChild],
    copy.States[FAN_OUT_STATES.fanOutBatched].ItemProcessor.States[FAN_OUT_STATES.dispatchBatch],
  ];
  for (const dispatch of dispatches) {
    expect(dispatch.TimeoutSecondsPath).toBe('$.timeoutSeconds');
    delete dispatch.TimeoutSecondsPath;
    dispatch.TimeoutSeconds = 3600;
  }
  return copy;
}

/** The input the adapter really sends: children as indices of the parent (root.0, root.1, ...). */
const input = (count: number, dispatch: 'per-child' | 'batched' = 'per-child'): Record<string, any> =>
  fanOutInput({
    dispatch,
    team: 'research',
    runId: 'run-1',
    parentId: 'root',
    seq: 1,
    executionName: 'run-1-root-1',
    maxConcurrency: 2,
    firstIndex: 0,
    count,
    timeoutSeconds: 900,
  });

describe('the synthesized fan-out definition', () => {
  // The per-child path (one DispatchChild per child) is a runtime's choice; the stack's default is batched (below).
  it('has exactly the substitutions its placeholders need, and validates once substituted', () => {
    const placeholders = new Set([...definitionText.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
    expect(new Set(Object.keys(substitutions))).toEqual(placeholders);
    const result = aslValidator(substituted(), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('gives the failed-iteration tasks their retry count, so that only a retry tells again what it began', () => {
    const states = substituted().States;
    const payloads = [
      states[FAN_OUT_STATES.fanOut].ItemProcessor.States[FAN_OUT_STATES.recordChildFailure].Parameters.Payload,
      states[FAN_OUT_STATES.fanOutBatched].ItemProcessor.States[FAN_OUT_STATES.recordBatchFailure].Parameters.Payload,
    ];
    for (const payload of payloads) expect(payload).toMatchObject({ 'retryCount.$': '$$.State.RetryCount' });
  });

  it('dispatches each of 3 children to the step queue and aggregates once', async () => {
    const definition = substituted();
    const dispatched: any[] = [];
    const aggregated: any[] = [];
    const failures: any[] = [];
    const machine = new StateMachine(forLocalEngine(definition) as StateMachineDefinition);
    const execution = machine.run(input(3), {
      context: { Task: { Token: 'token-from-the-local-test' }, State: { RetryCount: 0 } },
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchChild]: async (task) => {
            dispatched.push(task);
            return { branchId: (task as any).MessageBody.branchId, status: 'COMPLETED' };
          },
          [FAN_OUT_STATES.recordChildFailure]: async (task) => {
            failures.push(task);
            return {};
          },
          [FAN_OUT_STATES.aggregate]: async (task) => {
            aggregated.push(task);
            return {};
          },
        },
      },
    });
    await execution.result;

    expect(dispatched).toHaveLength(3);
    expect(dispatched.map((d) => d.MessageBody.branchId).sort()).toEqual(['root.0', 'root.1', 'root.2']);
    for (const d of dispatched) {
      expect(d.QueueUrl).toBe(FAKE.queueUrl);
      expect(d.MessageBody).toMatchObject({ team: 'research', runId: 'run-1', step: 0, taskToken: 'token-from-the-local-test' });
    }
    expect(failures).toHaveLength(0);
    expect(aggregated).toHaveLength(1);
    expect(aggregated[0]).toMatchObject({
      FunctionName: FAKE.aggregateArn,
      Payload: { team: 'research', runId: 'run-1', parentId: 'root', seq: 1 },
    });
  });

  it('a child whose dispatch fails is recorded with the RecordChildFailure function, and the rest still aggregate once', async () => {
    const recorded: any[] = [];
    const aggregated: any[] = [];
    const machine = new StateMachine(forLocalEngine(substituted()) as StateMachineDefinition);
    await machine.run(input(3), {
      // The engine has no $$.State.RetryCount (the local orchestrators fill it in): given here.
      context: { Task: { Token: 't' }, State: { RetryCount: 0 } },
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchChild]: async (task) => {
            if ((task as any).MessageBody.branchId === 'root.1') throw Object.assign(new Error('queue unavailable'), { name: 'SQS.QueueDoesNotExist' });
            return {};
          },
          [FAN_OUT_STATES.recordChildFailure]: async (task) => {
            recorded.push(task);
            return {};
          },
          [FAN_OUT_STATES.aggregate]: async (task) => {
            aggregated.push(task);
            return {};
          },
        },
      },
    }).result;

    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      FunctionName: FAKE.recordChildFailureArn,
      Payload: { team: 'research', runId: 'run-1', parentId: 'root', seq: 1, branchId: 'root.1', retryCount: 0 },
    });
    expect(aggregated).toHaveLength(1);
  });
  it('batched: one DispatchBatch with its task token for 3 children, then one Aggregate', async () => {
    const batches: any[] = [];
    const aggregated: any[] = [];
    const machine = new StateMachine(forLocalEngine(substituted()) as StateMachineDefinition);
    await machine.run(input(3, 'batched'), {
      context: { Task: { Token: 'batch-token' }, State: { RetryCount: 0 } },
      overrides: {
        taskResourceLocalHandlers: {
          [FAN_OUT_STATES.dispatchBatch]: async (task) => {
            batches.push(task);
            return {};
          },
          [FAN_OUT_STATES.aggregate]: async (task) => {
            aggregated.push(task);
            return {};
          },
        },
      },
    }).result;

    expect(batches).toHaveLength(1);
    expect(batches[0]).toMatchObject({
      FunctionName: FAKE.recordChildFailureArn,
      Payload: { team: 'research', runId: 'run-1', parentId: 'root', seq: 1, first: 0, count: 3, window: 2, taskToken: 'batch-token' },
    });
    expect(aggregated).toHaveLength(1);
  });
});

/**
 * The one home of aws-local-stepfunctions' differences from AWS (engine-definition.ts), used by the
 * local fan-out and the rehearsal's state machines: each workaround, on the engine itself.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import {
  ENGINE_BACKSTOP_TIMEOUT_SECONDS,
  engineContext,
  engineDefinition,
  takeTimeoutSeconds,
  taskStates,
  withTaskToken,
} from '../../../adapters/stepfunctions/engine-definition';
import { loadFanOutDefinition, LOCAL_SUBSTITUTIONS, type AslDefinition } from '../../../adapters/stepfunctions/fan-out-definition';

/** A Map whose iterations wait for a token, each with its own timeout from its item (as the fan-out's DispatchChild). */
const waiting = (): AslDefinition => ({
  StartAt: 'Each',
  States: {
    Each: {
      Type: 'Map',
      ItemsPath: '$.items',
      ItemSelector: { 'name.$': '$$.Map.Item.Value.name', 'timeoutSeconds.$': '$$.Map.Item.Value.timeout' },
      ItemProcessor: {
        StartAt: 'Wait',
        States: {
          Wait: {
            Type: 'Task',
            Resource: 'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
            Parameters: { QueueUrl: 'q', MessageBody: { 'name.$': '$.name', 'token.$': '$$.Task.Token' } },
            TimeoutSecondsPath: '$.timeoutSeconds',
            End: true,
          },
        },
      },
      Next: 'Last',
    },
    Last: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', Parameters: { FunctionName: 'f', Payload: {} }, End: true },
  },
});

describe('engineDefinition', () => {
  it('moves each TimeoutSecondsPath into its Parameters and gives every task without a TimeoutSeconds the backstop, in a copy', () => {
    const original = waiting();
    const copy = engineDefinition(original);
    const states = Object.fromEntries(taskStates(copy));
    expect(states.Wait.TimeoutSecondsPath).toBeUndefined();
    expect(states.Wait.TimeoutSeconds).toBe(ENGINE_BACKSTOP_TIMEOUT_SECONDS);
    expect(Object.values(states.Wait.Parameters)).toContain('$.timeoutSeconds');
    expect(states.Last.TimeoutSeconds).toBe(ENGINE_BACKSTOP_TIMEOUT_SECONDS);
    expect(original.States.Each.ItemProcessor.States.Wait.TimeoutSecondsPath).toBe('$.timeoutSeconds');
    // A task's own TimeoutSeconds stays (the fan-out's Lambda tasks keep their 900 s).
    const fanOut = Object.fromEntries(taskStates(engineDefinition(loadFanOutDefinition(LOCAL_SUBSTITUTIONS))));
    expect(fanOut.Aggregate.TimeoutSeconds).toBe(900);
    expect(fanOut.DispatchChild.TimeoutSecondsPath).toBeUndefined();
    expect(fanOut.DispatchBatch.TimeoutSecondsPath).toBeUndefined();
  });

  it('refuses a Distributed Map, which the engine would run inline', () => {
    const distributed = waiting();
    distributed.States.Each.ItemProcessor.ProcessorConfig = { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' };
    expect(() => engineDefinition(distributed)).toThrow(/Each is a Distributed Map, which the local engine does not run/);
  });

  it("on the engine: each task gets its iteration's timeout from the state input (as AWS takes TimeoutSecondsPath) and its own token in the placeholder's place", async () => {
    const seen: { name: string; timeout: number | undefined; body: unknown }[] = [];
    const machine = new StateMachine(engineDefinition(waiting()) as StateMachineDefinition);
    const execution = machine.run(
      { items: [{ name: 'a', timeout: 5 }, { name: 'b', timeout: 7 }] },
      {
        context: engineContext(),
        overrides: {
          taskResourceLocalHandlers: {
            Wait: async (input: any) => {
              const timeout = takeTimeoutSeconds(input);
              seen.push({ name: input.MessageBody.name, timeout, body: withTaskToken(input.MessageBody, `token-${input.MessageBody.name}`) });
              return {};
            },
            Last: async (input: any) => ({ timeout: takeTimeoutSeconds(input) ?? null }),
          },
        },
      },
    );
    expect(await execution.result).toEqual({ timeout: null });
    expect(seen.sort((x, y) => x.name.localeCompare(y.name))).toEqual([
      { name: 'a', timeout: 5, body: { name: 'a', token: 'token-a' } },
      { name: 'b', timeout: 7, body: { name: 'b', token: 'token-b' } },
    ]);
  });
});

describe('takeTimeoutSeconds', () => {
  it('takes the timeout out of the resolved input (the task does not see it), and is undefined for a task without one', () => {
    expect(takeTimeoutSeconds({ a: 1 })).toBeUndefined();
    const wait = Object.fromEntries(taskStates(engineDefinition(waiting()))).Wait;
    // The engine resolves `<field>.$` to `<field>` in the task's input.
    const [pathField] = Object.entries(wait.Parameters).find(([, v]) => v === '$.timeoutSeconds')!;
    const input: Record<string, unknown> = { a: 1, [pathField.slice(0, -2)]: 12 };
    expect(takeTimeoutSeconds(input)).toBe(12);
    expect(input).toEqual({ a: 1 });
  });
});

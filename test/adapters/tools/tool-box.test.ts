/** ToolBox and callTool: lambda tools (a mocked Lambda API: no engine runs functions here), output bounds, errors as results. */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { callTool, ToolBox } from '../../../adapters/tools/tool-box';

const lambda = mockClient(LambdaClient);
afterAll(() => lambda.restore());
beforeEach(() => lambda.reset());
const client = new LambdaClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const context = { agent: 'A', branchId: 'root.1', runId: 'r1' };
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value)) as never;

describe('lambda tools', () => {
  it('invoke the function with the call as payload and give its answer to the model', async () => {
    lambda.on(InvokeCommand).resolves({ Payload: encode({ price: 3 }) });
    const [tool] = await new ToolBox({ lambdaClient: client }).toolsFor('A', [{ kind: 'lambda', name: 'price', functionName: 'price-fn' }]);
    expect(tool.spec).toEqual({ name: 'price', description: 'the Lambda function price-fn', parameters: { type: 'object' } });
    const outcome = await callTool(tool, { item: 'tea' }, context);
    expect(outcome).toMatchObject({ text: '{"price":3}', isError: false, record: { tool: 'price', kind: 'lambda', status: 'ok' } });
    const sent = lambda.commandCalls(InvokeCommand)[0].args[0].input;
    expect(sent.FunctionName).toBe('price-fn');
    expect(JSON.parse(new TextDecoder().decode(sent.Payload as Uint8Array))).toEqual({ tool: 'price', arguments: { item: 'tea' }, agent: 'A', runId: 'r1', branchId: 'root.1' });
  });

  it('give a function error to the model as an error result, and bound what comes back', async () => {
    lambda.on(InvokeCommand).resolvesOnce({ FunctionError: 'Unhandled', Payload: encode({ errorMessage: 'boom' }) }).resolves({ Payload: encode('x'.repeat(100)) });
    // (the error fits in 60 characters; the 102 characters of the second answer do not)
    const [tool] = await new ToolBox({ lambdaClient: client }).toolsFor('A', [{ kind: 'lambda', name: 'f', functionName: 'f-fn', maxOutputChars: 60 }]);
    expect(await callTool(tool, {}, context)).toMatchObject({
      text: 'f-fn raised Unhandled: {"errorMessage":"boom"}',
      isError: true,
      record: { status: 'error' },
    });
    const cut = await callTool(tool, {}, context);
    expect(cut.text).toBe(`"${'x'.repeat(59)}\n[output cut: 102 characters, the first 60 shown]`);
    expect(cut.record.status).toBe('ok');
  });

  it('time out a function that does not answer', async () => {
    lambda.on(InvokeCommand).callsFake(() => new Promise(() => {}));
    const [tool] = await new ToolBox({ lambdaClient: client }).toolsFor('A', [{ kind: 'lambda', name: 'slow', functionName: 'slow-fn', timeoutMs: 50 }]);
    expect(await callTool(tool, {}, context)).toMatchObject({ text: 'tool slow timed out after 50 ms', isError: true, record: { status: 'timeout' } });
  });
});

describe('module tools where no file may be loaded', () => {
  it('fail the step naming the tool and what to use instead', async () => {
    await expect(new ToolBox({ moduleTools: false }).toolsFor('A', [{ kind: 'module', module: './t.ts', export: 'f' }])).rejects.toThrow(
      'agent A tools.0: module tools run only in local runs and dev; here use http, lambda or mcp (url) tools',
    );
  });
});

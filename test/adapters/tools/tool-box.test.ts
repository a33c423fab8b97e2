/** ToolBox and callTool: lambda tools (a mocked Lambda API: no engine runs functions here), output bounds, errors as results. */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { callTool, ToolBox } from '../../../adapters/tools/tool-box';
import { MAX_TOOL_VALUE_BYTES, TOOL_TRACE_PREVIEW_BYTES } from '../../../core/tools';
import { MemoryBlobStore } from '../../../adapters/blobs/memory-blob-store';

const lambda = mockClient(LambdaClient);
afterAll(() => lambda.restore());
beforeEach(() => lambda.reset());
const client = new LambdaClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const context = { agent: 'A', team: 't', branchId: 'root.1', runId: 'r1' };
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

describe('the trace record of a call', () => {
  it('carries the arguments and the output whole when small, and a bounded preview that says what it left out when large', async () => {
    lambda.on(InvokeCommand).resolvesOnce({ Payload: encode({ price: 3 }) }).resolves({ Payload: encode('y'.repeat(5_000)) });
    const [tool] = await new ToolBox({ lambdaClient: client }).toolsFor('A', [{ kind: 'lambda', name: 'price', functionName: 'price-fn' }]);
    const small = await callTool(tool, { item: 'tea' }, context);
    expect(small.record).toMatchObject({ arguments: { item: 'tea' }, output: '{"price":3}', argumentBytes: 14, outputBytes: 11 });

    const large = await callTool(tool, { items: Array.from({ length: 500 }, (_, i) => `item-${i}`) }, context);
    expect(large.record.argumentBytes).toBeGreaterThan(TOOL_TRACE_PREVIEW_BYTES);
    expect(JSON.stringify(large.record.arguments).length).toBeLessThanOrEqual(TOOL_TRACE_PREVIEW_BYTES);
    expect(JSON.stringify(large.record.arguments)).toContain('left out');
    expect(large.record.outputBytes).toBe(5_002);
    expect(Buffer.byteLength(large.record.output!)).toBeLessThanOrEqual(TOOL_TRACE_PREVIEW_BYTES);
    expect(large.record.output).toMatch(/^"y+… \(\d+ more characters, \d+ bytes in all\)$/);
  });

  it("inline: a value past the preview is kept whole in the run's blob store, by reference; one within it is not stored", async () => {
    const blobs = new MemoryBlobStore();
    const whole = 'z'.repeat(30_000);
    lambda.on(InvokeCommand).resolvesOnce({ Payload: encode({ price: 3 }) }).resolves({ Payload: encode(whole) });
    const box = new ToolBox({ lambdaClient: client, trace: { mode: 'inline', blobs } });
    const [tool] = await box.toolsFor('A', [{ kind: 'lambda', name: 'price', functionName: 'price-fn' }]);
    const traced = { ...context, trace: box.trace };
    const small = await callTool(tool, { item: 'tea' }, traced);
    expect(small.record).toMatchObject({ arguments: { item: 'tea' }, output: '{"price":3}' });
    expect(small.record).not.toHaveProperty('argumentsRef');
    expect(small.record).not.toHaveProperty('outputRef');

    const items = Array.from({ length: 500 }, (_, i) => `item-${i}`);
    const large = await callTool(tool, { items }, traced);
    // The model gets the output cut at maxOutputChars (20,000); the trace keeps all 30,000 characters.
    expect(large.text.length).toBeLessThan(21_000);
    expect(large.record.outputBytes).toBe(30_002);
    expect(JSON.stringify(large.record.arguments)).toContain('left out');
    const scope = { team: 't', runId: 'r1' };
    expect(JSON.parse(await blobs.get(scope, large.record.argumentsRef!))).toEqual({ items });
    expect(JSON.parse(await blobs.get(scope, large.record.outputRef!))).toBe(JSON.stringify(whole));
    // Kept per run: another run cannot read it.
    await expect(blobs.get({ team: 't', runId: 'other' }, large.record.outputRef!)).rejects.toThrow();
  });

  it('reference: the record carries no content at all, only sizes and references to every value', async () => {
    const blobs = new MemoryBlobStore();
    lambda.on(InvokeCommand).resolves({ Payload: encode({ secret: 's3cr3t' }) });
    const box = new ToolBox({ lambdaClient: client, trace: { mode: 'reference', blobs } });
    const [tool] = await box.toolsFor('A', [{ kind: 'lambda', name: 'vault', functionName: 'vault-fn' }]);
    const outcome = await callTool(tool, { key: 'k1' }, { ...context, trace: box.trace });
    expect(outcome.text).toBe('{"secret":"s3cr3t"}');
    expect(outcome.record).not.toHaveProperty('arguments');
    expect(outcome.record).not.toHaveProperty('output');
    expect(JSON.stringify(outcome.record)).not.toContain('s3cr3t');
    expect(outcome.record).toMatchObject({ argumentBytes: 12, outputBytes: 19, argumentsRef: expect.stringMatching(/^[0-9a-f]{64}$/), outputRef: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const scope = { team: 't', runId: 'r1' };
    expect(JSON.parse(await blobs.get(scope, outcome.record.argumentsRef!))).toEqual({ key: 'k1' });
    expect(JSON.parse(JSON.parse(await blobs.get(scope, outcome.record.outputRef!)))).toEqual({ secret: 's3cr3t' });
  });

  it(`a value past ${MAX_TOOL_VALUE_BYTES} bytes is kept as a preview of that size that says what it left out`, async () => {
    const blobs = new MemoryBlobStore();
    lambda.on(InvokeCommand).resolves({ Payload: encode('w'.repeat(MAX_TOOL_VALUE_BYTES + 1000)) });
    const box = new ToolBox({ lambdaClient: client, trace: { mode: 'inline', blobs } });
    const [tool] = await box.toolsFor('A', [{ kind: 'lambda', name: 'dump', functionName: 'dump-fn' }]);
    const outcome = await callTool(tool, {}, { ...context, trace: box.trace });
    const kept = await blobs.get({ team: 't', runId: 'r1' }, outcome.record.outputRef!);
    expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(MAX_TOOL_VALUE_BYTES);
    expect(JSON.parse(kept)).toMatch(/more characters, \d+ bytes in all\)$/);
    expect(outcome.record.outputBytes).toBe(MAX_TOOL_VALUE_BYTES + 1002);
  });
});

describe('module tools where no file may be loaded (a deployed stack)', () => {
  const context = { agent: 'A', team: 't', branchId: 'b', runId: 'r' };
  it('come from the modules bundled at synth, by the path the definition writes, and run in-process', async () => {
    const bundledModules = { './t.ts': { lookup: (args: { topic: string }, ctx: { branch: { runId: string } }) => ({ fact: args.topic, runId: ctx.branch.runId }) } };
    const [tool] = await new ToolBox({ bundledModules }).toolsFor('A', [{ kind: 'module', module: './t.ts', export: 'lookup' }]);
    expect(tool.spec.name).toBe('lookup');
    const outcome = await callTool(tool, { topic: 'x' }, context);
    expect(outcome).toMatchObject({ isError: false, text: '{"fact":"x","runId":"r"}', record: { tool: 'lookup', kind: 'module', status: 'ok' } });
  });

  it('a module or an export that was not bundled fails the step naming the tool and why', async () => {
    const box = new ToolBox({ bundledModules: { './t.ts': { f: () => 1 } } });
    await expect(box.toolsFor('A', [{ kind: 'module', module: './other.ts', export: 'f' }])).rejects.toThrow(
      "agent A tools.0: module ./other.ts is not bundled into this stack: in AWS, module tools are those of the team registry's agents, bundled at synth (cdk deploy)",
    );
    await expect(box.toolsFor('A', [{ kind: 'module', module: './t.ts', export: 'g' }])).rejects.toThrow('agent A tools.0: module ./t.ts has no function export "g"');
  });
});

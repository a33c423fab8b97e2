/** BedrockInvoker against a mocked Converse API: request shape, usage, retries, timeouts. */
import {
  BedrockRuntimeClient,
  ConverseCommand,
  InternalServerException,
  ModelNotReadyException,
  ThrottlingException,
  ValidationException,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { BedrockInvoker, toConverseMessages } from '../../../adapters/agents/bedrock-invoker';
import { AgentInvocationError, AgentTimeoutError, AgentTransportError } from '../../../core/errors';
import type { BedrockAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';

const bedrock = mockClient(BedrockRuntimeClient);
// The mock replaces the client class's send for the whole worker: put it back for the files after this one.
afterAll(() => bedrock.restore());
const client = new BedrockRuntimeClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const modelId = 'anthropic.claude-3-5-haiku-20241022-v1:0';

function call(overrides: Partial<AgentInvocation<BedrockAgentDefinition>> = {}): AgentInvocation<BedrockAgentDefinition> {
  return {
    team: 't',
    runId: 'r1',
    agentName: 'Planner',
    definition: { kind: 'bedrock', modelId, temperature: 0.2, maxTokens: 800, system: 'Plan carefully.' },
    branchId: 'root',
    step: 1,
    input: { child_count: 2 },
    memory: [
      { role: 'user', agent: 'Planner', content: 'Analyze Q4 sales' },
      { role: 'assistant', agent: 'Planner', content: '{"next_action":"parallel_invoke","agents":["Researcher"]}' },
    ],
    allowed: ['Researcher', 'Summarizer'],
    ...overrides,
  };
}

function reply(text: string, inputTokens = 120, outputTokens = 30): ConverseCommandOutput {
  return {
    output: { message: { role: 'assistant', content: [{ text }] } },
    stopReason: 'end_turn',
    usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
    metrics: { latencyMs: 10 },
    $metadata: {},
  };
}

const final = '{"next_action":"final_response","content":"done"}';
const meta = (httpStatusCode: number) => ({ $metadata: { httpStatusCode } });

function invoker(extra: ConstructorParameters<typeof BedrockInvoker>[0] = {}) {
  const sleeps: number[] = [];
  const instance = new BedrockInvoker({
    client,
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...extra,
  });
  return { instance, sleeps };
}

beforeEach(() => bedrock.reset());

describe('BedrockInvoker request', () => {
  it('sends modelId, the protocol system prompt, the history and inferenceConfig', async () => {
    bedrock.on(ConverseCommand).resolves(reply(final));
    await invoker().instance.invoke(call());
    const [sent] = bedrock.commandCalls(ConverseCommand);
    const input = sent.args[0].input;
    expect(input.modelId).toBe(modelId);
    const system = input.system?.[0].text ?? '';
    expect(system).toContain('You are the agent "Planner"');
    expect(system).toContain('Agents you may call: "Researcher", "Summarizer".');
    expect(system).toContain('"next_action":"parallel_invoke"');
    expect(system).toContain('exactly one JSON object');
    expect(system.endsWith('Plan carefully.')).toBe(true);
    expect(input.messages).toEqual([
      { role: 'user', content: [{ text: 'Analyze Q4 sales' }] },
      { role: 'assistant', content: [{ text: '{"next_action":"parallel_invoke","agents":["Researcher"]}' }] },
      { role: 'user', content: [{ text: '{"child_count":2}' }] },
    ]);
    expect(input.inferenceConfig).toEqual({ temperature: 0.2, maxTokens: 800 });
  });

  it('leaves inferenceConfig out when the definition sets neither', async () => {
    bedrock.on(ConverseCommand).resolves(reply(final));
    await invoker().instance.invoke(call({ definition: { kind: 'bedrock', modelId } }));
    expect(bedrock.commandCalls(ConverseCommand)[0].args[0].input.inferenceConfig).toBeUndefined();
  });

  it('merges same-role runs so roles alternate, starting with a user turn', () => {
    const messages = toConverseMessages([
      { role: 'assistant', content: 'x' },
      { role: 'user', content: 'a' },
      { role: 'user', content: 'b' },
      { role: 'assistant', content: 'c' },
      { role: 'assistant', content: '  ' },
      { role: 'user', content: 'e' },
    ]);
    expect(messages).toEqual([
      { role: 'user', content: [{ text: '(the conversation so far)' }] },
      { role: 'assistant', content: [{ text: 'x' }] },
      { role: 'user', content: [{ text: 'a\n\nb' }] },
      { role: 'assistant', content: [{ text: 'c\n\n(empty)' }] },
      { role: 'user', content: [{ text: 'e' }] },
    ]);
  });

  it('turns an invalid-response input into a corrective user turn', async () => {
    bedrock.on(ConverseCommand).resolves(reply(final));
    const input = { error: 'InvalidAgentResponse', field: 'next_action', message: 'response must have "next_action"' };
    await invoker().instance.invoke(call({ input }));
    const messages = bedrock.commandCalls(ConverseCommand)[0].args[0].input.messages ?? [];
    expect(messages.at(-1)?.content?.[0].text).toContain('Your previous reply was not accepted (field "next_action")');
  });

  it('uses a client per region when the definition names one', async () => {
    bedrock.on(ConverseCommand).resolves(reply(final));
    const regions: string[] = [];
    const { instance } = invoker({
      clientForRegion: (region) => {
        regions.push(region);
        return new BedrockRuntimeClient({ region, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
      },
    });
    const definition: BedrockAgentDefinition = { kind: 'bedrock', modelId, region: 'eu-west-1' };
    await instance.invoke(call({ definition }));
    await instance.invoke(call({ definition }));
    expect(regions).toEqual(['eu-west-1']);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(2);
  });

});

describe('BedrockInvoker reply', () => {
  it('returns the output text raw and the token usage', async () => {
    const text = 'Here is my answer:\n```json\n{"next_action":"final_response","content":42}\n```';
    bedrock.on(ConverseCommand).resolves(reply(text, 321, 45));
    expect(await invoker().instance.invoke(call())).toEqual({ response: text, usage: { inputTokens: 321, outputTokens: 45 } });
  });

  it('joins several text blocks', async () => {
    bedrock.on(ConverseCommand).resolves({
      ...reply(''),
      output: { message: { role: 'assistant', content: [{ text: '{"next_action":' }, { text: '"final_response"}' }] } },
    });
    expect((await invoker().instance.invoke(call())).response).toBe('{"next_action":\n"final_response"}');
  });

  it('fails clearly when the model returned no text', async () => {
    bedrock.on(ConverseCommand).resolves({ ...reply(''), output: { message: { role: 'assistant', content: [] } }, stopReason: 'max_tokens' });
    await expect(invoker().instance.invoke(call())).rejects.toThrow(/returned no text \(stopReason max_tokens\)/);
  });
});

describe('BedrockInvoker retries and timeouts', () => {
  it('retries a ThrottlingException with backoff, then succeeds', async () => {
    bedrock
      .on(ConverseCommand)
      .rejectsOnce(new ThrottlingException({ message: 'Too many requests', ...meta(429) }))
      .resolves(reply(final, 10, 2));
    const { instance, sleeps } = invoker({ backoffMs: 400 });
    expect(await instance.invoke(call())).toEqual({ response: final, usage: { inputTokens: 10, outputTokens: 2 } });
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(2);
    expect(sleeps).toEqual([300]); // 400 ms ceiling, half fixed + half × random 0.5
  });

  it('retries ModelNotReady and 5xx errors, doubling the backoff', async () => {
    bedrock
      .on(ConverseCommand)
      .rejectsOnce(new ModelNotReadyException({ message: 'warming up', ...meta(429) }))
      .rejectsOnce(new InternalServerException({ message: 'oops', ...meta(500) }))
      .resolves(reply(final));
    const { instance, sleeps } = invoker({ backoffMs: 100, random: () => 0 });
    await instance.invoke(call());
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(3);
    expect(sleeps).toEqual([50, 100]);
  });

  it('gives up after maxAttempts with an AgentInvocationError holding the cause', async () => {
    const throttled = new ThrottlingException({ message: 'Too many requests', ...meta(429) });
    bedrock.on(ConverseCommand).rejects(throttled);
    const error = await invoker({ maxAttempts: 3 }).instance.invoke(call()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTransportError);
    expect((error as Error).message).toMatch(/failed: ThrottlingException.* \(after 3 attempts\)$/);
    expect((error as Error).cause).toBe(throttled);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(3);
  });

  it("the definition's retries overrides the attempts", async () => {
    bedrock.on(ConverseCommand).rejects(new ThrottlingException({ message: 'slow down', ...meta(429) }));
    await expect(invoker().instance.invoke(call({ definition: { kind: 'bedrock', modelId, retries: 0 } }))).rejects.toThrow();
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(1);
  });

  it('does not retry a ValidationException', async () => {
    const invalid = new ValidationException({ message: 'The model returned an invalid request', ...meta(400) });
    bedrock.on(ConverseCommand).rejects(invalid);
    const { instance, sleeps } = invoker();
    const error = await instance.invoke(call()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect(error).not.toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toContain('ValidationException: The model returned an invalid request');
    expect((error as Error).cause).toBe(invalid);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('times out a call that never answers with an AgentTimeoutError (not retried)', async () => {
    bedrock.on(ConverseCommand).callsFake(() => new Promise(() => {}));
    const error = await invoker()
      .instance.invoke(call({ definition: { kind: 'bedrock', modelId, timeoutMs: 1 } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toMatch(/within 1 ms/);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(1);
  });

  it('stops when the branch is cancelled mid-call', async () => {
    const controller = new AbortController();
    bedrock.on(ConverseCommand).callsFake(() => {
      controller.abort();
      return new Promise(() => {});
    });
    const error = await invoker().instance.invoke(call({ signal: controller.signal })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentInvocationError);
    expect(error).not.toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toMatch(/aborted/);
  });
});

/** The LLM agent kinds, ready to hand to a KindRouter next to script, http and lambda. */
import { BedrockInvoker, type BedrockInvokerOptions } from './bedrock-invoker';
import { OpenAiInvoker, type OpenAiInvokerOptions } from './openai-invoker';

export { BedrockInvoker, toConverseMessages, type BedrockInvokerOptions } from './bedrock-invoker';
export { OpenAiInvoker, chatCompletionsUrl, type OpenAiInvokerOptions } from './openai-invoker';

export interface LlmInvokerOptions {
  bedrock?: BedrockInvokerOptions;
  openai?: OpenAiInvokerOptions;
}

/** `{ bedrock, openai }` invokers; clients are made lazily, so nothing calls AWS until a step does. */
export function llmInvokers(options: LlmInvokerOptions = {}): { bedrock: BedrockInvoker; openai: OpenAiInvoker } {
  return { bedrock: new BedrockInvoker(options.bedrock), openai: new OpenAiInvoker(options.openai) };
}

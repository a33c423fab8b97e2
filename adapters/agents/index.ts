/** The LLM agent kinds, ready to hand to a KindRouter next to script, http and lambda. */
import { BedrockInvoker, type BedrockInvokerOptions } from './bedrock-invoker';
import { OpenAiInvoker, type OpenAiInvokerOptions } from './openai-invoker';
import { ToolBox } from '../tools/tool-box';

export { BedrockInvoker, toConverseMessages, type BedrockInvokerOptions } from './bedrock-invoker';
export { OpenAiInvoker, chatCompletionsUrl, type OpenAiInvokerOptions } from './openai-invoker';

export interface LlmInvokerOptions {
  bedrock?: BedrockInvokerOptions;
  openai?: OpenAiInvokerOptions;
  /** Runs both kinds' user tools (one set of MCP connections); close it when done. */
  toolBox?: ToolBox;
}

/** `{ bedrock, openai }` invokers; clients are made lazily, so nothing calls AWS until a step does. */
export function llmInvokers(options: LlmInvokerOptions = {}): { bedrock: BedrockInvoker; openai: OpenAiInvoker } {
  const toolBox = options.toolBox ?? new ToolBox();
  return {
    bedrock: new BedrockInvoker({ toolBox, ...options.bedrock }),
    openai: new OpenAiInvoker({ toolBox, ...options.openai }),
  };
}

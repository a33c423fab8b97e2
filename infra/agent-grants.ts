/**
 * The resources the step-worker may call on behalf of agents: only what the team's registry
 * names. A run request can never widen this (no URL, ARN or model ever comes from a request).
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type { AgentRegistry } from '../core/model';

/** ARNs of the registry's `lambda` agents, exactly as the invoker will call them. */
export function lambdaAgentArns(stack: Stack, registry: AgentRegistry): string[] {
  const arns = new Set<string>();
  for (const agent of Object.values(registry)) {
    if (agent.kind !== 'lambda' || typeof agent.functionName !== 'string') continue;
    const name = agent.functionName;
    if (name.startsWith('arn:')) {
      arns.add(name);
    } else if (/^\d{12}:function:/.test(name)) {
      // Partial ARN (account:function:name[:qualifier]).
      arns.add(`arn:${stack.partition}:lambda:${stack.region}:${name}`);
    } else {
      // name or name:qualifier; a qualified call is authorized against the qualified ARN.
      arns.add(stack.formatArn({ service: 'lambda', resource: 'function', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME }));
    }
  }
  return [...arns];
}

/** Foundation-model ARNs of the registry's `bedrock` agents (the agent's region, else the stack's). */
export function bedrockModelArns(stack: Stack, registry: AgentRegistry): string[] {
  const arns = new Set<string>();
  for (const agent of Object.values(registry)) {
    if (agent.kind !== 'bedrock' || typeof agent.modelId !== 'string') continue;
    if (agent.modelId.startsWith('arn:')) {
      arns.add(agent.modelId);
      continue;
    }
    const region = typeof agent.region === 'string' ? agent.region : stack.region;
    // Foundation models have no account in their ARN.
    arns.add(
      stack.formatArn({
        service: 'bedrock',
        region,
        account: '',
        resource: 'foundation-model',
        resourceName: agent.modelId,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      }),
    );
  }
  return [...arns];
}

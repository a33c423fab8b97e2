/**
 * The resources the step-worker may call on behalf of agents: only what the team's registry
 * names. A run request can never widen this (no URL, ARN or model ever comes from a request).
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import { toolsOf } from '../core/agent-kinds';
import type { AgentRegistry } from '../core/model';

/**
 * ARNs of the registry's `lambda` agents and of its agents' `lambda` tools (`tools:` entries of
 * kind `lambda`), exactly as the invoker and the tool box will call them.
 */
export function lambdaAgentArns(stack: Stack, registry: AgentRegistry): string[] {
  const arns = new Set<string>();
  for (const agent of Object.values(registry)) {
    if (agent.kind === 'lambda') arns.add(lambdaArn(stack, agent.functionName));
    for (const tool of toolsOf(agent)) {
      if (tool.kind === 'lambda') arns.add(lambdaArn(stack, tool.functionName));
    }
  }
  return [...arns];
}

/** The ARN a Lambda call by this name (full ARN, partial ARN, or name[:qualifier]) is authorized against. */
function lambdaArn(stack: Stack, name: string): string {
  if (name.startsWith('arn:')) return name;
  // Partial ARN (account:function:name[:qualifier]).
  if (/^\d{12}:function:/.test(name)) return `arn:${stack.partition}:lambda:${stack.region}:${name}`;
  // name or name:qualifier; a qualified call is authorized against the qualified ARN.
  return stack.formatArn({ service: 'lambda', resource: 'function', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
}

/** The geographies of AWS's cross-Region (system-defined) inference profiles: `<geo>.<model id>`. */
const INFERENCE_PROFILE_ID = /^(us|eu|apac|us-gov|jp|au|ca|global)\.(.+)$/;

/** What the step-worker may invoke for the registry's `bedrock` agents. */
export interface BedrockGrants {
  /** Foundation models called directly (the agent's region, else the stack's), and inference-profile ARNs. */
  resources: string[];
  /**
   * A cross-Region inference profile routes each request to a destination Region, where the call
   * is authorized against the foundation model's ARN in that Region too. The destinations differ
   * per profile and grow over time, so the model is granted in every Region, but only when the
   * call comes through that profile (bedrock:InferenceProfileArn).
   */
  throughProfiles: { profileArn: string; modelArn: string }[];
}

export function bedrockGrants(stack: Stack, registry: AgentRegistry): BedrockGrants {
  const resources = new Set<string>();
  const throughProfiles = new Map<string, { profileArn: string; modelArn: string }>();
  const modelArn = (region: string, modelId: string) =>
    // Foundation models have no account in their ARN.
    stack.formatArn({ service: 'bedrock', region, account: '', resource: 'foundation-model', resourceName: modelId, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
  for (const agent of Object.values(registry)) {
    if (agent.kind !== 'bedrock') continue;
    const region = agent.region ?? stack.region;
    const fromArn = /^arn:[^:]+:bedrock:([^:]*):([^:]*):inference-profile\/(.+)$/.exec(agent.modelId);
    const profile = fromArn ? INFERENCE_PROFILE_ID.exec(fromArn[3]) : agent.modelId.startsWith('arn:') ? null : INFERENCE_PROFILE_ID.exec(agent.modelId);
    if (profile) {
      const profileArn = fromArn
        ? agent.modelId
        : stack.formatArn({ service: 'bedrock', region, resource: 'inference-profile', resourceName: agent.modelId, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
      resources.add(profileArn);
      throughProfiles.set(profileArn, { profileArn, modelArn: modelArn('*', profile[2]) });
      continue;
    }
    resources.add(agent.modelId.startsWith('arn:') ? agent.modelId : modelArn(region, agent.modelId));
  }
  return { resources: [...resources], throughProfiles: [...throughProfiles.values()] };
}

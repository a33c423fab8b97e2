/**
 * Agent definitions are one schema per kind (core/agent-kinds.ts): a scenario's errors still name
 * the field and say what would be right — the kinds for a wrong kind, the kind that needs a missing
 * field, the kinds that take a field given to another kind.
 */
import { describe, expect, it } from 'vitest';
import { AGENT_KINDS, agentDefinitionSchema, fieldsOf, hasTransportRetries, kindsTaking, toolsOf } from '../../core/agent-kinds';
import { parseScenario } from '../../core/scenario';

const refusal = (agent: unknown): string => {
  try {
    parseScenario({ name: 'x', entry: 'A', agents: { A: agent } }, 's.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  return 'accepted';
};

describe('agent kinds', () => {
  it('a wrong or missing kind lists the kinds', () => {
    const kinds = 'expected one of "script"|"http"|"lambda"|"openai"|"bedrock"|"module"';
    expect(refusal({ kind: 'telepathy' })).toBe(`s.yaml: agents.A.kind: Invalid option: ${kinds}`);
    expect(refusal({ url: 'http://127.0.0.1:9/a' })).toBe(`s.yaml: agents.A.kind: Invalid option: ${kinds}`);
    expect(AGENT_KINDS).toEqual(['script', 'http', 'lambda', 'openai', 'bedrock', 'module']);
  });

  it('a missing required field names the field and the kind that needs it', () => {
    expect(refusal({ kind: 'http' })).toBe('s.yaml: agents.A.url: an http agent needs url');
    expect(refusal({ kind: 'lambda' })).toBe('s.yaml: agents.A.functionName: a lambda agent needs functionName');
    expect(refusal({ kind: 'bedrock' })).toBe('s.yaml: agents.A.modelId: a bedrock agent needs modelId');
    expect(refusal({ kind: 'openai' })).toBe('s.yaml: agents.A.model: an openai agent needs model');
    expect(refusal({ kind: 'module' })).toBe('s.yaml: agents.A.module: a module agent needs module');
    expect(refusal({ kind: 'script' })).toBe('s.yaml: agents.A.responses: a script agent needs responses or rules');
    expect(refusal({ kind: 'script', rules: [{ when: 'x', responses: [1] }] })).toBe('accepted');
  });

  it("another kind's field names the kinds that take it; an unknown field is named as unknown", () => {
    expect(refusal({ kind: 'script', responses: [1], url: 'http://127.0.0.1:9/a' })).toBe('s.yaml: agents.A.url: only http agents take url (this agent is script)');
    expect(refusal({ kind: 'lambda', functionName: 'f', retries: 2 })).toBe('s.yaml: agents.A.retries: only http, openai and bedrock agents take retries (this agent is lambda)');
    expect(refusal({ kind: 'openai', model: 'm', region: 'eu-west-1' })).toBe('s.yaml: agents.A.region: only bedrock agents take region (this agent is openai)');
    expect(refusal({ kind: 'http', url: 'http://127.0.0.1:9/a', tools: [] })).toBe('s.yaml: agents.A.tools: only openai and bedrock agents call tools (this agent is http)');
    expect(refusal({ kind: 'http', url: 'http://127.0.0.1:9/a', colour: 'blue' })).toBe('s.yaml: agents.A: unknown field(s) "colour"');
    // A wrong value of a field the kind takes is the field's own message.
    expect(refusal({ kind: 'http', url: 'not a url' })).toBe('s.yaml: agents.A.url: must be a URL');
  });

  it('each kind takes its own fields and the common ones', () => {
    for (const kind of AGENT_KINDS) expect(fieldsOf(kind)).toEqual(expect.arrayContaining(['kind', 'allowed', 'description', 'retry']));
    expect(kindsTaking('timeoutMs')).toEqual(['http', 'lambda', 'openai', 'bedrock', 'module']);
    expect(kindsTaking('maxResponseBytes')).toEqual(['http', 'openai']);
    expect(hasTransportRetries({ kind: 'script', responses: [1] })).toBe(false);
    expect(hasTransportRetries({ kind: 'http', url: 'http://127.0.0.1:9/a' })).toBe(true);
    expect(toolsOf({ kind: 'openai', model: 'm', tools: [{ kind: 'http', name: 'h', url: 'http://127.0.0.1:9/h' }] })).toHaveLength(1);
    expect(toolsOf({ kind: 'lambda', functionName: 'f' })).toEqual([]);
    expect(agentDefinitionSchema.safeParse({ kind: 'module', module: './a.ts', export: 'run', timeoutMs: 1000 }).success).toBe(true);
  });
});

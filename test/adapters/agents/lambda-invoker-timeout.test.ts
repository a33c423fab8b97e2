/** The lambda agent's own timeout, against a local Lambda endpoint whose function never answers. */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LambdaInvoker } from '../../../adapters/agents/lambda-invoker';
import { AgentTimeoutError } from '../../../core/errors';
import type { LambdaAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';

const call = (definition: LambdaAgentDefinition): AgentInvocation<LambdaAgentDefinition> => ({
  team: 't', runId: 'r', agentName: 'A', definition, branchId: 'root', step: 0,
  input: 'hello', memory: [], allowed: [],
});

describe('lambda invoker timeout', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // A Lambda endpoint whose function never answers.
    server = createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a function that does not answer within timeoutMs fails the call with AgentTimeoutError', async () => {
    const client = new LambdaClient({ region: 'us-east-1', endpoint: url, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
    const invoker = new LambdaInvoker({ client });
    const error = await invoker.invoke(call({ kind: 'lambda', functionName: 'slow-fn', timeoutMs: 200 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentTimeoutError);
    expect((error as Error).message).toBe('no answer from lambda agent slow-fn within 200 ms');
  });
});

/**
 * `branch-spawner rehearse up [--team <name>]`: the rehearsed stack kept running, with its REST API
 * on a local port that verifies SigV4 like API Gateway, and the access key of a caller the stack
 * allows; until Ctrl-C. Point `run --api`, `show`, `events`, `dev --api` … at it.
 */
import { apiInvoker, RehearsalApiGateway } from './api-gateway';
import { RehearsalStack, type RehearsalOptions } from './rehearsal-stack';

export interface RehearsedApi {
  stack: RehearsalStack;
  url: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/** Starts the stack and its API (the caller closes it). */
export async function startRehearsedApi(options: RehearsalOptions & { port?: number } = {}): Promise<RehearsedApi> {
  const stack = await RehearsalStack.start(options);
  try {
    const caller = apiInvoker(stack);
    const gateway = await RehearsalApiGateway.start(stack, [caller], { port: options.port });
    return {
      stack,
      url: gateway.url,
      region: stack.template.env.region,
      credentials: { accessKeyId: caller.accessKeyId, secretAccessKey: caller.secretAccessKey },
      close: async () => {
        await gateway.close();
        await stack.close();
      },
    };
  } catch (error) {
    await stack.close();
    throw error;
  }
}

/** The lines `rehearse up` prints: the API URL and the caller's credentials as shell exports. */
export function describeRehearsedApi(api: Pick<RehearsedApi, 'url' | 'region' | 'credentials'>, stackName: string): string {
  const { accessKeyId, secretAccessKey } = api.credentials;
  return [
    `# ${stackName} is up; its API verifies SigV4 signatures. Ctrl-C stops it.`,
    `export BRANCH_SPAWNER_API=${api.url}`,
    `export AWS_ACCESS_KEY_ID=${accessKeyId} AWS_SECRET_ACCESS_KEY=${secretAccessKey} AWS_REGION=${api.region}`,
    `# then: npx branch-spawner run examples/hierarchical.yaml --api $BRANCH_SPAWNER_API`,
    '',
  ].join('\n');
}

export async function rehearseUpCommand(options: {
  team?: string;
  port?: number;
  json: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Resolves when the command should stop (Ctrl-C in the bin). */
  until: Promise<void>;
}): Promise<number> {
  options.err.write(`creating the rehearsed stack${options.team ? ` of team ${options.team}` : ''} …\n`);
  let api: RehearsedApi;
  try {
    api = await startRehearsedApi({ team: options.team, port: options.port });
  } catch (error) {
    options.err.write(`error: the rehearsal could not create the stack: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const stackName = api.stack.assembly.stackName;
    if (options.json) {
      options.out.write(`${JSON.stringify({ stackName, team: api.stack.team, apiUrl: api.url, region: api.region, ...api.credentials })}\n`);
    } else {
      options.out.write(describeRehearsedApi(api, stackName));
    }
    await options.until;
    return 0;
  } finally {
    await api.close();
  }
}

/**
 * `branch-spawner rehearse up [--team <name>] [--jwt]`: the rehearsed stack kept running, with its
 * REST API on a local port that verifies SigV4 (or, for a Cognito team, ID tokens of a local user
 * pool) like API Gateway, the access key of a caller the stack allows, and the AWS endpoint that
 * answers DescribeStacks for `--stack <team>`; until Ctrl-C. Point `run --api`/`--stack`, `show`,
 * `events`, `dev --api` … at it.
 */
import { loadTeamConfig } from '../../functions/team-config';
import { apiInvoker, RehearsalApiGateway } from './api-gateway';
import { RehearsalStack, type RehearsalOptions } from './rehearsal-stack';
import { REHEARSAL_USER_POOL } from './synth';
import type { RehearsalUserPool } from './user-pool';

export interface RehearsedApi {
  stack: RehearsalStack;
  url: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Where the stack's AWS calls go, CloudFormation's included (AWS_ENDPOINT_URL_CLOUDFORMATION for `--stack`). */
  awsEndpoint: string;
  /** For a Cognito team: its user pool, the app client the API takes, and an ID token of it (1 h). */
  cognito?: { pool: RehearsalUserPool; clientId: string; token: string };
  close(): Promise<void>;
}

/** Starts the stack and its API (the caller closes it). */
export async function startRehearsedApi(options: RehearsalOptions & { port?: number } = {}): Promise<RehearsedApi> {
  const stack = await RehearsalStack.start(options);
  try {
    const caller = apiInvoker(stack);
    stack.addOutsideCaller(caller);
    const gateway = await RehearsalApiGateway.start(stack, [caller], { port: options.port });
    // The API's URL outputs (ApiUrl, and the endpoint output CDK adds) name the local gateway.
    const synthesized = stack.outputs().find((o) => o.OutputKey === 'ApiUrl')?.OutputValue;
    for (const o of stack.outputs()) if (o.OutputKey === 'ApiUrl' || o.OutputValue === synthesized) stack.setOutput(o.OutputKey, gateway.url);
    const pool = gateway.userPool;
    const clientId = pool && (options.team ? [loadTeamConfig(options.team).auth].flatMap((a) => (a.type === 'jwt' ? [a.audience].flat() : []))[0] : REHEARSAL_USER_POOL.clientId);
    return {
      stack,
      url: gateway.url,
      region: stack.template.env.region,
      credentials: { accessKeyId: caller.accessKeyId, secretAccessKey: caller.secretAccessKey },
      awsEndpoint: stack.endpoint.url,
      ...(pool && clientId ? { cognito: { pool, clientId, token: pool.token({ clientId }) } } : {}),
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
export function describeRehearsedApi(api: Pick<RehearsedApi, 'url' | 'region' | 'credentials' | 'awsEndpoint' | 'cognito'>, stackName: string, team: string): string {
  const { accessKeyId, secretAccessKey } = api.credentials;
  return [
    `# ${stackName} is up; its API verifies ${api.cognito ? 'Cognito ID tokens' : 'SigV4 signatures'}. Ctrl-C stops it.`,
    `export BRANCH_SPAWNER_API=${api.url}`,
    `export AWS_ACCESS_KEY_ID=${accessKeyId} AWS_SECRET_ACCESS_KEY=${secretAccessKey} AWS_REGION=${api.region}`,
    ...(api.cognito ? [`export BRANCH_SPAWNER_TOKEN=${api.cognito.token}  # an ID token of app client ${api.cognito.clientId}, valid 1 h`] : []),
    `export AWS_ENDPOINT_URL_CLOUDFORMATION=${api.awsEndpoint}  # for --stack ${team}: the stack's outputs are read here`,
    `# then: npx branch-spawner run examples/hierarchical.yaml --api $BRANCH_SPAWNER_API  (or --stack ${team})`,
    '',
  ].join('\n');
}

export async function rehearseUpCommand(options: {
  team?: string;
  jwt?: boolean;
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
    api = await startRehearsedApi({ team: options.team, jwt: options.jwt, port: options.port });
  } catch (error) {
    options.err.write(`error: the rehearsal could not create the stack: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const stackName = api.stack.assembly.stackName;
    if (options.json) {
      const { cognito } = api;
      options.out.write(
        `${JSON.stringify({ stackName, team: api.stack.team, apiUrl: api.url, region: api.region, ...api.credentials, awsEndpoint: api.awsEndpoint, ...(cognito ? { token: cognito.token, clientId: cognito.clientId } : {}) })}\n`,
      );
    } else {
      options.out.write(describeRehearsedApi(api, stackName, api.stack.team));
    }
    await options.until;
    return 0;
  } finally {
    await api.close();
  }
}

/**
 * The rehearsed stack's REST API on a real HTTP port (`rehearse up`), in front of the API routes
 * the rehearsal builds from the template. As API Gateway with IAM authorization does, it verifies
 * each request's SigV4 signature (a wrong secret, a wrong region or a stale date is 403), then
 * authorizes `execute-api:Invoke` on the method's ARN against the caller's identity policy, and
 * answers refusals with the template's gateway responses (`{"error": <type>, "message": …}`).
 * Methods with a Cognito authorizer take tokens of the rehearsal's user pool (user-pool.ts): a
 * missing, forged or expired token is 401 before the function runs, as API Gateway answers.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../dev/gateway-shim';
import { holdIdleConnections } from '../keep-alive';
import { verifySignature } from '../remote/sigv4';
import { evaluate, type PolicyStatement } from './iam';
import type { RehearsalStack } from './rehearsal-stack';
import { issuerOfPoolArn, RehearsalUserPool } from './user-pool';

/** A caller of the API: an IAM user's access key and its identity policy. */
export interface ApiCaller {
  arn: string;
  accessKeyId: string;
  secretAccessKey: string;
  statements: PolicyStatement[];
}

const STATUS: Record<string, number> = {
  MISSING_AUTHENTICATION_TOKEN: 403,
  INVALID_SIGNATURE: 403,
  UNRECOGNIZED_CLIENT: 403,
  ACCESS_DENIED: 403,
  UNAUTHORIZED: 401,
};

/** A new access key for a caller (AKIA… and a 40-character secret, as IAM makes them). */
export function newAccessKey(): { accessKeyId: string; secretAccessKey: string } {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const id = [...randomBytes(16)].map((b) => alphabet[b % 32]).join('');
  return { accessKeyId: `AKIA${id}`, secretAccessKey: randomBytes(30).toString('base64') };
}

export class RehearsalApiGateway {
  private constructor(
    private readonly server: Server,
    /** The stage's invoke URL, like the stack's ApiUrl output (ends with `/`). */
    readonly url: string,
    /** The user pools of the API's Cognito authorizers, by pool ARN (none for an IAM API). */
    readonly userPools: Map<string, RehearsalUserPool>,
  ) {}

  static async start(stack: RehearsalStack, callers: ApiCaller[], options: { port?: number } = {}): Promise<RehearsalApiGateway> {
    const byKey = new Map(callers.map((c) => [c.accessKeyId, c]));
    let origin = '';
    const pools = new Map<string, RehearsalUserPool>();
    for (const arn of stack.api.userPoolArns) {
      const pool = issuerOfPoolArn(arn);
      if (pool) pools.set(arn, new RehearsalUserPool(pool.poolId, () => origin));
    }
    const server = holdIdleConnections(createServer((req, res) => void handle(stack, byKey, pools, req, res)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    origin = `http://127.0.0.1:${port}`;
    return new RehearsalApiGateway(server, `${origin}/${stack.api.stage}/`, pools);
  }

  /** The first user pool (the team's), when the API takes Cognito tokens. */
  get userPool(): RehearsalUserPool | undefined {
    return this.userPools.values().next().value;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The caller every stage method may be invoked by (`execute-api:Invoke` on the API's ARN), who may
 * also read the stack's outputs (`cloudformation:DescribeStacks`, for `--stack <team>`).
 */
export function apiInvoker(stack: RehearsalStack, name = 'branch-spawner-operator'): ApiCaller {
  const t = stack.template;
  return {
    arn: `arn:${t.env.partition}:iam::${t.env.account}:user/${name}`,
    ...newAccessKey(),
    statements: [
      { Effect: 'Allow', Action: 'execute-api:Invoke', Resource: t.arn('execute-api', `${stack.api.id}/${stack.api.stage}/*`) },
      { Effect: 'Allow', Action: 'cloudformation:DescribeStacks', Resource: t.arn('cloudformation', 'stack/*') },
    ],
  };
}

function gatewayResponse(stack: RehearsalStack, res: ServerResponse, type: string, message: string): void {
  const responses = stack.template.ofType('AWS::ApiGateway::GatewayResponse').map(([, r]) => r.Properties ?? {});
  const own = responses.find((p) => p.ResponseType === type) ?? responses.find((p) => p.ResponseType === 'DEFAULT_4XX');
  const template = own?.ResponseTemplates?.['application/json'] as string | undefined;
  const body = template
    ? template.replaceAll('$context.error.responseType', type).replaceAll('$context.error.messageString', JSON.stringify(message))
    : JSON.stringify({ message });
  const status = Number(own?.StatusCode ?? STATUS[type] ?? 403);
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function handle(stack: RehearsalStack, callers: Map<string, ApiCaller>, pools: Map<string, RehearsalUserPool>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    const body = await readBody(req);
    const prefix = `/${stack.api.stage}`;
    const method = req.method ?? 'GET';
    // The pools' key sets, where Cognito serves them (below the issuer).
    const jwksOf = [...pools.values()].find((p) => p.jwksPath === url.pathname);
    if (jwksOf && method === 'GET') {
      const text = JSON.stringify(jwksOf.jwks());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    const path = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : undefined;
    const authorization = path === undefined ? undefined : stack.api.authorizationOf(method, path);
    if (path === undefined || authorization === undefined) {
      return gatewayResponse(stack, res, 'MISSING_AUTHENTICATION_TOKEN', 'Missing Authentication Token');
    }
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : String(v)]));
    const query = Object.fromEntries(url.searchParams);
    const forward = async (auth: { identity?: Record<string, string>; claims?: Record<string, string> }) => {
      const answer = await stack.request(method, path, { body: body || undefined, headers, ...(Object.keys(query).length ? { query } : {}), ...auth });
      const text = answer.body ?? '';
      res.writeHead(answer.statusCode, { ...(answer.headers as Record<string, string>), 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (authorization.authorizationType === 'COGNITO_USER_POOLS') {
      // Any of the authorizer's pools may have issued the token (API Gateway tries each).
      let refusal = 'Unauthorized';
      for (const arn of authorization.userPoolArns) {
        const decision = await pools.get(arn)?.authorize(headers.authorization, authorization.scopes);
        if (decision?.ok) return await forward({ claims: decision.claims });
        if (decision && decision.message !== 'Unauthorized') refusal = decision.message;
      }
      return gatewayResponse(stack, res, 'UNAUTHORIZED', refusal);
    }
    if (authorization.authorizationType !== 'AWS_IAM') {
      return gatewayResponse(stack, res, 'UNAUTHORIZED', `the rehearsal serves IAM and Cognito methods only; ${method} ${path} uses ${authorization.authorizationType}`);
    }
    const check = await verifySignature({ method, url, headers, body }, (key) => callers.get(key), stack.template.env.region);
    if (!check.ok) return gatewayResponse(stack, res, check.type === 'UNRECOGNIZED_CLIENT' ? 'INVALID_SIGNATURE' : check.type, check.message);
    const caller = callers.get(check.accessKeyId)!;
    const resource = stack.template.arn('execute-api', `${stack.api.id}/${stack.api.stage}/${method}${path}`);
    if (!evaluate(caller.statements, 'execute-api:Invoke', resource).allowed) {
      return gatewayResponse(stack, res, 'ACCESS_DENIED', `User: ${caller.arn} is not authorized to perform: execute-api:Invoke on resource: ${resource}`);
    }
    await forward({ identity: { accessKey: caller.accessKeyId, userArn: caller.arn, caller: caller.arn, user: caller.arn } });
  } catch (error) {
    if (!res.headersSent) gatewayResponse(stack, res, 'DEFAULT_5XX', (error as Error).message);
  }
}

/**
 * The one endpoint every AWS call of a rehearsed function goes through (its AWS_ENDPOINT_URL_*
 * variables point here). It knows the caller from the request's SigV4 credential (each function
 * gets its own access key id, as each Lambda gets its role's session credentials), authorizes
 * the action and resource against that function's role, then forwards to the engine (DynamoDB
 * to dynalite, SQS and S3 to fauxqs) or serves it (Step Functions, EventBridge, Lambda, SSM, Secrets
 * Manager, and CloudFormation's DescribeStacks for callers from outside the stack, in its query
 * protocol). Signatures are not verified.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EngineDispatch } from '../engines/in-process-transport';
import { holdIdleConnections } from '../keep-alive';
import { TRACE_HEADER_ATTRIBUTE } from './recursion';

export interface Caller {
  /** Shown in errors: the function's name. */
  principal: string;
  roleLogicalId: string;
}

export class ServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = code;
  }
}

export interface EndpointHandlers {
  callerOf(accessKeyId: string | undefined): Caller | undefined;
  /** Throws ServiceError('AccessDeniedException') and records the denial. */
  authorize(caller: Caller, action: string, resource: string): void;
  dynamodbTableArn(name: string): string;
  sqsQueueArn(queueUrl: string): string;
  /**
   * The engines, reached in this process (no second HTTP hop: each function's request is parsed
   * once, here): dynalite, fauxqs' SQS, and fauxqs' S3 API (path-style requests: `/<bucket>/<key>`).
   */
  dynamodb: EngineDispatch;
  sqs: EngineDispatch;
  s3: EngineDispatch;
  /** The partition of the ARNs the roles name (`aws`). */
  partition: string;
  /** Rewrites an SQS request before it is forwarded (the rehearsal's queue clock). */
  sqsRequest?(operation: string, doc: Record<string, any>): Record<string, any>;
  /** JSON-protocol services served here: by X-Amz-Target prefix. */
  json: Record<string, (caller: Caller, operation: string, body: any) => Promise<unknown> | unknown>;
  /** Lambda Invoke (REST): returns the payload, or throws a function error. */
  invokeLambda(caller: Caller, functionName: string, payload: unknown): Promise<{ payload: unknown; functionError?: boolean }>;
  bedrock(caller: Caller, modelId: string): never;
  /** CloudFormation DescribeStacks: the stacks, or a ServiceError('ValidationError') for a stack that does not exist. */
  describeStacks(caller: Caller, stackName: string | undefined): StackDescription[];
}

export interface StackDescription {
  StackName: string;
  StackId: string;
  StackStatus: string;
  CreationTime: Date;
  Outputs: { OutputKey: string; OutputValue: string; Description?: string }[];
}

export class AwsEndpoint {
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(handlers: EndpointHandlers): Promise<AwsEndpoint> {
    const server = holdIdleConnections(createServer((req, res) => void handle(handlers, req, res)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new AwsEndpoint(server, `http://127.0.0.1:${port}`);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The SigV4 credential scope of a request (`<key>/<date>/<region>/<service>/aws4_request`): from
 * its Authorization header, or from its query string when it was presigned (`X-Amz-Credential`).
 */
function credentialOf(req: IncomingMessage): string {
  const auth = /Credential=([^,\s]+)/.exec(req.headers.authorization ?? '')?.[1];
  return auth ?? new URL(req.url ?? '/', 'http://localhost').searchParams.get('X-Amz-Credential') ?? '';
}

function accessKeyOf(req: IncomingMessage): string | undefined {
  return /^([^/]+)\//.exec(credentialOf(req))?.[1];
}

/** The service a SigV4 request was signed for. */
function signedServiceOf(req: IncomingMessage): string | undefined {
  return /^[^/]+\/\d{8}\/[^/]+\/([^/]+)\//.exec(credentialOf(req))?.[1];
}

/** A presigned request past its `X-Amz-Date` + `X-Amz-Expires` is refused, as S3 refuses it. */
function checkNotExpired(req: IncomingMessage, now = Date.now()): void {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(query.get('X-Amz-Date') ?? '');
  const expires = Number(query.get('X-Amz-Expires'));
  if (!date || !Number.isFinite(expires)) return;
  const signedAt = Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]);
  if (now > signedAt + expires * 1000) throw new ServiceError('AccessDenied', 'Request has expired', 403);
}

/**
 * The IAM action and resource of an S3 REST request (path-style): object reads and writes on
 * `arn:aws:s3:::<bucket>/<key>`, anything on the bucket itself on the bucket's ARN.
 */
function s3Authorization(method: string, url: URL, partition: string): { action: string; resource: string } {
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  if (!key) return { action: method === 'GET' ? 's3:ListBucket' : `s3:${method}Bucket`, resource: `arn:${partition}:s3:::${bucket}` };
  const action = method === 'GET' || method === 'HEAD' ? 's3:GetObject' : method === 'PUT' || method === 'POST' ? 's3:PutObject' : method === 'DELETE' ? 's3:DeleteObject' : `s3:${method}`;
  return { action, resource: `arn:${partition}:s3:::${bucket}/${key}` };
}

function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/x-amz-json-1.0', headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body ?? {});
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function asServiceError(error: unknown): ServiceError {
  return error instanceof ServiceError ? error : new ServiceError('InternalFailure', (error as Error)?.message ?? String(error), 500);
}

function sendError(res: ServerResponse, error: unknown, contentType: string): void {
  const e = asServiceError(error);
  sendJson(res, e.status, { __type: e.code, message: e.message, Message: e.message }, contentType, { 'x-amzn-errortype': e.code });
}

const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function sendXml(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** CloudFormation's query protocol (form-encoded `Action=…`, XML answers), DescribeStacks only. */
function cloudFormation(h: EndpointHandlers, caller: Caller | undefined, body: Buffer, res: ServerResponse): void {
  const ns = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
  try {
    if (!caller) throw new ServiceError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
    const params = new URLSearchParams(body.toString('utf8'));
    const action = params.get('Action');
    if (action !== 'DescribeStacks') throw new ServiceError('InvalidAction', `the rehearsal serves CloudFormation DescribeStacks only, not ${action}`);
    const stacks = h.describeStacks(caller, params.get('StackName') ?? undefined);
    const member = (s: StackDescription) =>
      `<member><StackName>${xml(s.StackName)}</StackName><StackId>${xml(s.StackId)}</StackId><StackStatus>${s.StackStatus}</StackStatus>` +
      `<CreationTime>${s.CreationTime.toISOString()}</CreationTime><Outputs>${s.Outputs.map(
        (o) => `<member><OutputKey>${xml(o.OutputKey)}</OutputKey><OutputValue>${xml(o.OutputValue)}</OutputValue>${o.Description ? `<Description>${xml(o.Description)}</Description>` : ''}</member>`,
      ).join('')}</Outputs></member>`;
    sendXml(res, 200, `<DescribeStacksResponse xmlns="${ns}"><DescribeStacksResult><Stacks>${stacks.map(member).join('')}</Stacks></DescribeStacksResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></DescribeStacksResponse>`);
  } catch (error) {
    const e = asServiceError(error);
    const code = e.code === 'AccessDeniedException' ? 'AccessDenied' : e.code;
    sendXml(res, e.code === 'AccessDeniedException' ? 403 : e.status, `<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>${xml(code)}</Code><Message>${xml(e.message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);
  }
}

/** IAM action names of the SQS JSON operations (batch calls are authorized as their single form). */
const SQS_ACTION: Record<string, string> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

async function handle(h: EndpointHandlers, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = String(req.headers['x-amz-target'] ?? '');
  const contentType = String(req.headers['content-type'] ?? 'application/x-amz-json-1.0');
  try {
    const body = await readBody(req);
    if (signedServiceOf(req) === 'cloudformation') return cloudFormation(h, h.callerOf(accessKeyOf(req)), body, res);
    const caller = h.callerOf(accessKeyOf(req));
    if (!caller) throw new ServiceError('UnrecognizedClientException', 'The security token included in the request is invalid.', 403);
    const [prefix, operation] = target.split('.');
    if (prefix === 'DynamoDB_20120810') {
      const doc = JSON.parse(body.toString('utf8') || '{}');
      for (const resource of dynamoResources(doc, h)) h.authorize(caller, `dynamodb:${operation}`, resource);
      return await forward(h.dynamodb, req, body, res);
    }
    if (prefix === 'AmazonSQS') {
      const doc = JSON.parse(body.toString('utf8') || '{}');
      const resource = doc.QueueUrl ? h.sqsQueueArn(doc.QueueUrl) : '*';
      h.authorize(caller, `sqs:${SQS_ACTION[operation] ?? operation}`, resource);
      const traceHeader = req.headers['x-amzn-trace-id'];
      if (typeof traceHeader === 'string' && (operation === 'SendMessage' || operation === 'SendMessageBatch')) {
        // SQS keeps the sender's trace header with the message (AWSTraceHeader): recursion.ts.
        const keep = (message: { MessageAttributes?: Record<string, unknown> }) => {
          message.MessageAttributes = { ...message.MessageAttributes, [TRACE_HEADER_ATTRIBUTE]: { DataType: 'String', StringValue: traceHeader } };
        };
        if (operation === 'SendMessage') keep(doc);
        else for (const entry of doc.Entries ?? []) keep(entry);
      }
      const rewritten = h.sqsRequest ? h.sqsRequest(operation, doc) : doc;
      const sent = rewritten === doc && typeof traceHeader !== 'string' ? body : Buffer.from(JSON.stringify(rewritten), 'utf8');
      return await forward(h.sqs, req, sent, res);
    }
    if (signedServiceOf(req) === 's3') {
      checkNotExpired(req);
      const { action, resource } = s3Authorization(req.method ?? 'GET', new URL(req.url ?? '/', 'http://localhost'), h.partition);
      h.authorize(caller, action, resource);
      return await forward(h.s3, req, body, res);
    }
    const service = h.json[prefix];
    if (service) {
      const result = await service(caller, operation, JSON.parse(body.toString('utf8') || '{}'));
      return sendJson(res, 200, result, contentType);
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const lambda = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
    if (lambda && req.method === 'POST') {
      const text = body.toString('utf8');
      const { payload, functionError } = await h.invokeLambda(caller, decodeURIComponent(lambda[1]), text ? JSON.parse(text) : {});
      return sendJson(res, 200, payload, 'application/json', functionError ? { 'x-amz-function-error': 'Unhandled' } : {});
    }
    const bedrock = /^\/model\/([^/]+)\//.exec(url.pathname);
    if (bedrock) h.bedrock(caller, decodeURIComponent(bedrock[1]));
    throw new ServiceError('UnknownOperationException', `the rehearsal does not serve ${req.method} ${url.pathname} ${target}`);
  } catch (error) {
    sendError(res, error, contentType);
  }
}

function dynamoResources(doc: Record<string, any>, h: EndpointHandlers): string[] {
  const tables: string[] = [];
  if (typeof doc.TableName === 'string') {
    const arn = h.dynamodbTableArn(doc.TableName);
    tables.push(typeof doc.IndexName === 'string' ? `${arn}/index/${doc.IndexName}` : arn);
  }
  for (const name of Object.keys(doc.RequestItems ?? {})) tables.push(h.dynamodbTableArn(name));
  for (const item of doc.TransactItems ?? []) {
    const op = Object.values(item)[0] as { TableName?: string } | undefined;
    if (op?.TableName) tables.push(h.dynamodbTableArn(op.TableName));
  }
  return tables.length ? tables : ['*'];
}

/** Hands the request to an engine in this process and writes its answer back to the caller. */
async function forward(engine: EngineDispatch, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    // The body is whole here: its framing is the engine's to read from content-length alone.
    if (value === undefined || name === 'transfer-encoding' || name === 'connection') continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  headers['content-length'] = String(body.length);
  const answer = await engine({ method: req.method ?? 'GET', url: req.url ?? '/', headers, body });
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (name !== 'transfer-encoding' && name !== 'connection' && name !== 'keep-alive') out[name] = value;
  }
  out['content-length'] = String(answer.body.length);
  res.writeHead(answer.statusCode, out);
  res.end(answer.body);
}

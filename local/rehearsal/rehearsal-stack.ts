/**
 * The deploy rehearsal: the stack `cdk deploy` would create, created here from the synthesized
 * template on the embedded engines, with every function running from its bundled asset in a
 * Lambda-like host and every AWS call it makes authorized against its role.
 *
 * - DynamoDB tables (keys, GSIs) on dynalite; SQS queues (visibility, retention, redrive) on fauxqs;
 * - the event buses and rules (PutEvents served here, patterns applied, Lambda targets invoked
 *   asynchronously with the function's retries and dead-letter queue);
 * - the REST API's resources and methods (proxy events to the integration's function, after the
 *   function's resource policy allows API Gateway);
 * - SQS event source mappings (BatchSize, ReportBatchItemFailures, MaximumConcurrency);
 * - the state machines on aws-local-stepfunctions (step-functions.ts).
 */
import { CreateTableCommand, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageCommand, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoBranchStore } from '../../adapters/dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../adapters/s3/s3-blob-store';
import type { CostCounters } from '../../core/cost';
import { isRunEnd, type LifecycleEvent } from '../../core/events';
import type { BranchRecord, RunRecord } from '../../core/model';
import { startDynalite, type DynaliteEngine } from '../engines/dynalite-engine';
import { startFauxqs, type FauxqsEngine } from '../engines/fauxqs-engine';
import { AwsEndpoint, ServiceError, type Caller } from './aws-endpoint';
import { PutEventsTooLargeError, RehearsalEventBus, type BusEvent, type RehearsalRule } from './event-bus';
import { ConcurrencyPool, FunctionError, FunctionHost, THROTTLED, type HostedFunction } from './function-host';
import { AccessDeniedError, evaluate, roleStatements, type PolicyStatement } from './iam';
import { RehearsalStepFunctions, SfnServiceError } from './step-functions';
import { assemblyEnvironment, synthesize, type Assembly } from './synth';
import { RehearsalTemplate } from './template';
import { QueueClock } from './queue-clock';
import { startEventSourceMappings, type QueueDelivery } from './event-source-mappings';
import { RehearsalError } from './rehearsal-error';
import { jsonBytes } from '../../core/bounded-value';
import { AWS_QUOTAS } from './aws-quotas';

export interface RehearsalOptions {
  /** A team of infra/teams; without it, the rehearsal team config. */
  team?: string;
  /** Without a team: the rehearsal team's API takes Cognito ID tokens instead of SigV4 (synth.ts REHEARSAL_USER_POOL). */
  jwt?: boolean;
  /** A scenario's aggregators module: bundled into the rehearsal team's functions. */
  aggregators?: string;
  /** An assembly already synthesized (tests share one per file). */
  assembly?: Assembly;
  /** Told what a long step is doing as it starts it (synthesis, engines): the CLI prints it on a terminal. */
  onProgress?(what: string): void;
  /** Warm containers per function at most (Lambda scales further). Default 4. */
  maxContainers?: number;
  /**
   * The account's Lambda concurrency (default AWS's 1,000; a new account may have 10). Functions
   * reserve from it (ReservedConcurrentExecutions, leaving at least 100 unreserved or the stack is
   * refused, as CloudFormation refuses it); the others share the rest; an invocation beyond either
   * is throttled.
   */
  accountConcurrency?: number;
  /**
   * How fast queue time runs (queue-clock.ts): every SQS timer (visibility timeouts, delays) is
   * AWS's times this. Default 1/60: a message whose step failed without a backoff comes back
   * after the step queue's visibility timeout, 1,800 s of queue time, 30 s here.
   */
  queueTimeScale?: number;
  /** Every line the functions log (Powertools JSON). Kept quiet otherwise. */
  onLog?(functionName: string, line: string): void;
  /** Values of SSM parameters / Secrets Manager secrets the functions may read (by name). */
  secrets?: Record<string, string>;
  /**
   * Functions outside the template that `lambda` agents invoke (by function name: a module file
   * exporting `handler`), hosted as Lambda hosts them (6 MB request and response). Without one, an
   * agent's function is not found, as in an account that lacks it.
   */
  agentFunctions?: Record<string, string>;
}

export { RehearsalError } from './rehearsal-error';
export type { QueueDelivery } from './event-source-mappings';

const ENDPOINT_SERVICES = ['DYNAMODB', 'S3', 'SQS', 'SFN', 'EVENTBRIDGE', 'LAMBDA', 'BEDROCK_RUNTIME', 'SSM', 'SECRETS_MANAGER'];

interface Route {
  method: string;
  pathTemplate: string;
  pattern: RegExp;
  params: string[];
  functionArn: string;
  /** The method's AuthorizationType (AWS_IAM, COGNITO_USER_POOLS, NONE). */
  authorizationType: string;
  /** With COGNITO_USER_POOLS: the authorizer's user pools (ARNs) and the method's OAuth scopes. */
  userPoolArns: string[];
  scopes: string[];
}

/** How a caller reaches one method of the REST API. */
export interface ApiMethodAuth {
  authorizationType: string;
  userPoolArns: string[];
  scopes: string[];
}

export class RehearsalStack {
  readonly denials: AccessDeniedError[] = [];
  /** Records Lambda's recursive loop detection stopped (recursion.ts), as AWS would notify them. */
  readonly recursionStops: { functionName: string; messageId: string; invocations: number }[] = [];
  readonly errors: unknown[] = [];
  /** Invocations Lambda throttled, by the caller that asked (an event source mapping's batch comes back later). */
  readonly throttles: { functionName: string; caller: string }[] = [];
  private readonly pool = new ConcurrencyPool(AWS_QUOTAS.lambdaAccountConcurrency);
  private readonly functions = new Map<string, FunctionHost>();
  private readonly callers = new Map<string, Caller>();
  /** Output values that live elsewhere in the rehearsal (the API's URL is the local gateway's). */
  private readonly outputOverrides = new Map<string, string | undefined>();
  private readonly statements = new Map<string, PolicyStatement[]>();
  private readonly queueArns = new Map<string, string>();
  private readonly tableArns = new Map<string, string>();
  private readonly busNames = new Map<string, string>();
  private readonly deniedListeners = new Set<(denial: AccessDeniedError) => void>();
  /** Runs whose fan-out execution failed (its parent would wait forever in AWS), by run id. */
  private readonly failedExecutions = new Map<string, Error>();
  private readonly executionFailureListeners = new Set<(runId: string, error: Error) => void>();
  private readonly eventListeners = new Set<(event: BusEvent) => void>();
  private readonly receiveListeners = new Set<(delivery: QueueDelivery) => void>();
  private readonly pollers: Promise<void>[] = [];
  private routes: Route[] = [];
  private readonly createdAt = new Date();
  private apiId = 'rehearsal';
  private stageName = 'prod';
  private stopped = false;
  /** fauxqs' S3, for the rehearsal's own reads of large values (the functions go through the endpoint). */
  private s3: S3Client | undefined;
  store!: DynamoBranchStore;
  team!: string;
  sfn!: RehearsalStepFunctions;
  bus!: RehearsalEventBus;
  endpoint!: AwsEndpoint;
  readonly queueClock: QueueClock;

  private constructor(
    readonly assembly: Assembly,
    readonly template: RehearsalTemplate,
    private readonly dynamo: DynaliteEngine,
    private readonly sqs: FauxqsEngine,
    private readonly options: RehearsalOptions,
  ) {
    this.queueClock = new QueueClock(options.queueTimeScale);
  }

  static async start(options: RehearsalOptions = {}): Promise<RehearsalStack> {
    const assembly = options.assembly ?? (await synthesize({ team: options.team, aggregators: options.aggregators, jwt: options.jwt, onProgress: options.onProgress }));
    options.onProgress?.('starting the engines (dynalite, fauxqs) and creating the stack from the template...');
    const env = assemblyEnvironment(assembly.dir, assembly.stackName);
    const template = RehearsalTemplate.load(assembly.dir, assembly.stackName, env);
    const [dynamo, sqs] = await Promise.all([startDynalite(), startFauxqs()]);
    const stack = new RehearsalStack(assembly, template, dynamo, sqs, options);
    try {
      await stack.create();
    } catch (error) {
      await stack.close();
      throw error;
    }
    return stack;
  }

  // ---- What a client of the deployed stack does.

  /** A request to the REST API (the path without the stage, e.g. `/runs`). */
  async request(
    method: string,
    path: string,
    options: {
      body?: unknown;
      headers?: Record<string, string>;
      query?: Record<string, string>;
      identity?: Partial<APIGatewayProxyEvent['requestContext']['identity']>;
      /** A Cognito authorizer's claims (`requestContext.authorizer.claims`). */
      claims?: Record<string, string>;
    } = {},
  ) {
    const route = this.routes.find((r) => r.method === method.toUpperCase() && r.pattern.test(path));
    if (!route) {
      // What API Gateway answers for a path or method it does not have.
      return { statusCode: 403, headers: {}, body: JSON.stringify({ message: 'Missing Authentication Token' }) };
    }
    const values = route.pattern.exec(path)!.slice(1);
    const pathParameters = Object.fromEntries(route.params.map((p, i) => [p, decodeURIComponent(values[i])]));
    const sourceArn = this.template.arn('execute-api', `${this.apiId}/${this.stageName}/${route.method}${route.pathTemplate}`);
    const fn = this.functionByArn(route.functionArn);
    if (!this.permits(fn.fn, 'apigateway.amazonaws.com', sourceArn)) {
      this.deny(new AccessDeniedError('API Gateway', 'lambda:InvokeFunction', fn.fn.arn, "no statement of the function's resource policy allows it"));
      return { statusCode: 500, headers: {}, body: JSON.stringify({ message: 'Internal server error' }) };
    }
    const body = options.body === undefined ? null : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    if (body !== null && Buffer.byteLength(body) > AWS_QUOTAS.apiGatewayPayloadBytes) {
      // API Gateway refuses it before any integration runs.
      return { statusCode: 413, headers: {}, body: JSON.stringify({ message: 'Request Too Long' }) };
    }
    const headers = { 'content-type': 'application/json', ...options.headers };
    const requestId = randomUUID();
    const event: APIGatewayProxyEvent = {
      resource: route.pathTemplate,
      path,
      httpMethod: route.method,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      queryStringParameters: options.query ?? null,
      multiValueQueryStringParameters: options.query ? Object.fromEntries(Object.entries(options.query).map(([k, v]) => [k, [v]])) : null,
      pathParameters: route.params.length ? pathParameters : null,
      stageVariables: null,
      body,
      isBase64Encoded: false,
      requestContext: {
        accountId: this.template.env.account,
        apiId: this.apiId,
        authorizer: options.claims ? { claims: options.claims } : null,
        protocol: 'HTTP/1.1',
        httpMethod: route.method,
        identity: { sourceIp: '127.0.0.1', userAgent: 'branch-spawner-rehearsal', ...options.identity } as APIGatewayProxyEvent['requestContext']['identity'],
        path: `/${this.stageName}${path}`,
        stage: this.stageName,
        requestId,
        requestTimeEpoch: Date.now(),
        resourceId: route.pathTemplate,
        resourcePath: route.pathTemplate,
      },
    };
    try {
      // API Gateway answers 504 when its integration takes longer than it waits (the invocation goes on).
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), AWS_QUOTAS.apiGatewayIntegrationSeconds * 1000);
      });
      const invocation = fn.invoke(event);
      const result = await Promise.race([invocation, timedOut]).finally(() => clearTimeout(timer));
      if (result === 'timeout') {
        invocation.catch((error: unknown) => this.errors.push(error));
        return { statusCode: 504, headers: {}, body: JSON.stringify({ message: 'Endpoint request timed out' }) };
      }
      const answer = result as APIGatewayProxyResult;
      return { statusCode: answer.statusCode, headers: answer.headers ?? {}, body: answer.body };
    } catch (error) {
      this.errors.push(error);
      return { statusCode: 502, headers: {}, body: JSON.stringify({ message: 'Internal server error' }) };
    }
  }

  /** The REST API as a caller reaches it: its id, stage, and each method's authorization type. */
  get api(): { id: string; stage: string; userPoolArns: string[]; authorizationOf(method: string, path: string): ApiMethodAuth | undefined } {
    return {
      id: this.apiId,
      stage: this.stageName,
      userPoolArns: [...new Set(this.routes.flatMap((r) => r.userPoolArns))],
      authorizationOf: (method, path) => this.routes.find((r) => r.method === method.toUpperCase() && r.pattern.test(path)),
    };
  }

  /** PutEvents as a client would (an EventBridge rule may start a run). */
  putEvents(entries: { Source: string; DetailType: string; Detail: string; EventBusName?: string }[]) {
    return this.bus.putEvents(entries, (name) => this.busNameOf(name));
  }

  /** Every lifecycle event the functions put on the team bus. */
  onLifecycleEvent(listener: (event: LifecycleEvent) => void): () => void {
    const wrapped = (e: BusEvent) => {
      if (e.source !== 'branch-spawner') return;
      const { eventId, runId, team, branchId, time, ...detail } = e.detail as Record<string, any>;
      listener({ eventId, type: e['detail-type'], runId, team, branchId, time, detail } as LifecycleEvent);
    };
    this.eventListeners.add(wrapped);
    return () => this.eventListeners.delete(wrapped);
  }

  /**
   * Resolves with the run once it is terminal; rejects as soon as any call is denied, or one of
   * the run's fan-out executions fails (in AWS its parent would wait forever).
   */
  async waitForRun(runId: string): Promise<RunRecord> {
    let unsubscribe = () => {};
    let undeny = () => {};
    let unfail = () => {};
    try {
      return await new Promise<RunRecord>((resolve, reject) => {
        const fail = (denial: AccessDeniedError) => reject(new RehearsalError(`the rehearsal failed: ${denial.message}`, { cause: denial }));
        const failed = (error: Error) => reject(new RehearsalError(`the rehearsal failed: run ${runId}'s fan-out ${error.message}`, { cause: error }));
        if (this.denials.length) return fail(this.denials[0]);
        const failure = this.failedExecutions.get(runId);
        if (failure) return failed(failure);
        const onFailure = (failedRun: string, error: Error) => failedRun === runId && failed(error);
        this.executionFailureListeners.add(onFailure);
        unfail = () => this.executionFailureListeners.delete(onFailure);
        const listener = (denial: AccessDeniedError) => fail(denial);
        this.deniedListeners.add(listener);
        undeny = () => this.deniedListeners.delete(listener);
        unsubscribe = this.onLifecycleEvent((event) => {
          if (event.runId === runId && isRunEnd(event)) void this.getRun(runId).then((run) => run && resolve(run), reject);
        });
        void this.getRun(runId).then((run) => {
          if (run && run.status !== 'RUNNING') resolve(run);
        }, reject);
      });
    } finally {
      unsubscribe();
      undeny();
      unfail();
    }
  }

  getRun(runId: string): Promise<RunRecord | undefined> {
    return this.store.getRun({ team: this.team, runId });
  }

  listBranches(runId: string): Promise<BranchRecord[]> {
    return this.store.listBranches({ team: this.team, runId });
  }

  /** Every batch an event source mapping receives, before its function runs. */
  onQueueDelivery(listener: (delivery: QueueDelivery) => void): () => void {
    this.receiveListeners.add(listener);
    return () => this.receiveListeners.delete(listener);
  }

  /** Denials are also reported to listeners as they happen. */
  onDenied(listener: (denial: AccessDeniedError) => void): () => void {
    this.deniedListeners.add(listener);
    return () => this.deniedListeners.delete(listener);
  }

  /** Logs of a function (by its service name, e.g. `step-worker`), for diagnostics. */
  logsOf(serviceName: string): string[] {
    return this.findHost(serviceName)?.logs ?? [];
  }

  /** Kills the containers of a function that are running an invocation now (FunctionHost.killBusyContainers). */
  killBusyContainers(serviceName: string): number {
    return this.hostOf(serviceName).killBusyContainers();
  }

  /**
   * A caller from outside the stack (`rehearse up`'s operator) whose AWS calls the endpoint takes:
   * its access key id and its identity policy, as an IAM user's.
   */
  addOutsideCaller(caller: { arn: string; accessKeyId: string; statements: PolicyStatement[] }): void {
    const policy = `outside:${caller.arn}`;
    this.statements.set(policy, caller.statements);
    this.callers.set(caller.accessKeyId, { principal: caller.arn, roleLogicalId: policy });
  }

  /** Sets an output's value as the rehearsal has it (the API's URL is the local gateway's); undefined: the stack has no such output. */
  setOutput(key: string, value: string | undefined): void {
    this.outputOverrides.set(key, value);
  }

  /** The stack's outputs as DescribeStacks gives them, resolved to the rehearsal's resources. */
  outputs(): { OutputKey: string; OutputValue: string; Description?: string }[] {
    const outputs = (this.template.template.Outputs ?? {}) as Record<string, { Value: unknown; Description?: string }>;
    return Object.entries(outputs).flatMap(([key, o]) => {
      const value = this.outputOverrides.has(key) ? this.outputOverrides.get(key) : String(this.template.resolve(o.Value));
      return value === undefined ? [] : [{ OutputKey: key, OutputValue: value, ...(o.Description ? { Description: o.Description } : {}) }];
    });
  }

  /** CloudFormation DescribeStacks on this stack (by name or ARN; no name: every stack, i.e. this one). */
  private describeStacks(caller: Caller, stackName: string | undefined) {
    const t = this.template;
    const stackId = t.arn('cloudformation', `stack/${t.stackName}/rehearsal`);
    this.authorize(caller, 'cloudformation:DescribeStacks', stackName && stackName !== t.stackName && stackName !== stackId ? t.arn('cloudformation', `stack/${stackName}/*`) : stackId);
    if (stackName && stackName !== t.stackName && stackName !== stackId) {
      throw new ServiceError('ValidationError', `Stack with id ${stackName} does not exist`);
    }
    return [{ StackName: t.stackName, StackId: stackId, StackStatus: 'CREATE_COMPLETE', CreationTime: this.createdAt, Outputs: this.outputs() }];
  }

  /** Replaces a role's statements (tests take a permission away, then give it back). */
  setRoleStatements(roleLogicalId: string, statements: PolicyStatement[]): void {
    this.statements.set(roleLogicalId, statements);
  }

  roleStatementsOf(serviceName: string): { roleLogicalId: string; statements: PolicyStatement[] } {
    const host = this.hostOf(serviceName);
    return { roleLogicalId: host.fn.roleLogicalId, statements: this.statementsOf(host.fn.roleLogicalId) };
  }

  /** What a function's invocations used of their containers so far (FunctionHost.usage), by service name. */
  usageOf(serviceName: string): FunctionHost['usage'] & { invocations: number; coldStarts: number } {
    const host = [...this.functions.values()].find((f) => f.fn.environment.POWERTOOLS_SERVICE_NAME === serviceName);
    if (!host) throw new RehearsalError(`no function ${serviceName} in the template`);
    return { ...host.usage, invocations: host.stats.invocations, coldStarts: host.stats.coldStarts };
  }

  /** A function of the template by its service name: its settings as hosted (tests change its timeout). */
  functionOf(serviceName: string): HostedFunction {
    return this.hostOf(serviceName).fn;
  }

  private findHost(serviceName: string): FunctionHost | undefined {
    return [...this.functions.values()].find((f) => f.fn.environment.POWERTOOLS_SERVICE_NAME === serviceName);
  }

  private hostOf(serviceName: string): FunctionHost {
    const host = this.findHost(serviceName);
    if (!host) throw new RehearsalError(`no function ${serviceName} in the template`);
    return host;
  }

  /** Waits until no execution, delivery or function invocation is in flight. */
  async settle(): Promise<void> {
    const functions = [...this.functions.values()];
    // Each of these can start the others' work: wait until all are quiet at once.
    for (let round = 0; round < 100; round++) {
      await Promise.all([this.sfn.idle(), this.bus.idle(), ...functions.map((f) => f.idle())]);
      if (!functions.some((f) => f.busy) && !this.sfn.busy && !this.bus.busy) return;
    }
  }

  /**
   * What a run cost, as the deployed functions metered it (each invocation adds its usage to the
   * run's cost record when it ends: functions/lambda/aws-deps.ts), once the work is quiet.
   */
  /**
   * What the deployed functions metered; the Step Functions transitions are the ones the
   * executions made, counted from the engine (the functions meter them from the plan: the same
   * number when the state machine does what the plan says, which a test holds).
   */
  async costOf(runId: string): Promise<CostCounters> {
    await this.settle();
    const metered = await this.store.getCost({ team: this.team, runId });
    return { ...metered, stepFunctionsTransitions: this.sfn.transitionsOfRun(this.team, runId) };
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.sfn?.stopAll();
    // Containers first: an invocation still running (a hanging agent) ends with its container, so
    // the pollers waiting for it can stop.
    await Promise.all([...this.functions.values()].map((f) => f.close()));
    await Promise.all(this.pollers);
    await this.endpoint?.close();
    this.s3?.destroy();
    await Promise.all([this.dynamo.close(), this.sqs.close()]);
  }

  // ---- Creating the stack.

  private async create(): Promise<void> {
    const t = this.template;
    this.endpoint = await AwsEndpoint.start({
      callerOf: (akid) => (akid ? this.callers.get(akid) : undefined),
      authorize: (caller, action, resource) => this.authorize(caller, action, resource),
      dynamodbTableArn: (name) => this.tableArns.get(name) ?? t.arn('dynamodb', `table/${name}`),
      sqsQueueArn: (url) => this.queueArnOf(url),
      dynamodb: this.dynamo.dispatch,
      sqs: this.sqs.dispatch,
      s3: this.sqs.dispatch,
      partition: t.env.partition,
      sqsRequest: (operation, doc) => this.queueClock.request(operation, doc),
      json: {
        AWSStepFunctions: (caller, operation, body) => this.stepFunctionsCall(caller, operation, body),
        AWSEvents: (caller, operation, body) => this.eventsCall(caller, operation, body),
        AmazonSSM: (caller, operation, body) => this.secretCall(caller, 'ssm', operation, body),
        secretsmanager: (caller, operation, body) => this.secretCall(caller, 'secretsmanager', operation, body),
      },
      invokeLambda: (caller, name, payload) => this.invokeAsAgent(caller, name, payload),
      describeStacks: (caller, stackName) => this.describeStacks(caller, stackName),
      bedrock: (caller, modelId) => {
        const arn = modelId.startsWith('arn:') ? modelId : `arn:${t.env.partition}:bedrock:${t.env.region}::foundation-model/${modelId}`;
        this.authorize(caller, 'bedrock:InvokeModel', arn);
        throw new ServiceError('ResourceNotFoundException', `the rehearsal has no Bedrock model ${modelId}`);
      },
    });
    await this.createTables();
    await this.createQueues();
    const blobs = await this.createBuckets();
    // The rehearsal reads runs as the functions wrote them: large values from the team's bucket.
    this.store = new DynamoBranchStore({ client: this.dynamo.doc, tableName: [...this.tableArns.keys()][0], ...(blobs ? { blobs } : {}) });

    for (const [id, r] of t.ofType('AWS::Events::EventBus')) {
      const name = String(r.Properties?.Name ?? t.generatedName(id));
      const arn = t.arn('events', `event-bus/${name}`);
      t.setPhysical(id, { ref: name, attributes: { Arn: arn, Name: name } });
      this.busNames.set(name, name);
      this.busNames.set(arn, name);
    }
    this.busNames.set('default', 'default');
    for (const [id, r] of t.ofType('AWS::IAM::Role')) {
      const name = String(r.Properties?.RoleName ?? t.generatedName(id));
      t.setPhysical(id, { ref: name, attributes: { Arn: `arn:${t.env.partition}:iam::${t.env.account}:role/${name}`, RoleId: id } });
    }
    for (const [id, r] of t.ofType('AWS::Lambda::Function')) {
      const name = String(r.Properties?.FunctionName ?? t.generatedName(id));
      t.setPhysical(id, { ref: name, attributes: { Arn: t.arn('lambda', `function:${name}`) } });
    }
    for (const [id, r] of t.ofType('AWS::StepFunctions::StateMachine')) {
      const name = String(r.Properties?.StateMachineName ?? t.generatedName(id, 80));
      const arn = t.arn('states', `stateMachine:${name}`);
      t.setPhysical(id, { ref: arn, attributes: { Arn: arn, Name: name } });
    }
    for (const [id, r] of t.ofType('AWS::Logs::LogGroup')) {
      const name = String(r.Properties?.LogGroupName ?? t.generatedName(id, 512));
      t.setPhysical(id, { ref: name, attributes: { Arn: t.arn('logs', `log-group:${name}:*`) } });
    }
    for (const [id] of t.ofType('AWS::KMS::Key')) {
      t.setPhysical(id, { ref: id, attributes: { Arn: t.arn('kms', `key/${id}`), KeyId: id } });
    }
    for (const [id] of t.ofType('AWS::SNS::Topic')) {
      const arn = t.arn('sns', t.generatedName(id, 256));
      t.setPhysical(id, { ref: arn, attributes: { TopicArn: arn, TopicName: t.generatedName(id, 256) } });
    }
    for (const [id, r] of t.ofType('AWS::Events::Rule')) {
      const bus = t.resolve(r.Properties?.EventBusName ?? 'default');
      const name = String(r.Properties?.Name ?? t.generatedName(id));
      const arn = t.arn('events', bus === 'default' ? `rule/${name}` : `rule/${bus}/${name}`);
      t.setPhysical(id, { ref: name, attributes: { Arn: arn } });
    }
    const apis = t.ofType('AWS::ApiGateway::RestApi');
    if (apis.length) {
      const [apiLogicalId] = apis[0];
      this.apiId = 'rehearsal0api';
      t.setPhysical(apiLogicalId, { ref: this.apiId, attributes: { RootResourceId: 'root' } });
    }
    for (const [id] of t.ofType('AWS::ApiGateway::Resource')) t.setPhysical(id, { ref: id, attributes: { ResourceId: id } });
    for (const [id, r] of t.ofType('AWS::ApiGateway::Stage')) t.setPhysical(id, { ref: String(r.Properties?.StageName ?? id), attributes: {} });

    this.createFunctions();
    this.createStateMachines();
    this.createBus();
    this.createApi();
    this.team = [...this.functions.values()][0]?.fn.environment.TEAM ?? 'rehearsal';
    this.pollers.push(
      ...startEventSourceMappings({
        template: t,
        sqs: this.sqs.client,
        functions: [...this.functions.values()],
        queueClock: this.queueClock,
        authorize: (caller, action, resource) => this.authorize(caller, action, resource),
        stopped: () => this.stopped,
        onError: (error) => void this.errors.push(error),
        onThrottle: (throttle) => void this.throttles.push(throttle),
        onRecursionStop: (stop) => void this.recursionStops.push(stop),
        onDelivery: (delivery) => {
          for (const listener of this.receiveListeners) listener(delivery);
        },
      }),
    );
  }

  private async createTables(): Promise<void> {
    const t = this.template;
    for (const [id, r] of t.ofType('AWS::DynamoDB::Table')) {
      const p = r.Properties ?? {};
      const name = String(p.TableName ?? t.generatedName(id, 255));
      const input: CreateTableCommandInput = {
        TableName: name,
        KeySchema: p.KeySchema,
        AttributeDefinitions: p.AttributeDefinitions,
        BillingMode: p.BillingMode ?? 'PROVISIONED',
        ...(p.ProvisionedThroughput ? { ProvisionedThroughput: p.ProvisionedThroughput } : {}),
        ...(p.GlobalSecondaryIndexes
          ? {
              GlobalSecondaryIndexes: p.GlobalSecondaryIndexes.map((g: Record<string, any>) => ({
                IndexName: g.IndexName,
                KeySchema: g.KeySchema,
                Projection: g.Projection,
                ...(g.ProvisionedThroughput ? { ProvisionedThroughput: g.ProvisionedThroughput } : {}),
              })),
            }
          : {}),
      };
      await this.dynamo.client.send(new CreateTableCommand(input));
      const arn = t.arn('dynamodb', `table/${name}`);
      t.setPhysical(id, { ref: name, attributes: { Arn: arn } });
      this.tableArns.set(name, arn);
    }
    // dynalite creates tables asynchronously: wait until each is ACTIVE.
    const { waitUntilTableExists } = await import('@aws-sdk/client-dynamodb');
    for (const name of this.tableArns.keys()) {
      await waitUntilTableExists({ client: this.dynamo.client, maxWaitTime: 60, minDelay: 1, maxDelay: 1 }, { TableName: name });
    }
  }

  private async createQueues(): Promise<void> {
    const t = this.template;
    const queues = t.ofType('AWS::SQS::Queue');
    const fauxqsArns = new Map<string, string>();
    // Dead-letter queues first: a RedrivePolicy names its target's ARN.
    const ordered = [...queues.filter(([, q]) => !q.Properties?.RedrivePolicy), ...queues.filter(([, q]) => q.Properties?.RedrivePolicy)];
    for (const [id, r] of ordered) {
      const p = r.Properties ?? {};
      const name = String(p.QueueName ?? t.generatedName(id, 80));
      const attributes: Record<string, string> = {};
      for (const key of ['VisibilityTimeout', 'MessageRetentionPeriod', 'DelaySeconds', 'MaximumMessageSize', 'ReceiveMessageWaitTimeSeconds']) {
        if (p[key] !== undefined) attributes[key] = String(p[key]);
      }
      // A queue whose template names no size takes the SQS default the product is held to (fauxqs's is 1 MiB).
      attributes.MaximumMessageSize ??= String(AWS_QUOTAS.sqsDefaultMessageBytes);
      if (p.RedrivePolicy) {
        const policy = t.resolve(p.RedrivePolicy) as { deadLetterTargetArn: string; maxReceiveCount: number };
        attributes.RedrivePolicy = JSON.stringify({
          deadLetterTargetArn: fauxqsArns.get(policy.deadLetterTargetArn) ?? policy.deadLetterTargetArn,
          maxReceiveCount: policy.maxReceiveCount,
        });
      }
      const created = await this.sqs.client.send(new CreateQueueCommand({ QueueName: name, Attributes: this.queueClock.attributes(attributes) }));
      // The functions' queue URL has the endpoint's host, as a real queue URL has the SQS endpoint's.
      const url = `${this.endpoint.url}/${t.env.account}/${name}`;
      const own = await this.sqs.client.send(new GetQueueAttributesCommand({ QueueUrl: created.QueueUrl!, AttributeNames: ['QueueArn'] }));
      const arn = t.arn('sqs', name);
      fauxqsArns.set(arn, own.Attributes!.QueueArn!);
      t.setPhysical(id, { ref: url, attributes: { Arn: arn, QueueName: name, QueueUrl: url } });
      this.queueArns.set(name, arn);
    }
  }

  /**
   * The template's buckets, in fauxqs' S3 (which the functions reach through the endpoint, IAM
   * checked per call). Answers the blob store on the first one (the stack has one: the claim check's).
   */
  private async createBuckets(): Promise<S3BlobStore | undefined> {
    const t = this.template;
    const buckets = t.ofType('AWS::S3::Bucket');
    if (buckets.length === 0) return undefined;
    this.s3 = new S3Client({
      endpoint: this.sqs.endpoint,
      region: t.env.region,
      forcePathStyle: true,
      credentials: { accessKeyId: 'rehearsal', secretAccessKey: 'rehearsal' },
    });
    let first: string | undefined;
    for (const [id, r] of buckets) {
      const name = String(r.Properties?.BucketName ?? t.generatedName(id, 63)).toLowerCase();
      await this.s3.send(new CreateBucketCommand({ Bucket: name }));
      t.setPhysical(id, { ref: name, attributes: { Arn: `arn:${t.env.partition}:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } });
      first ??= name;
    }
    return new S3BlobStore({ client: this.s3, bucket: first! });
  }

  private createFunctions(): void {
    const t = this.template;
    const services = Object.fromEntries(ENDPOINT_SERVICES.map((s) => [`AWS_ENDPOINT_URL_${s}`, this.endpoint.url]));
    for (const [id, r] of t.ofType('AWS::Lambda::Function')) {
      const p = r.Properties ?? {};
      const { ref: name, attributes } = t.physicalOf(id);
      const code = p.Code ?? {};
      const key = typeof code.S3Key === 'string' ? code.S3Key.replace(/\.zip$/, '') : undefined;
      const [handlerBase, handlerName] = String(p.Handler ?? 'index.handler').split('.');
      const assetDir = key ? join(this.assembly.dir, `asset.${key}`) : undefined;
      const handlerFile = assetDir
        ? ['.mjs', '.js', '.cjs'].map((ext) => join(assetDir, `${handlerBase}${ext}`)).find((f) => existsSync(f))
        : undefined;
      if (!handlerFile) throw new RehearsalError(`function ${id}: no bundled asset to run (Code ${JSON.stringify(code)})`);
      const roleLogicalId = (p.Role?.['Fn::GetAtt'] ?? [])[0] as string;
      const accessKeyId = `REHEARSAL${this.callers.size}${id}`.slice(0, 128);
      const memorySize = Number(p.MemorySize ?? 128);
      const environment: Record<string, string> = {
        ...Object.fromEntries(Object.entries(t.resolve(p.Environment?.Variables ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)])),
        AWS_REGION: t.env.region,
        AWS_DEFAULT_REGION: t.env.region,
        AWS_LAMBDA_FUNCTION_NAME: name,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memorySize),
        AWS_EXECUTION_ENV: `AWS_Lambda_${String(p.Runtime ?? 'nodejs22.x')}`,
        LAMBDA_TASK_ROOT: assetDir!,
        // The function's own credentials: the endpoint knows the caller (and its role) by them.
        AWS_ACCESS_KEY_ID: accessKeyId,
        AWS_SECRET_ACCESS_KEY: 'rehearsal',
        AWS_SESSION_TOKEN: 'rehearsal',
        ...services,
        TZ: ':UTC',
      };
      const hosted: HostedFunction = {
        logicalId: id,
        name,
        arn: attributes.Arn,
        handlerFile,
        handlerName: handlerName ?? 'handler',
        environment,
        timeoutSeconds: Number(p.Timeout ?? 3),
        memorySize,
        roleLogicalId,
        maxContainers: this.options.maxContainers ?? 4,
        ...(p.ReservedConcurrentExecutions === undefined ? {} : { reservedConcurrency: Number(t.resolve(p.ReservedConcurrentExecutions)) }),
      };
      const host = new FunctionHost(hosted, { region: t.env.region, account: t.env.account, onLog: this.options.onLog, pool: this.pool });
      this.functions.set(attributes.Arn, host);
      this.callers.set(accessKeyId, { principal: name, roleLogicalId });
    }
    for (const [name, handlerFile] of Object.entries(this.options.agentFunctions ?? {})) {
      const arn = t.arn('lambda', `function:${name}`);
      // Outside the stack: no role of the template, no credentials for the rehearsal's endpoint.
      const hosted: HostedFunction = { logicalId: name, name, arn, handlerFile, handlerName: 'handler', environment: { AWS_REGION: t.env.region, TZ: ':UTC' }, timeoutSeconds: 60, memorySize: 1024, roleLogicalId: '', maxContainers: this.options.maxContainers ?? 4 };
      this.functions.set(arn, new FunctionHost(hosted, { region: t.env.region, account: t.env.account, onLog: this.options.onLog }));
    }
    this.reserveConcurrency();
  }

  /** What the account's concurrency leaves the functions without a reservation; a deploy that reserves too much fails. */
  private reserveConcurrency(): void {
    const account = this.options.accountConcurrency ?? AWS_QUOTAS.lambdaAccountConcurrency;
    let unreserved = account;
    for (const { fn } of this.functions.values()) {
      if (fn.reservedConcurrency === undefined) continue;
      unreserved -= fn.reservedConcurrency;
      if (unreserved < AWS_QUOTAS.lambdaMinUnreservedConcurrency) {
        throw new RehearsalError(
          `function ${fn.logicalId}: Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [${AWS_QUOTAS.lambdaMinUnreservedConcurrency}] ` +
            `(the account's concurrency is ${account}; this stack reserves ${account - unreserved})`,
        );
      }
    }
    this.pool.limit = unreserved;
  }

  private createStateMachines(): void {
    const t = this.template;
    const machines = t.ofType('AWS::StepFunctions::StateMachine').map(([id, r]) => {
      const p = r.Properties ?? {};
      const { attributes } = t.physicalOf(id);
      let text: string;
      if (typeof p.DefinitionString === 'string' || p.DefinitionString) text = String(t.resolve(p.DefinitionString));
      else if (p.Definition) text = JSON.stringify(p.Definition);
      else {
        const file = join(this.assembly.dir, `asset.${p.DefinitionS3Location?.Key}`);
        if (!existsSync(file)) throw new RehearsalError(`state machine ${id}: definition asset ${file} not found`);
        text = readFileSync(file, 'utf8');
      }
      const substitutions = t.resolve(p.DefinitionSubstitutions ?? {}) as Record<string, string>;
      text = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (match, name: string) =>
        name in substitutions ? JSON.stringify(String(substitutions[name])).slice(1, -1) : match,
      );
      return { arn: attributes.Arn, name: attributes.Name, definition: JSON.parse(text), roleLogicalId: (p.RoleArn?.['Fn::GetAtt'] ?? [])[0] };
    });
    this.sfn = new RehearsalStepFunctions(machines, {
      authorize: (role, principal, action, resource) => this.authorize({ principal, roleLogicalId: role }, action, resource),
      queueArnOf: (url) => this.queueArnOf(url),
      sendMessage: async (queueUrl, body, attributes) => {
        await this.sqs.client.send(
          new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageAttributes: attributes as Record<string, MessageAttributeValue> }),
        );
      },
      invokeFunction: (arn, payload) =>
        this.functionByArn(arn).invoke(payload).catch((error: unknown) => {
          // The lambda:invoke integration names a throttle Lambda.TooManyRequestsException (the ASL retries it).
          if (error instanceof FunctionError && error.name === THROTTLED) {
            this.throttles.push({ functionName: error.functionName, caller: 'Step Functions' });
            error.name = `Lambda.${THROTTLED}`;
          }
          throw error;
        }),
      onExecutionError: (error, execution) => {
        this.errors.push(error);
        let runId: unknown;
        try {
          runId = (JSON.parse(execution.input) as { runId?: unknown }).runId;
        } catch {
          runId = undefined;
        }
        if (typeof runId !== 'string') return;
        this.failedExecutions.set(runId, error as Error);
        for (const listener of this.executionFailureListeners) listener(runId, error as Error);
      },
    });
  }

  private createBus(): void {
    const t = this.template;
    const rules: RehearsalRule[] = t.ofType('AWS::Events::Rule').map(([id, r]) => {
      const p = t.resolve(r.Properties ?? {}) as Record<string, any>;
      return {
        arn: t.physicalOf(id).attributes.Arn,
        name: t.physicalOf(id).ref,
        busName: this.busNameOf(p.EventBusName) ?? 'default',
        pattern: p.EventPattern ?? {},
        enabled: (p.State ?? 'ENABLED') === 'ENABLED',
        targets: (p.Targets ?? []).map((target: { Arn: string }) => ({ arn: target.Arn })),
      };
    });
    this.bus = new RehearsalEventBus(rules, this.template.env, (rule, targetArn, event) => this.deliverToTarget(rule, targetArn, event));
    this.bus.subscribe((event) => {
      for (const listener of this.eventListeners) listener(event);
    });
  }

  private createApi(): void {
    const t = this.template;
    const stage = t.ofType('AWS::ApiGateway::Stage')[0];
    if (stage) this.stageName = String(stage[1].Properties?.StageName ?? 'prod');
    const resources = new Map(t.ofType('AWS::ApiGateway::Resource').map(([id, r]) => [id, r.Properties ?? {}]));
    const pathOf = (ref: unknown): string => {
      const v = ref as Record<string, any>;
      if (v?.['Fn::GetAtt']?.[1] === 'RootResourceId') return '';
      const id = v?.Ref as string;
      const r = resources.get(id);
      if (!r) throw new RehearsalError(`API resource ${JSON.stringify(ref)} not in the template`);
      return `${pathOf(r.ParentId)}/${r.PathPart}`;
    };
    this.routes = t.ofType('AWS::ApiGateway::Method').flatMap(([, m]) => {
      const p = m.Properties ?? {};
      if (p.HttpMethod === 'OPTIONS' || p.Integration?.Type !== 'AWS_PROXY') return [];
      const pathTemplate = pathOf(p.ResourceId) || '/';
      const uri = String(t.resolve(p.Integration.Uri));
      const functionArn = /functions\/(arn:[^/]+)\/invocations/.exec(uri)?.[1];
      if (!functionArn) return [];
      const params: string[] = [];
      const source = pathTemplate
        .split('/')
        .map((segment) => {
          const param = /^\{(.+)\}$/.exec(segment)?.[1];
          if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          params.push(param);
          return '([^/]+)';
        })
        .join('/');
      const authorizationType = String(p.AuthorizationType ?? 'NONE');
      const authorizer = p.AuthorizerId?.Ref ? t.resources[p.AuthorizerId.Ref] : undefined;
      const userPoolArns = ((t.resolve(authorizer?.Properties?.ProviderARNs ?? []) as unknown[]) ?? []).map(String);
      const scopes = ((p.AuthorizationScopes ?? []) as unknown[]).map(String);
      return [{ method: String(p.HttpMethod), pathTemplate, pattern: new RegExp(`^${source}/?$`), params, functionArn, authorizationType, userPoolArns, scopes }];
    });
  }

  // ---- Calls the functions make.

  private authorize(caller: Caller, action: string, resource: string): void {
    const decision = evaluate(this.statementsOf(caller.roleLogicalId), action, resource);
    if (decision.allowed) return;
    const denial = new AccessDeniedError(caller.principal, action, resource, `${decision.reason === 'explicit deny' ? 'an explicit deny' : 'no allow'} in the policies of its role ${caller.roleLogicalId}`);
    this.deny(denial);
    throw new ServiceError('AccessDeniedException', denial.message);
  }

  private deny(denial: AccessDeniedError): void {
    this.denials.push(denial);
    for (const listener of this.deniedListeners) listener(denial);
  }

  private statementsOf(roleLogicalId: string): PolicyStatement[] {
    let statements = this.statements.get(roleLogicalId);
    if (!statements) {
      statements = roleStatements(this.template, roleLogicalId);
      this.statements.set(roleLogicalId, statements);
    }
    return statements;
  }

  /** Whether a function's resource policy (AWS::Lambda::Permission) lets a service invoke it from sourceArn. */
  private permits(fn: HostedFunction, principal: string, sourceArn: string): boolean {
    return this.template.ofType('AWS::Lambda::Permission').some(([, r]) => {
      const p = this.template.resolve(r.Properties ?? {}) as Record<string, string>;
      const target = String(p.FunctionName);
      if (target !== fn.arn && target !== fn.name) return false;
      if (p.Principal !== principal || !/^lambda:InvokeFunction$/i.test(String(p.Action))) return false;
      return p.SourceArn === undefined || evaluate([{ Effect: 'Allow', Action: '*', Resource: p.SourceArn }], 'x', sourceArn).allowed;
    });
  }

  private stepFunctionsCall(caller: Caller, operation: string, body: Record<string, any>): unknown {
    const resourceOf = (): string => {
      switch (operation) {
        case 'StartExecution':
          return String(body.stateMachineArn);
        case 'DescribeExecution':
        case 'StopExecution':
          return String(body.executionArn);
        case 'SendTaskSuccess':
        case 'SendTaskFailure':
        case 'SendTaskHeartbeat':
          return this.sfn.machineOfToken(String(body.taskToken)) ?? '*';
        default:
          throw new ServiceError('UnknownOperationException', `the rehearsal does not serve Step Functions ${operation}`);
      }
    };
    this.authorize(caller, `states:${operation}`, resourceOf());
    try {
      switch (operation) {
        case 'StartExecution': {
          const { executionArn, startDate } = this.sfn.startExecution(body as { stateMachineArn: string; name?: string; input?: string });
          return { executionArn, startDate: startDate.getTime() / 1000 };
        }
        case 'DescribeExecution':
          return this.sfn.describeExecution(String(body.executionArn));
        case 'StopExecution':
          return this.sfn.stopExecution(body as { executionArn: string; error?: string; cause?: string });
        case 'SendTaskSuccess':
          this.sfn.sendTaskSuccess(String(body.taskToken), String(body.output));
          return {};
        case 'SendTaskFailure':
          this.sfn.sendTaskFailure(String(body.taskToken), body.error, body.cause);
          return {};
        default:
          return {};
      }
    } catch (error) {
      if (error instanceof SfnServiceError) throw new ServiceError(error.name, error.message);
      throw error;
    }
  }

  private eventsCall(caller: Caller, operation: string, body: Record<string, any>): unknown {
    if (operation !== 'PutEvents') throw new ServiceError('UnknownOperationException', `the rehearsal does not serve EventBridge ${operation}`);
    const entries = (body.Entries ?? []) as { EventBusName?: string }[];
    for (const entry of entries) {
      const bus = this.busNameOf(entry.EventBusName) ?? String(entry.EventBusName);
      this.authorize(caller, 'events:PutEvents', this.template.arn('events', `event-bus/${bus}`));
    }
    try {
      return this.bus.putEvents(entries, (name) => this.busNameOf(name));
    } catch (error) {
      if (error instanceof PutEventsTooLargeError) throw new ServiceError(error.name, error.message);
      throw error;
    }
  }

  private secretCall(caller: Caller, service: 'ssm' | 'secretsmanager', operation: string, body: Record<string, any>): unknown {
    const secrets = this.options.secrets ?? {};
    const t = this.template;
    if (service === 'ssm' && operation === 'GetParameter') {
      const name = String(body.Name);
      this.authorize(caller, 'ssm:GetParameter', t.arn('ssm', `parameter${name.startsWith('/') ? '' : '/'}${name}`));
      if (!(name in secrets)) throw new ServiceError('ParameterNotFound', `parameter ${name} not found`);
      return { Parameter: { Name: name, Type: 'SecureString', Value: secrets[name], Version: 1 } };
    }
    if (service === 'secretsmanager' && operation === 'GetSecretValue') {
      const id = String(body.SecretId);
      const name = id.startsWith('arn:') ? id.split(':')[6].replace(/-[A-Za-z0-9]{6}$/, '') : id;
      const arn = id.startsWith('arn:') ? id : t.arn('secretsmanager', `secret:${name}-AbCdEf`);
      this.authorize(caller, 'secretsmanager:GetSecretValue', arn);
      if (!(name in secrets)) throw new ServiceError('ResourceNotFoundException', `Secrets Manager can't find the specified secret.`);
      return { ARN: arn, Name: name, SecretString: secrets[name], VersionId: 'rehearsal', CreatedDate: Date.now() / 1000 };
    }
    throw new ServiceError('UnknownOperationException', `the rehearsal does not serve ${service} ${operation}`);
  }

  /** A function invoking another function (a `lambda` agent): only functions of this template exist here. */
  private async invokeAsAgent(caller: Caller, functionName: string, payload: unknown) {
    const t = this.template;
    const arn = functionName.startsWith('arn:') ? functionName : t.arn('lambda', `function:${functionName}`);
    this.authorize(caller, 'lambda:InvokeFunction', arn);
    // A qualified ARN (…:function:name:alias) names the same function.
    const host = this.functions.get(arn.split(':').slice(0, 7).join(':'));
    if (!host) throw new ServiceError('ResourceNotFoundException', `Function not found: ${arn}`, 404);
    try {
      return { payload: await host.invoke(payload) };
    } catch (error) {
      const e = error as FunctionError;
      // Lambda refuses a request over 6 MB before any function runs: the caller's SDK throws it (HTTP 413).
      if (e.name === 'RequestEntityTooLargeException') throw new ServiceError(e.name, e.message, 413);
      return { payload: { errorType: e.name, errorMessage: e.message, trace: e.trace ?? [] }, functionError: true };
    }
  }

  private functionByArn(arn: string): FunctionHost {
    const host = this.functions.get(arn);
    if (!host) throw new RehearsalError(`no function ${arn} in the template`);
    return host;
  }

  private queueArnOf(url: string): string {
    const name = url.split('/').pop() ?? url;
    return this.queueArns.get(name) ?? this.template.arn('sqs', name);
  }

  private busNameOf(name: string | undefined): string | undefined {
    if (name === undefined) return 'default';
    return this.busNames.get(name);
  }

  /** A rule's Lambda target: asynchronous invoke, the function's retries, then its dead-letter queue. */
  private async deliverToTarget(rule: RehearsalRule, targetArn: string, event: BusEvent): Promise<void> {
    const host = this.functions.get(targetArn);
    if (!host) {
      this.errors.push(new RehearsalError(`rule ${rule.name}: target ${targetArn} is not a function of the template`));
      return;
    }
    if (!this.permits(host.fn, 'events.amazonaws.com', rule.arn)) {
      this.deny(new AccessDeniedError(`EventBridge rule ${rule.name}`, 'lambda:InvokeFunction', host.fn.arn, "no statement of the function's resource policy allows it"));
      return;
    }
    const config = this.template
      .ofType('AWS::Lambda::EventInvokeConfig')
      .map(([, r]) => this.template.resolve(r.Properties ?? {}) as Record<string, any>)
      .find((p) => p.FunctionName === host.fn.name || p.FunctionName === host.fn.arn);
    const attempts = 1 + Number(config?.MaximumRetryAttempts ?? 2);
    if (jsonBytes(event) > AWS_QUOTAS.lambdaAsyncEventBytes) {
      this.errors.push(new RehearsalError(`rule ${rule.name}: the event is over Lambda's asynchronous invocation limit (${AWS_QUOTAS.lambdaAsyncEventBytes} bytes)`));
      return;
    }
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts && !this.stopped; attempt++) {
      try {
        await host.invoke(event);
        return;
      } catch (error) {
        lastError = error;
      }
    }
    this.errors.push(lastError);
    const fnProps = this.template.resources[host.fn.logicalId].Properties ?? {};
    const dlq = fnProps.DeadLetterConfig?.TargetArn ? String(this.template.resolve(fnProps.DeadLetterConfig.TargetArn)) : undefined;
    if (!dlq || this.stopped) return;
    // Lambda sends to the dead-letter queue with the function's role.
    try {
      this.authorize({ principal: host.fn.name, roleLogicalId: host.fn.roleLogicalId }, 'sqs:SendMessage', dlq);
    } catch {
      return;
    }
    const queueUrl = this.template.queueUrlOfArn(dlq);
    if (queueUrl) await this.sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(event) }));
  }
}

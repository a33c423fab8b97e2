/**
 * The deploy rehearsal: the stack `cdk deploy` would create, created here from the synthesized
 * template on the embedded engines, with every function running from its bundled asset in a
 * Lambda-like host and every AWS call it makes authorized against its role. This class composes
 * the parts, each from the template and in its own module:
 *
 * - who may do what, and every denial (access.ts, over iam.ts);
 * - names and ARNs of the resources no engine creates (physical-ids.ts);
 * - DynamoDB tables on dynalite; SQS queues and S3 buckets on fauxqs (data-resources.ts);
 * - the functions in their hosts, and the account's concurrency (functions.ts);
 * - the state machines on aws-local-stepfunctions, and the Step Functions API (state-machines.ts);
 * - the event buses and rules, PutEvents, and the rules' Lambda targets invoked asynchronously
 *   with the function's retries and dead-letter queue (event-rules.ts, async-invocation.ts);
 * - the REST API's methods, proxy events to the integration's function (rest-api.ts);
 * - SQS event source mappings (event-source-mappings.ts);
 * - the services a function may call that the stack does not create (account-services.ts), and
 *   the stack's outputs and DescribeStacks (cloudformation.ts);
 * - one endpoint all of the functions' AWS calls go through (aws-endpoint.ts);
 * - runs read, awaited and costed as a client sees them (runs.ts).
 */
import type { DynamoBranchStore } from '../../adapters/dynamodb';
import type { CostCounters } from '../../core/cost';
import type { LifecycleEvent } from '../../core/events';
import type { BranchRecord, RunRecord } from '../../core/model';
import { startDynalite, type DynaliteEngine } from '../engines/dynalite-engine';
import { startFauxqs, type FauxqsEngine } from '../engines/fauxqs-engine';
import { RehearsalAccess } from './access';
import { invokeFunction, invokeModel, secretsApi, type AccountServicesContext } from './account-services';
import { AwsEndpoint } from './aws-endpoint';
import { RehearsalCloudFormation, type StackOutput } from './cloudformation';
import { RehearsalData } from './data-resources';
import type { RehearsalEventBus } from './event-bus';
import { RehearsalEvents } from './event-rules';
import { startEventSourceMappings, type QueueDelivery } from './event-source-mappings';
import type { FunctionHost, HostedFunction } from './function-host';
import { RehearsalFunctions, type FunctionHostingOptions } from './functions';
import type { AccessDeniedError, PolicyStatement } from './iam';
import { assignPhysicalIds } from './physical-ids';
import { QueueClock } from './queue-clock';
import { RehearsalRestApi, type ApiMethodAuth, type ApiRequestOptions } from './rest-api';
import { RehearsalRuns } from './runs';
import { createStateMachines, stepFunctionsApi } from './state-machines';
import type { RehearsalStepFunctions } from './step-functions';
import { assemblyEnvironment, synthesize, type Assembly } from './synth';
import { RehearsalTemplate } from './template';

export interface RehearsalOptions extends FunctionHostingOptions {
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
  /**
   * How fast queue time runs (queue-clock.ts): every SQS timer (visibility timeouts, delays) is
   * AWS's times this. Default 1/60: a message whose step failed without a backoff comes back
   * after the step queue's visibility timeout, 1,800 s of queue time, 30 s here.
   */
  queueTimeScale?: number;
  /** Values of SSM parameters / Secrets Manager secrets the functions may read (by name). */
  secrets?: Record<string, string>;
}

export { RehearsalError } from './rehearsal-error';
export type { QueueDelivery } from './event-source-mappings';
export type { ApiMethodAuth } from './rest-api';

export class RehearsalStack {
  /** Records Lambda's recursive loop detection stopped (recursion.ts), as AWS would notify them. */
  readonly recursionStops: { functionName: string; messageId: string; invocations: number }[] = [];
  readonly errors: unknown[] = [];
  /** Invocations Lambda throttled, by the caller that asked (an event source mapping's batch comes back later). */
  readonly throttles: { functionName: string; caller: string }[] = [];
  readonly queueClock: QueueClock;
  private readonly access: RehearsalAccess;
  private readonly cloudFormation: RehearsalCloudFormation;
  private readonly receiveListeners = new Set<(delivery: QueueDelivery) => void>();
  private readonly pollers: Promise<void>[] = [];
  private stopped = false;
  private data: RehearsalData | undefined;
  private functions!: RehearsalFunctions;
  private events!: RehearsalEvents;
  private restApi!: RehearsalRestApi;
  private runs!: RehearsalRuns;
  /** The runs as the functions wrote them. */
  store!: DynamoBranchStore;
  team!: string;
  sfn!: RehearsalStepFunctions;
  bus!: RehearsalEventBus;
  endpoint!: AwsEndpoint;

  private constructor(
    readonly assembly: Assembly,
    readonly template: RehearsalTemplate,
    private readonly dynamo: DynaliteEngine,
    private readonly sqs: FauxqsEngine,
    private readonly options: RehearsalOptions,
  ) {
    this.queueClock = new QueueClock(options.queueTimeScale);
    this.access = new RehearsalAccess(template);
    this.cloudFormation = new RehearsalCloudFormation(template, this.access);
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
  request(method: string, path: string, options: ApiRequestOptions = {}) {
    return this.restApi.request(method, path, options);
  }

  /** The REST API as a caller reaches it: its id, stage, and each method's authorization type. */
  get api(): { id: string; stage: string; userPoolArns: string[]; authorizationOf(method: string, path: string): ApiMethodAuth | undefined } {
    const api = this.restApi;
    return { id: api.id, stage: api.stage, userPoolArns: api.userPoolArns, authorizationOf: (method, path) => api.authorizationOf(method, path) };
  }

  /** PutEvents as a client would (an EventBridge rule may start a run). */
  putEvents(entries: { Source: string; DetailType: string; Detail: string; EventBusName?: string }[]) {
    return this.events.putEvents(entries);
  }

  /** Every lifecycle event the functions put on the team bus. */
  onLifecycleEvent(listener: (event: LifecycleEvent) => void): () => void {
    return this.events.onLifecycleEvent(listener);
  }

  /**
   * Resolves with the run once it is terminal; rejects as soon as any call is denied, or one of
   * the run's fan-out executions fails (in AWS its parent would wait forever).
   */
  waitForRun(runId: string): Promise<RunRecord> {
    return this.runs.waitForRun(runId);
  }

  getRun(runId: string): Promise<RunRecord | undefined> {
    return this.runs.getRun(runId);
  }

  listBranches(runId: string): Promise<BranchRecord[]> {
    return this.runs.listBranches(runId);
  }

  /** What a run cost (runs.ts), once the work is quiet. */
  costOf(runId: string): Promise<CostCounters> {
    return this.runs.costOf(runId);
  }

  // ---- What the rehearsal shows and lets tests change.

  /** Calls denied so far: by a role's policies, or by a function's resource policy. */
  get denials(): AccessDeniedError[] {
    return this.access.denials;
  }

  /** Denials are also reported to listeners as they happen. */
  onDenied(listener: (denial: AccessDeniedError) => void): () => void {
    return this.access.onDenied(listener);
  }

  /** Every batch an event source mapping receives, before its function runs. */
  onQueueDelivery(listener: (delivery: QueueDelivery) => void): () => void {
    this.receiveListeners.add(listener);
    return () => this.receiveListeners.delete(listener);
  }

  /** Logs of a function (by its service name, e.g. `step-worker`), for diagnostics. */
  logsOf(serviceName: string): string[] {
    return this.functions.findByService(serviceName)?.logs ?? [];
  }

  /** Kills the containers of a function that are running an invocation now (FunctionHost.killBusyContainers). */
  killBusyContainers(serviceName: string): number {
    return this.functions.byService(serviceName).killBusyContainers();
  }

  /** What a function's invocations used of their containers so far (FunctionHost.usage), by service name. */
  usageOf(serviceName: string): FunctionHost['usage'] & { invocations: number; coldStarts: number } {
    const host = this.functions.byService(serviceName);
    return { ...host.usage, invocations: host.stats.invocations, coldStarts: host.stats.coldStarts };
  }

  /** A function of the template by its service name: its settings as hosted (tests change its timeout). */
  functionOf(serviceName: string): HostedFunction {
    return this.functions.byService(serviceName).fn;
  }

  /**
   * A caller from outside the stack (`rehearse up`'s operator) whose AWS calls the endpoint takes:
   * its access key id and its identity policy, as an IAM user's.
   */
  addOutsideCaller(caller: { arn: string; accessKeyId: string; statements: PolicyStatement[] }): void {
    this.access.addOutsideCaller(caller);
  }

  /** Replaces a role's statements (tests take a permission away, then give it back). */
  setRoleStatements(roleLogicalId: string, statements: PolicyStatement[]): void {
    this.access.setRoleStatements(roleLogicalId, statements);
  }

  roleStatementsOf(serviceName: string): { roleLogicalId: string; statements: PolicyStatement[] } {
    const { fn } = this.functions.byService(serviceName);
    return { roleLogicalId: fn.roleLogicalId, statements: this.access.statementsOf(fn.roleLogicalId) };
  }

  /** Sets an output's value as the rehearsal has it (the API's URL is the local gateway's); undefined: the stack has no such output. */
  setOutput(key: string, value: string | undefined): void {
    this.cloudFormation.setOutput(key, value);
  }

  /** The stack's outputs as DescribeStacks gives them, resolved to the rehearsal's resources. */
  outputs(): StackOutput[] {
    return this.cloudFormation.outputs();
  }

  // ---- Its life.

  /** Waits until no execution, delivery or function invocation is in flight. */
  async settle(): Promise<void> {
    // Each of these can start the others' work: wait until all are quiet at once.
    for (let round = 0; round < 100; round++) {
      await Promise.all([this.sfn.idle(), this.bus.idle(), this.functions.idle()]);
      if (!this.functions.busy && !this.sfn.busy && !this.bus.busy) return;
    }
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.sfn?.stopAll();
    // Containers first: an invocation still running (a hanging agent) ends with its container, so
    // the pollers waiting for it can stop.
    await this.functions?.close();
    await Promise.all(this.pollers);
    await this.endpoint?.close();
    this.data?.close();
    await Promise.all([this.dynamo.close(), this.sqs.close()]);
  }

  private async create(): Promise<void> {
    const t = this.template;
    const access = this.access;
    const services: AccountServicesContext = { template: t, access, functions: () => this.functions, secrets: this.options.secrets ?? {} };
    // The endpoint first: queue URLs and the functions' environment name it. What it serves is created next.
    this.endpoint = await AwsEndpoint.start({
      callerOf: (akid) => access.callerOf(akid),
      authorize: (caller, action, resource) => access.authorize(caller, action, resource),
      dynamodbTableArn: (name) => this.data!.tableArnOf(name),
      sqsQueueArn: (url) => this.data!.queueArnOf(url),
      dynamodb: this.dynamo.dispatch,
      sqs: this.sqs.dispatch,
      s3: this.sqs.dispatch,
      partition: t.env.partition,
      sqsRequest: (operation, doc) => this.queueClock.request(operation, doc),
      json: {
        AWSStepFunctions: (caller, operation, body) => stepFunctionsApi(this.sfn, access)(caller, operation, body),
        AWSEvents: (caller, operation, body) => this.events.api(caller, operation, body),
        AmazonSSM: secretsApi(services, 'ssm'),
        secretsmanager: secretsApi(services, 'secretsmanager'),
      },
      invokeLambda: (caller, name, payload) => invokeFunction(services, caller, name, payload),
      describeStacks: (caller, stackName) => this.cloudFormation.describeStacks(caller, stackName),
      bedrock: (caller, modelId) => invokeModel(services, caller, modelId),
    });
    const data = await RehearsalData.create(t, { dynamo: this.dynamo, sqs: this.sqs }, this.queueClock, this.endpoint.url);
    this.data = data;
    this.store = data.store;
    const { busNames, apiId } = assignPhysicalIds(t);

    const functions = new RehearsalFunctions(t, this.assembly.dir, this.endpoint.url, access, this.options);
    this.functions = functions;
    this.team = functions.team;
    const onError = (error: unknown) => void this.errors.push(error);
    this.sfn = createStateMachines({
      template: t,
      assemblyDir: this.assembly.dir,
      access,
      functions,
      sqs: this.sqs.client,
      queueArnOf: (url) => data.queueArnOf(url),
      onThrottle: (throttle) => void this.throttles.push(throttle),
      onExecutionError: (error, runId) => {
        this.errors.push(error);
        if (runId !== undefined) this.runs.executionFailed(runId, error);
      },
    });
    this.events = new RehearsalEvents({ template: t, busNames, access, functions, sqs: this.sqs.client, stopped: () => this.stopped, onError });
    this.bus = this.events.bus;
    this.restApi = new RehearsalRestApi({ template: t, apiId, access, functions, onError });
    this.runs = new RehearsalRuns({
      store: this.store,
      team: this.team,
      access,
      onLifecycleEvent: (listener) => this.events.onLifecycleEvent(listener),
      transitionsOfRun: (team, runId) => this.sfn.transitionsOfRun(team, runId),
      settle: () => this.settle(),
    });
    this.pollers.push(
      ...startEventSourceMappings({
        template: t,
        sqs: this.sqs.client,
        functions: functions.all(),
        queueClock: this.queueClock,
        authorize: (caller, action, resource) => access.authorize(caller, action, resource),
        stopped: () => this.stopped,
        onError,
        onThrottle: (throttle) => void this.throttles.push(throttle),
        onRecursionStop: (stop) => void this.recursionStops.push(stop),
        onDelivery: (delivery) => {
          for (const listener of this.receiveListeners) listener(delivery);
        },
      }),
    );
  }
}

/**
 * The stack's Lambda functions, each hosted from its bundled asset (function-host.ts) with the
 * environment, timeout, memory and role of the template and its own credentials for the
 * endpoint; the account's concurrency shared as Lambda shares it (reservations first); and the
 * `lambda` agents' functions from outside the stack.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RehearsalAccess } from './access';
import { AWS_QUOTAS } from './aws-quotas';
import { ConcurrencyPool, FunctionHost, type HostedFunction } from './function-host';
import { RehearsalError } from './rehearsal-error';
import type { RehearsalTemplate } from './template';

export interface FunctionHostingOptions {
  /** Warm containers per function at most (Lambda scales further). Default 4. */
  maxContainers?: number;
  /**
   * The account's Lambda concurrency (default AWS's 1,000; a new account may have 10). Functions
   * reserve from it (ReservedConcurrentExecutions, leaving at least 100 unreserved or the stack is
   * refused, as CloudFormation refuses it); the others share the rest; an invocation beyond either
   * is throttled.
   */
  accountConcurrency?: number;
  /** Every line the functions log (Powertools JSON). Kept quiet otherwise. */
  onLog?(functionName: string, line: string): void;
  /**
   * Functions outside the template that `lambda` agents invoke (by function name: a module file
   * exporting `handler`), hosted as Lambda hosts them (6 MB request and response). Without one, an
   * agent's function is not found, as in an account that lacks it.
   */
  agentFunctions?: Record<string, string>;
}

/** The AWS services whose calls the functions send to the rehearsal's endpoint. */
const ENDPOINT_SERVICES = ['DYNAMODB', 'S3', 'SQS', 'SFN', 'EVENTBRIDGE', 'LAMBDA', 'BEDROCK_RUNTIME', 'SSM', 'SECRETS_MANAGER'];

export class RehearsalFunctions {
  private readonly hosts = new Map<string, FunctionHost>();
  private readonly pool = new ConcurrencyPool(AWS_QUOTAS.lambdaAccountConcurrency);

  /** Each of the template's functions, its caller (access key and role) known to `access`. */
  constructor(
    private readonly template: RehearsalTemplate,
    assemblyDir: string,
    endpointUrl: string,
    access: RehearsalAccess,
    private readonly options: FunctionHostingOptions,
  ) {
    const t = template;
    const services = Object.fromEntries(ENDPOINT_SERVICES.map((s) => [`AWS_ENDPOINT_URL_${s}`, endpointUrl]));
    for (const [id, r] of t.ofType('AWS::Lambda::Function')) {
      const p = r.Properties ?? {};
      const { ref: name, attributes } = t.physicalOf(id);
      const code = p.Code ?? {};
      const key = typeof code.S3Key === 'string' ? code.S3Key.replace(/\.zip$/, '') : undefined;
      const [handlerBase, handlerName] = String(p.Handler ?? 'index.handler').split('.');
      const assetDir = key ? join(assemblyDir, `asset.${key}`) : undefined;
      const handlerFile = assetDir
        ? ['.mjs', '.js', '.cjs'].map((ext) => join(assetDir, `${handlerBase}${ext}`)).find((f) => existsSync(f))
        : undefined;
      if (!handlerFile) throw new RehearsalError(`function ${id}: no bundled asset to run (Code ${JSON.stringify(code)})`);
      const roleLogicalId = (p.Role?.['Fn::GetAtt'] ?? [])[0] as string;
      const accessKeyId = `REHEARSAL${this.hosts.size}${id}`.slice(0, 128);
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
        maxContainers: options.maxContainers ?? 4,
        ...(p.ReservedConcurrentExecutions === undefined ? {} : { reservedConcurrency: Number(t.resolve(p.ReservedConcurrentExecutions)) }),
      };
      this.hosts.set(attributes.Arn, new FunctionHost(hosted, { region: t.env.region, account: t.env.account, onLog: options.onLog, pool: this.pool }));
      access.addCaller(accessKeyId, { principal: name, roleLogicalId });
    }
    for (const [name, handlerFile] of Object.entries(options.agentFunctions ?? {})) {
      const arn = t.arn('lambda', `function:${name}`);
      // Outside the stack: no role of the template, no credentials for the rehearsal's endpoint.
      const hosted: HostedFunction = { logicalId: name, name, arn, handlerFile, handlerName: 'handler', environment: { AWS_REGION: t.env.region, TZ: ':UTC' }, timeoutSeconds: 60, memorySize: 1024, roleLogicalId: '', maxContainers: options.maxContainers ?? 4 };
      this.hosts.set(arn, new FunctionHost(hosted, { region: t.env.region, account: t.env.account, onLog: options.onLog }));
    }
    this.reserveConcurrency();
  }

  all(): FunctionHost[] {
    return [...this.hosts.values()];
  }

  /** The team the stack serves (its functions' TEAM). */
  get team(): string {
    return this.all()[0]?.fn.environment.TEAM ?? 'rehearsal';
  }

  /** A function by its ARN, unqualified (`…:function:name`); undefined when the account has none. */
  find(arn: string): FunctionHost | undefined {
    return this.hosts.get(arn);
  }

  byArn(arn: string): FunctionHost {
    const host = this.hosts.get(arn);
    if (!host) throw new RehearsalError(`no function ${arn} in the template`);
    return host;
  }

  /** A function by its service name (POWERTOOLS_SERVICE_NAME, e.g. `step-worker`). */
  findByService(serviceName: string): FunctionHost | undefined {
    return this.all().find((f) => f.fn.environment.POWERTOOLS_SERVICE_NAME === serviceName);
  }

  byService(serviceName: string): FunctionHost {
    const host = this.findByService(serviceName);
    if (!host) throw new RehearsalError(`no function ${serviceName} in the template`);
    return host;
  }

  /** Invocations in progress now. */
  get busy(): boolean {
    return this.all().some((f) => f.busy);
  }

  async idle(): Promise<void> {
    await Promise.all(this.all().map((f) => f.idle()));
  }

  /** Ends every container (an invocation still running ends with its container). */
  async close(): Promise<void> {
    await Promise.all(this.all().map((f) => f.close()));
  }

  /** What the account's concurrency leaves the functions without a reservation; a deploy that reserves too much fails. */
  private reserveConcurrency(): void {
    const account = this.options.accountConcurrency ?? AWS_QUOTAS.lambdaAccountConcurrency;
    let unreserved = account;
    for (const { fn } of this.hosts.values()) {
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
}

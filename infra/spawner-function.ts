/**
 * Every branch-spawner Lambda goes through this class, so bundling, runtime and Powertools
 * defaults live in one place. Bundling runs the local esbuild: no Docker, no AWS account.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat, type NodejsFunctionProps } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRIC_NAMESPACE } from '../functions/handlers/observability';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The Lambda entry files (functions/lambda/<name>.ts, each `export const handler`). */
export type SpawnerFunctionName = 'api' | 'trigger' | 'step-worker' | 'record-child-failure' | 'aggregate' | 'dlq-handler';

export interface SpawnerFunctionProps
  extends Omit<NodejsFunctionProps, 'entry' | 'handler' | 'runtime' | 'architecture' | 'bundling' | 'role' | 'logGroup'> {
  name: SpawnerFunctionName;
  logRetention?: logs.RetentionDays;
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
}

// ESM bundles have no `require`; some dependencies still call it for Node built-ins.
const REQUIRE_BANNER =
  "import { createRequire as __bsCreateRequire } from 'node:module'; const require = __bsCreateRequire(import.meta.url);";

export class SpawnerFunction extends NodejsFunction {
  readonly spawnerName: SpawnerFunctionName;
  /** The function's own log group (its role may write there and nowhere else). */
  readonly functionLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: SpawnerFunctionProps) {
    const { name, logRetention, logLevel, environment, ...rest } = props;
    // Our own role: no AWS managed policy (AWSLambdaBasicExecutionRole allows every log group).
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `branch-spawner ${name} function`,
    });
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    super(scope, id, {
      memorySize: 512,
      timeout: Duration.seconds(30),
      ...rest,
      entry: join(PROJECT_ROOT, 'functions', 'lambda', `${name}.ts`),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      tracing: lambda.Tracing.ACTIVE,
      role,
      logGroup,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        POWERTOOLS_SERVICE_NAME: name,
        // Metrics (functions/lambda/powertools.ts): one namespace for every function.
        POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
        // Tracer: segments carry no responses (agent answers and results may be large or private).
        POWERTOOLS_TRACER_CAPTURE_RESPONSE: 'false',
        POWERTOOLS_TRACER_CAPTURE_ERROR: 'true',
        LOG_LEVEL: logLevel ?? 'INFO',
        // Stack traces point at the TypeScript sources (the bundle ships a source map).
        NODE_OPTIONS: '--enable-source-maps',
        ...environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Bundle the pinned AWS SDK too: what the tests exercise is what runs.
        externalModules: [],
        // Keep `cdk synth --quiet` quiet: esbuild reports warnings and errors only.
        logLevel: LogLevel.WARNING,
      },
    });
    this.spawnerName = name;
    this.functionLogGroup = logGroup;
    logGroup.grantWrite(role);
  }
}

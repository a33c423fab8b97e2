/**
 * The team's REST API: one Lambda proxy integration behind every route, IAM or Cognito auth, a
 * body model for run requests, access logs, and API Gateway's own errors in the product's shape.
 * Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { TeamConfig } from '../functions/team-config';

const RUN_BODY_SCHEMA: apigw.JsonSchema = {
  schema: apigw.JsonSchemaVersion.DRAFT4,
  title: 'RunRequest',
  type: apigw.JsonSchemaType.OBJECT,
  // The shape only; the api handler applies the full scenario rules (and the body size limit).
  required: ['name', 'entry'],
  properties: {
    name: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 128 },
    entry: { type: apigw.JsonSchemaType.STRING, minLength: 1 },
    agents: { type: apigw.JsonSchemaType.OBJECT },
    limits: { type: apigw.JsonSchemaType.OBJECT },
    failurePolicy: { type: apigw.JsonSchemaType.OBJECT },
  },
};

export function createApi(scope: Construct, config: TeamConfig, handler: lambda.IFunction, logRetention: logs.RetentionDays): apigw.RestApi {
  const stack = Stack.of(scope);
  const accessLogs = new logs.LogGroup(scope, 'ApiAccessLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
  let methodOptions: apigw.MethodOptions = { authorizationType: apigw.AuthorizationType.IAM };
  if (config.auth.type === 'jwt') {
    const [, region, poolId] = /^https:\/\/cognito-idp\.([a-z0-9-]+)\.amazonaws\.com\/(.+)$/.exec(config.auth.issuer)!;
    const pool = cognito.UserPool.fromUserPoolArn(
      scope,
      'UserPool',
      stack.formatArn({ service: 'cognito-idp', region, resource: 'userpool', resourceName: poolId }),
    );
    const authorizer = new apigw.CognitoUserPoolsAuthorizer(scope, 'Authorizer', {
      cognitoUserPools: [pool],
      identitySource: apigw.IdentitySource.header('Authorization'),
    });
    methodOptions = { authorizationType: apigw.AuthorizationType.COGNITO, authorizer };
  }
  const api = new apigw.RestApi(scope, 'Api', {
    restApiName: `branch-spawner-${config.team}`,
    description: `branch-spawner ${config.team}: start and inspect runs`,
    endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
    // The API Gateway CloudWatch role is an account-wide setting, not one team's.
    cloudWatchRole: false,
    deployOptions: {
      stageName: 'v1',
      throttlingRateLimit: config.apiThrottle?.rateLimit ?? 50,
      throttlingBurstLimit: config.apiThrottle?.burstLimit ?? 100,
      accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
      accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields({
        caller: true,
        httpMethod: true,
        ip: true,
        protocol: true,
        requestTime: true,
        resourcePath: true,
        responseLength: true,
        status: true,
        user: true,
      }),
      tracingEnabled: true,
      metricsEnabled: true,
    },
    defaultMethodOptions: methodOptions,
  });
  // Errors API Gateway answers itself keep the product's `{"error","message"}` shape.
  api.addGatewayResponse('BadRequestBody', {
    type: apigw.ResponseType.BAD_REQUEST_BODY,
    statusCode: '400',
    templates: { 'application/json': '{"error":"ValidationError","message":"$context.error.validationErrorString"}' },
  });
  api.addGatewayResponse('Default4xx', {
    type: apigw.ResponseType.DEFAULT_4XX,
    templates: { 'application/json': '{"error":"$context.error.responseType","message":$context.error.messageString}' },
  });
  api.addGatewayResponse('Default5xx', {
    type: apigw.ResponseType.DEFAULT_5XX,
    templates: { 'application/json': '{"error":"$context.error.responseType","message":$context.error.messageString}' },
  });

  const validator = api.addRequestValidator('RequestValidator', {
    requestValidatorName: 'body-and-parameters',
    validateRequestBody: true,
    validateRequestParameters: true,
  });
  const runModel = api.addModel('RunRequestModel', { contentType: 'application/json', modelName: 'RunRequest', schema: RUN_BODY_SCHEMA });
  const integration = new apigw.LambdaIntegration(handler, { proxy: true, allowTestInvoke: false });
  const withId = { 'method.request.path.id': true };

  const runs = api.root.addResource('runs');
  runs.addMethod('POST', integration, {
    requestValidator: validator,
    requestModels: { 'application/json': runModel },
    requestParameters: { 'method.request.header.Idempotency-Key': false },
  });
  // A team's runs, newest first (each caller's own unless the team shares runs), a page at a time.
  runs.addMethod('GET', integration, {
    requestValidator: validator,
    requestParameters: { 'method.request.querystring.limit': false, 'method.request.querystring.cursor': false },
  });
  const run = runs.addResource('{id}');
  run.addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  const branches = run.addResource('branches');
  branches.addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  const branch = branches.addResource('{branchId}');
  branch.addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.branchId': true } });
  // One branch's whole result (large values are previewed elsewhere: docs/large-values.md).
  branch
    .addResource('result')
    .addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.branchId': true } });
  // A value kept by reference (a tool call's arguments or output: docs/llm-agents.md).
  run
    .addResource('values')
    .addResource('{ref}')
    .addMethod('GET', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.ref': true } });
  run
    .addResource('tree')
    .addMethod('GET', integration, {
      requestValidator: validator,
      requestParameters: { ...withId, 'method.request.querystring.format': false },
    });
  run.addResource('metrics').addMethod('GET', integration, { requestValidator: validator, requestParameters: withId });
  run.addResource('cancel').addMethod('POST', integration, { requestValidator: validator, requestParameters: withId });
  // The answer to a branch's callback (any JSON body; the handler checks it: docs/agents.md).
  run
    .addResource('callbacks')
    .addResource('{token}')
    .addMethod('POST', integration, { requestValidator: validator, requestParameters: { ...withId, 'method.request.path.token': true } });
  run.addResource('events').addMethod('GET', integration, {
    requestValidator: validator,
    requestParameters: {
      ...withId,
      'method.request.querystring.after': false,
      'method.request.querystring.cursor': false,
      'method.request.querystring.limit': false,
    },
  });
  return api;
}

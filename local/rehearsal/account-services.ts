/**
 * The account's services a function may call that the stack does not create, each call
 * authorized against the caller's role: SSM parameters and Secrets Manager secrets (the values
 * the rehearsal was given), Lambda Invoke of another function (a `lambda` agent: only functions
 * hosted here exist), and Bedrock (authorized, then not found: the rehearsal has no models).
 */
import type { RehearsalAccess } from './access';
import { ServiceError, type Caller } from './aws-endpoint';
import type { FunctionError } from './function-host';
import type { RehearsalFunctions } from './functions';
import type { RehearsalTemplate } from './template';

export interface AccountServicesContext {
  template: RehearsalTemplate;
  access: RehearsalAccess;
  functions: () => RehearsalFunctions;
  /** Values of SSM parameters / Secrets Manager secrets (by name). */
  secrets: Record<string, string>;
}

/** GetParameter (SSM) and GetSecretValue (Secrets Manager), JSON protocol. */
export function secretsApi(ctx: AccountServicesContext, service: 'ssm' | 'secretsmanager') {
  return (caller: Caller, operation: string, body: Record<string, any>): unknown => {
    const { secrets, template: t } = ctx;
    if (service === 'ssm' && operation === 'GetParameter') {
      const name = String(body.Name);
      ctx.access.authorize(caller, 'ssm:GetParameter', t.arn('ssm', `parameter${name.startsWith('/') ? '' : '/'}${name}`));
      if (!(name in secrets)) throw new ServiceError('ParameterNotFound', `parameter ${name} not found`);
      return { Parameter: { Name: name, Type: 'SecureString', Value: secrets[name], Version: 1 } };
    }
    if (service === 'secretsmanager' && operation === 'GetSecretValue') {
      const id = String(body.SecretId);
      const name = id.startsWith('arn:') ? id.split(':')[6].replace(/-[A-Za-z0-9]{6}$/, '') : id;
      const arn = id.startsWith('arn:') ? id : t.arn('secretsmanager', `secret:${name}-AbCdEf`);
      ctx.access.authorize(caller, 'secretsmanager:GetSecretValue', arn);
      if (!(name in secrets)) throw new ServiceError('ResourceNotFoundException', `Secrets Manager can't find the specified secret.`);
      return { ARN: arn, Name: name, SecretString: secrets[name], VersionId: 'rehearsal', CreatedDate: Date.now() / 1000 };
    }
    throw new ServiceError('UnknownOperationException', `the rehearsal does not serve ${service} ${operation}`);
  };
}

/** Lambda Invoke (RequestResponse) by a function: a function error comes back as the payload, as Lambda returns it. */
export async function invokeFunction(ctx: AccountServicesContext, caller: Caller, functionName: string, payload: unknown) {
  const arn = functionName.startsWith('arn:') ? functionName : ctx.template.arn('lambda', `function:${functionName}`);
  ctx.access.authorize(caller, 'lambda:InvokeFunction', arn);
  // A qualified ARN (…:function:name:alias) names the same function.
  const host = ctx.functions().find(arn.split(':').slice(0, 7).join(':'));
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

/** Bedrock InvokeModel: authorized as AWS would, then refused (the rehearsal runs no model). */
export function invokeModel(ctx: AccountServicesContext, caller: Caller, modelId: string): never {
  const t = ctx.template;
  const arn = modelId.startsWith('arn:') ? modelId : `arn:${t.env.partition}:bedrock:${t.env.region}::foundation-model/${modelId}`;
  ctx.access.authorize(caller, 'bedrock:InvokeModel', arn);
  throw new ServiceError('ResourceNotFoundException', `the rehearsal has no Bedrock model ${modelId}`);
}

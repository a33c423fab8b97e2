/**
 * A team stack's outputs, read with CloudFormation DescribeStacks (the CLI's `--stack <team>`
 * finds the API's URL there). Signed with the standard AWS credential chain; the endpoint is the
 * SDK's (AWS_ENDPOINT_URL_CLOUDFORMATION points it at the rehearsal).
 */
import { CloudFormationClient, DescribeStacksCommand, type CloudFormationClientConfig } from '@aws-sdk/client-cloudformation';
import { NotFoundError } from '../../core/errors';

export interface StackOutputsOptions {
  region: string;
  credentials?: CloudFormationClientConfig['credentials'];
  endpoint?: string;
}

/** The outputs of a stack by key; NotFoundError naming the stack when it does not exist there. */
export async function readStackOutputs(stackName: string, options: StackOutputsOptions): Promise<Record<string, string>> {
  const client = new CloudFormationClient({
    region: options.region,
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: 3,
  });
  try {
    const { Stacks = [] } = await client.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = Stacks[0];
    if (!stack) throw new NotFoundError(`stack ${stackName} not found in ${options.region}`);
    return Object.fromEntries((stack.Outputs ?? []).flatMap((o) => (o.OutputKey && o.OutputValue !== undefined ? [[o.OutputKey, o.OutputValue]] : [])));
  } catch (error) {
    // CloudFormation answers a missing stack with ValidationError "Stack with id … does not exist".
    if ((error as { name?: string }).name === 'ValidationError' && /does not exist/.test((error as Error).message)) {
      throw new NotFoundError(`stack ${stackName} does not exist in ${options.region}`, { cause: error });
    }
    throw error;
  } finally {
    client.destroy();
  }
}

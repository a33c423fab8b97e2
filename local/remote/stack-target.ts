/**
 * `--stack <team>`: the team's API URL read from its stack's outputs (`ApiUrl` of
 * `branch-spawner-<team>`, the stack `cdk deploy -c team=<team>` creates), signed with the same
 * credentials the API calls then use. A stack or output that is not there is a bad argument (exit 2)
 * naming the team, the stack and the region looked in.
 */
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { readStackOutputs } from '../../adapters/cloudformation/stack-outputs';
import { errorMessage, NotFoundError, RemoteApiError, ValidationError } from '../../core/errors';
import { knownTeams, loadTeamConfig, stackNameFor } from '../../functions/team-config';

export const API_URL_OUTPUT = 'ApiUrl';

export interface StackFlags {
  region?: string;
  profile?: string;
}

/** The region to look for the stack in: --region, AWS_REGION, else the region the team config pins. */
function regionFor(team: string, flags: StackFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION) return flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  return knownTeams().includes(team) ? loadTeamConfig(team).region : undefined;
}

export async function apiUrlOfStack(team: string, flags: StackFlags = {}, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!/^[A-Za-z0-9-]{1,100}$/.test(team)) throw new ValidationError(`--stack: "${team}" is not a team name (letters, digits and -)`, '--stack');
  const stackName = stackNameFor(team);
  const region = regionFor(team, flags, env);
  if (!region) throw new ValidationError(`--stack ${team}: say which region stack ${stackName} is in (--region or AWS_REGION)`, '--region');
  const profile = flags.profile ?? env.AWS_PROFILE;
  let outputs: Record<string, string>;
  try {
    outputs = await readStackOutputs(stackName, { region, credentials: fromNodeProviderChain(profile ? { profile } : {}) });
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new ValidationError(`--stack ${team}: ${error.message} (deploy it with \`npx cdk deploy -c team=${team}\`, or look in another region with --region)`, '--stack', { cause: error });
    }
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
    const who = profile ? `profile ${profile}` : env.AWS_ACCESS_KEY_ID ? `access key ${env.AWS_ACCESS_KEY_ID} from the environment` : 'the default AWS credential chain';
    throw new RemoteApiError(`--stack ${team}: could not read the outputs of stack ${stackName} in ${region} with ${who}: ${errorMessage(error)}`, status, (error as Error).name ?? 'Error', { cause: error });
  }
  const url = outputs[API_URL_OUTPUT];
  if (!url) {
    throw new ValidationError(`--stack ${team}: stack ${stackName} in ${region} has no ${API_URL_OUTPUT} output (outputs: ${Object.keys(outputs).join(', ') || 'none'}); is it a branch-spawner stack?`, '--stack');
  }
  return url;
}

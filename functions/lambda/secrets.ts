/**
 * API keys of `openai` agents in AWS: read from Secrets Manager or SSM Parameter Store (the team
 * config's `secrets`, passed to the functions as names only, never values), fetched with
 * Powertools Parameters and cached per container for SECRET_MAX_AGE_SECONDS (a rotated key is
 * picked up within that time). The values live in this object only — not in process.env, not in
 * a request, never logged — and the openai invoker looks `apiKeyEnv` up here.
 */
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { ValidationError } from '../../core/errors';
import type { SecretSource } from '../lambda-environment';

export const SECRET_MAX_AGE_SECONDS = 300;

export interface SecretProviders {
  secrets?: Pick<SecretsProvider, 'get'>;
  ssm?: Pick<SSMProvider, 'get'>;
}

export class SecretValues {
  /** The process environment plus the secrets, by the variable name agents give as `apiKeyEnv`. */
  readonly env: Record<string, string | undefined>;

  constructor(
    private readonly sources: Record<string, SecretSource>,
    base: Record<string, string | undefined> = process.env,
    private readonly providers: SecretProviders = {},
  ) {
    this.env = { ...base };
  }

  /** Fetches what is not cached (or older than the max age); call before agents run. */
  async refresh(): Promise<void> {
    await Promise.all(
      Object.entries(this.sources).map(async ([name, source]) => {
        const value =
          'secretsManager' in source
            ? await (this.providers.secrets ??= new SecretsProvider()).get(source.secretsManager, { maxAge: SECRET_MAX_AGE_SECONDS })
            : await (this.providers.ssm ??= new SSMProvider()).get(source.ssmParameter, { decrypt: true, maxAge: SECRET_MAX_AGE_SECONDS });
        if (typeof value !== 'string' || value.length === 0) {
          const where = 'secretsManager' in source ? `secret ${source.secretsManager}` : `parameter ${source.ssmParameter}`;
          throw new ValidationError(`${name}: ${where} has no string value`, name);
        }
        this.env[name] = value;
      }),
    );
  }
}

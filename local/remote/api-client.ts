/**
 * The CLI's client of a team's deployed API (`--api <url>`): every request signed with SigV4 from
 * the standard AWS credential chain (environment, profiles, SSO, container and instance roles),
 * or carrying a Cognito token (`--token`, BRANCH_SPAWNER_TOKEN); a loopback address with no
 * signing region (a `branch-spawner dev` server) is called unsigned. A refusal names the
 * credentials that were used (the access key id, never the secret) and what was refused.
 */
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { RemoteApiError, ValidationError } from '../../core/errors';
import { signerFor, signRequest } from './sigv4';

export interface RemoteTarget {
  /** The API's URL with its stage (the stack's ApiUrl output), e.g. https://abc.execute-api.eu-west-1.amazonaws.com/v1/ */
  api: string;
  /** A Cognito ID token (a JWT team); without it requests are signed. */
  token?: string;
  /** The signing region; else the URL's, else AWS_REGION / AWS_DEFAULT_REGION. */
  region?: string;
  /** A named profile of the shared config files (else AWS_PROFILE, else the default chain). */
  profile?: string;
}

export const TOKEN_ENV = 'BRANCH_SPAWNER_TOKEN';

type Auth =
  | { kind: 'token'; token: string; expiresAt?: number }
  | { kind: 'none' }
  | { kind: 'sigv4'; region: string; signer: ReturnType<typeof signerFor>; credentials: ReturnType<typeof fromNodeProviderChain>; source: string };

/** The region of an execute-api URL (https://<id>.execute-api.<region>.amazonaws.com/...), if it is one. */
export function regionOfUrl(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(url.hostname)?.[1];
}

/**
 * Whether the URL names this machine (127.0.0.0/8, ::1, localhost): a `branch-spawner dev` server,
 * which has no auth, or `rehearse up`, whose credentials and region its export lines set.
 */
export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** A JWT's `exp` in ms, when it has one (the token is only read, never checked: the API checks it). */
function expiryOf(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class ApiClient {
  private constructor(
    readonly baseUrl: URL,
    private readonly auth: Auth,
  ) {}

  static connect(target: RemoteTarget, env: NodeJS.ProcessEnv = process.env): ApiClient {
    let base: URL;
    try {
      base = new URL(target.api.endsWith('/') ? target.api : `${target.api}/`);
    } catch (error) {
      throw new ValidationError(`--api: not a URL: ${target.api}`, '--api', { cause: error });
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new ValidationError(`--api: must be an http(s) URL, got ${base.protocol}`, '--api');
    const token = target.token ?? env[TOKEN_ENV];
    if (token) return new ApiClient(base, { kind: 'token', token: token.replace(/^Bearer\s+/i, ''), expiresAt: expiryOf(token.replace(/^Bearer\s+/i, '')) });
    const region = target.region ?? regionOfUrl(base) ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    // Nothing to sign with on this machine: a dev server, called as its page calls it.
    if (!region && !target.profile && isLoopback(base)) return new ApiClient(base, { kind: 'none' });
    if (!region) {
      throw new ValidationError(`--region: ${base.host} is not an execute-api URL, so the signing region must be given (--region or AWS_REGION)`, '--region');
    }
    const profile = target.profile ?? env.AWS_PROFILE;
    const credentials = fromNodeProviderChain(target.profile ? { profile: target.profile } : {});
    const source = target.profile
      ? `profile ${target.profile}`
      : env.AWS_ACCESS_KEY_ID
        ? 'the environment (AWS_ACCESS_KEY_ID)'
        : profile
          ? `profile ${profile}`
          : 'the default AWS credential chain';
    return new ApiClient(base, { kind: 'sigv4', region, credentials, signer: signerFor(credentials, region), source });
  }

  /** Who the requests are made as, for messages: the access key id and where it came from, or the token's expiry. */
  async identity(): Promise<string> {
    if (this.auth.kind === 'none') return 'no signature (a loopback address without a signing region: --region or AWS_REGION signs)';
    if (this.auth.kind === 'token') {
      return `a token${this.auth.expiresAt ? ` valid until ${new Date(this.auth.expiresAt).toISOString()}` : ''}`;
    }
    const { accessKeyId } = await this.auth.credentials();
    return `access key ${accessKeyId} from ${this.auth.source}, region ${this.auth.region}`;
  }

  /** One request; the JSON answer, or a RemoteApiError naming what was refused. */
  async call<T = unknown>(method: string, path: string, options: { body?: unknown; query?: Record<string, string | undefined>; headers?: Record<string, string> } = {}): Promise<T> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl);
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(name, value);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}), ...options.headers };
    const what = `${method} ${url.pathname}${url.search}`;
    const response = await this.send(method, url, body, headers);
    let answer: any;
    try {
      answer = response.text ? JSON.parse(response.text) : null;
    } catch {
      answer = response.text;
    }
    if (response.status >= 200 && response.status < 300) return answer as T;
    const code = String(answer?.error ?? response.headers.get('x-amzn-errortype')?.split(':')[0] ?? response.status);
    const message = String(answer?.message ?? answer?.Message ?? response.text);
    if (response.status === 401 || response.status === 403) {
      throw new RemoteApiError(`${what} was refused (${response.status} ${code}: ${message}); the request was made with ${await this.identity()}`, response.status, code);
    }
    throw new RemoteApiError(`${what}: ${response.status} ${code}: ${message}`, response.status, code);
  }

  /**
   * Sends a request as it is (signed, or with the token) and gives the answer as it is: what
   * `dev --api` relays to the page. Only a request that cannot be made throws (RemoteApiError).
   */
  async send(method: string, url: URL, body: string | undefined, requestHeaders: Record<string, string>): Promise<{ status: number; headers: Headers; text: string }> {
    const what = `${method} ${url.pathname}${url.search}`;
    let headers = { ...requestHeaders };
    if (this.auth.kind === 'token') {
      if (this.auth.expiresAt !== undefined && this.auth.expiresAt <= Date.now()) {
        throw new RemoteApiError(`${what}: the token expired at ${new Date(this.auth.expiresAt).toISOString()}; sign in again for a new ID token (--token or ${TOKEN_ENV})`, 401, 'ExpiredToken');
      }
      headers.authorization = this.auth.token;
    } else if (this.auth.kind === 'sigv4') {
      try {
        headers = await signRequest(this.auth.signer, { method, url, headers, body });
      } catch (error) {
        const dev = isLoopback(url) ? '; a branch-spawner dev server needs no signature: leave --region and AWS_REGION unset' : '';
        throw new RemoteApiError(`${what}: no AWS credentials to sign with (${this.auth.source}): ${(error as Error).message}${dev}`, 401, 'CredentialsProviderError', { cause: error });
      }
      // fetch sets Host itself (the same value that was signed).
      delete headers.host;
    }
    try {
      const response = await fetch(url, { method, headers, body });
      return { status: response.status, headers: response.headers, text: await response.text() };
    } catch (error) {
      throw new RemoteApiError(`${what}: cannot reach ${this.baseUrl.origin}: ${(error as Error).cause ?? (error as Error).message}`, 0, 'NetworkError', { cause: error });
    }
  }
}

/** Every branch of a run, page by page (GET /runs/{id}/branches?cursor=). */
export async function allBranches<B = unknown>(client: Pick<ApiClient, 'call'>, runId: string): Promise<B[]> {
  const branches: B[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.call<{ branches: B[]; cursor?: string | null }>('GET', `runs/${encodeURIComponent(runId)}/branches`, { query: { cursor } });
    branches.push(...page.branches);
    cursor = page.cursor ?? undefined;
  } while (cursor);
  return branches;
}

/**
 * A run's view and every branch of it, read at once. When both reads fail, the run's own error
 * is the one reported (not whichever answer came first), so the same refusal always reads the same.
 */
export async function runAndBranches<V, B>(client: Pick<ApiClient, 'call'>, runId: string): Promise<{ view: V; branches: B[] }> {
  const [view, branches] = await Promise.allSettled([client.call<V>('GET', `runs/${encodeURIComponent(runId)}`), allBranches<B>(client, runId)]);
  if (view.status === 'rejected') throw view.reason;
  if (branches.status === 'rejected') throw branches.reason;
  return { view: view.value, branches: branches.value };
}

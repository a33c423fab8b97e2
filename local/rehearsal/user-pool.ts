/**
 * The rehearsal's stand-in for a Cognito user pool: an RSA key pair whose public half is served
 * as the pool's JWKS (at the path Cognito serves it, `/<poolId>/.well-known/jwks.json`), ID and
 * access tokens signed with it, and the check API Gateway's Cognito authorizer makes before a
 * method runs: signature, issuer, expiry and `token_use` (an ID token, or an access token with a
 * scope the method names). The check is aws-jwt-verify's, reading the JWKS over HTTP from the
 * rehearsal instead of from cognito-idp.<region>.amazonaws.com.
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify';
import { JwtExpiredError } from 'aws-jwt-verify/error';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';

export interface TokenOptions {
  /** The app client the token is for (`aud` of an ID token, `client_id` of an access token). */
  clientId: string;
  tokenUse?: 'id' | 'access';
  /** The user (`sub`); a new one when not given. */
  sub?: string;
  /** Seconds until it expires (negative: already expired). Default 3600, as Cognito's default. */
  expiresInSeconds?: number;
  scope?: string;
}

/** A refusal by the authorizer: API Gateway answers 401 with the message. */
export interface AuthorizerRefusal {
  ok: false;
  message: string;
}

/** `https://cognito-idp.<region>.amazonaws.com/<poolId>` of a pool ARN (`arn:aws:cognito-idp:<region>:<account>:userpool/<poolId>`). */
export function issuerOfPoolArn(arn: string): { issuer: string; poolId: string } | undefined {
  const m = /^arn:[a-z-]+:cognito-idp:([a-z0-9-]+):\d*:userpool\/(.+)$/.exec(arn);
  return m ? { issuer: `https://cognito-idp.${m[1]}.amazonaws.com/${m[2]}`, poolId: m[2] } : undefined;
}

export class RehearsalUserPool {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly kid = randomUUID();
  private readonly verifiers = new Map<string, ReturnType<typeof CognitoJwtVerifier.create>>();

  /**
   * @param poolId as Cognito names pools: `<region>_<id>`
   * @param jwksBaseUrl where the rehearsal serves `/<poolId>/.well-known/jwks.json` (the gateway's origin)
   */
  constructor(
    readonly poolId: string,
    private readonly jwksBaseUrl: () => string,
  ) {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 }));
  }

  get region(): string {
    return this.poolId.split('_')[0];
  }

  get issuer(): string {
    return `https://cognito-idp.${this.region}.amazonaws.com/${this.poolId}`;
  }

  /** The path the JWKS is served on (as Cognito's, below the issuer). */
  get jwksPath(): string {
    return `/${this.poolId}/.well-known/jwks.json`;
  }

  jwks(): { keys: Record<string, unknown>[] } {
    return { keys: [{ ...this.publicKey.export({ format: 'jwk' }), kid: this.kid, alg: 'RS256', use: 'sig' }] };
  }

  /** A token as Cognito signs it after a sign-in (RS256, the pool's key id). */
  token(options: TokenOptions): string {
    const now = Math.floor(Date.now() / 1000);
    const use = options.tokenUse ?? 'id';
    const sub = options.sub ?? randomUUID();
    const exp = now + (options.expiresInSeconds ?? 3600);
    const payload =
      use === 'id'
        ? { sub, aud: options.clientId, iss: this.issuer, token_use: 'id', 'cognito:username': sub, auth_time: now, iat: Math.min(now, exp - 1), exp, jti: randomUUID() }
        : { sub, client_id: options.clientId, iss: this.issuer, token_use: 'access', scope: options.scope ?? 'aws.cognito.signin.user.admin', username: sub, auth_time: now, iat: Math.min(now, exp - 1), exp, jti: randomUUID() };
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = `${part({ kid: this.kid, alg: 'RS256' })}.${part(payload)}`;
    const signature = createSign('RSA-SHA256').update(signed).sign(this.privateKey).toString('base64url');
    return `${signed}.${signature}`;
  }

  /**
   * What the REST API's Cognito authorizer decides for a method: the token's claims (all as
   * strings, as API Gateway passes them to the integration), or a refusal. Without scopes the
   * method takes ID tokens of any app client of the pool (the API handler checks the client).
   */
  async authorize(header: string | undefined, scopes: readonly string[] = []): Promise<{ ok: true; claims: Record<string, string> } | AuthorizerRefusal> {
    if (!header) return { ok: false, message: 'Unauthorized' };
    const tokenUse = scopes.length ? 'access' : 'id';
    try {
      const payload = await this.verifier(tokenUse).verify(header, scopes.length ? { tokenUse, clientId: null, scope: [...scopes] } : { tokenUse, clientId: null });
      return { ok: true, claims: Object.fromEntries(Object.entries(payload).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])) };
    } catch (error) {
      return { ok: false, message: error instanceof JwtExpiredError ? 'The incoming token has expired' : 'Unauthorized' };
    }
  }

  private verifier(tokenUse: 'id' | 'access') {
    let verifier = this.verifiers.get(tokenUse);
    if (!verifier) {
      // Cognito's JWKS address is read from the rehearsal instead (the same path, the gateway's origin).
      const fetcher = {
        fetch: async (uri: string) => {
          const local = new URL(new URL(uri).pathname, this.jwksBaseUrl());
          const response = await fetch(local);
          if (!response.ok) throw new Error(`the rehearsal's JWKS answered ${response.status}`);
          return response.arrayBuffer();
        },
      };
      verifier = CognitoJwtVerifier.create({ userPoolId: this.poolId, tokenUse, clientId: null }, { jwksCache: new SimpleJwksCache({ fetcher }) });
      this.verifiers.set(tokenUse, verifier);
    }
    return verifier;
  }
}

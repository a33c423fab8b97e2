/**
 * SigV4 for the `execute-api` service, both ways, with one maintained signer (@smithy/signature-v4,
 * the one the AWS SDK uses): the CLI signs its requests to a team's API, and the rehearsed API
 * Gateway verifies them by signing the same request again with the caller's secret.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';

const SERVICE = 'execute-api';
/** How far a request's X-Amz-Date may be from the server's clock (AWS allows 5 minutes). */
export const SIGNATURE_MAX_SKEW_MS = 5 * 60 * 1000;

const bytes = (data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof data === 'string' ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);

/** SHA-256 on node:crypto, in the shape the signer takes. */
class Sha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    return createHmac('sha256', bytes(this.secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

export interface SignableRequest {
  method: string;
  url: URL;
  /** Lower-case names. */
  headers: Record<string, string>;
  body?: string;
}

function httpRequestOf(request: SignableRequest, headers: Record<string, string>) {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of request.url.searchParams) {
    const had = query[name];
    query[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return {
    method: request.method.toUpperCase(),
    protocol: request.url.protocol,
    hostname: request.url.hostname,
    port: request.url.port ? Number(request.url.port) : undefined,
    path: request.url.pathname,
    query,
    headers,
    body: request.body,
  };
}

/** Credentials, or a provider of them (the SDK's credential chain). */
export type SigningCredentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

export function signerFor(credentials: SigningCredentials, region: string): SignatureV4 {
  // No x-amz-content-sha256 header: API Gateway hashes the body itself (other signers do not send it either).
  return new SignatureV4({ credentials, region, service: SERVICE, sha256: Sha256, uriEscapePath: true, applyChecksum: false });
}

/** The request's headers with the SigV4 ones added (authorization, x-amz-date, the session token). */
export async function signRequest(signer: SignatureV4, request: SignableRequest): Promise<Record<string, string>> {
  const signed = await signer.sign(httpRequestOf(request, { ...request.headers, host: request.url.host }));
  return signed.headers as Record<string, string>;
}

/** Why API Gateway refuses a request before it reaches the function (403; `type` is its gateway response type). */
export interface SignatureRefusal {
  type: 'MISSING_AUTHENTICATION_TOKEN' | 'INVALID_SIGNATURE' | 'UNRECOGNIZED_CLIENT';
  message: string;
}

export type SignatureCheck = { ok: true; accessKeyId: string } | ({ ok: false } & SignatureRefusal);

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_-]+),\s*Signature=([0-9a-f]{64})$/;

function amzDate(value: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}

const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

/**
 * Checks a request's SigV4 signature as API Gateway does: the access key must be known, the
 * credential scoped to this region and service, the date within 5 minutes, and the signature the
 * one the caller's secret gives for this very request (method, path, query, signed headers, body).
 */
export async function verifySignature(
  request: SignableRequest,
  secretOf: (accessKeyId: string) => { secretAccessKey: string; sessionToken?: string } | undefined,
  region: string,
  now = Date.now(),
): Promise<SignatureCheck> {
  const authorization = request.headers.authorization;
  if (!authorization) return { ok: false, type: 'MISSING_AUTHENTICATION_TOKEN', message: 'Missing Authentication Token' };
  const m = AUTH.exec(authorization.trim());
  if (!m) {
    return { ok: false, type: 'INVALID_SIGNATURE', message: `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256). Authorization=${authorization.split(' ')[0]}` };
  }
  const [, accessKeyId, day, scopeRegion, service, signedHeaders, signature] = m;
  const known = secretOf(accessKeyId);
  if (!known) return { ok: false, type: 'UNRECOGNIZED_CLIENT', message: 'The security token included in the request is invalid.' };
  if (scopeRegion !== region) return { ok: false, type: 'INVALID_SIGNATURE', message: `Credential should be scoped to a valid region, not '${scopeRegion}'. ` };
  if (service !== SERVICE) return { ok: false, type: 'INVALID_SIGNATURE', message: `Credential should be scoped to correct service: '${SERVICE}'. ` };
  const date = amzDate(request.headers['x-amz-date']);
  if (!date || stamp(date.getTime()).slice(0, 8) !== day) {
    return { ok: false, type: 'INVALID_SIGNATURE', message: 'The request signature is missing a valid X-Amz-Date header matching its credential scope.' };
  }
  if (date.getTime() < now - SIGNATURE_MAX_SKEW_MS) {
    return { ok: false, type: 'INVALID_SIGNATURE', message: `Signature expired: ${stamp(date.getTime())} is now earlier than ${stamp(now - SIGNATURE_MAX_SKEW_MS)} (${stamp(now)} - 5 min.)` };
  }
  if (date.getTime() > now + SIGNATURE_MAX_SKEW_MS) {
    return { ok: false, type: 'INVALID_SIGNATURE', message: `Signature not yet current: ${stamp(date.getTime())} is still later than ${stamp(now + SIGNATURE_MAX_SKEW_MS)} (${stamp(now)} + 5 min.)` };
  }
  const names = signedHeaders.split(';');
  const headers = Object.fromEntries(names.filter((n) => request.headers[n] !== undefined).map((n) => [n, request.headers[n]]));
  if (!names.includes('host') || Object.keys(headers).length !== names.length) {
    return { ok: false, type: 'INVALID_SIGNATURE', message: `'Host' and every header named in SignedHeaders (${signedHeaders}) must be in the request.` };
  }
  const again = await signerFor({ accessKeyId, secretAccessKey: known.secretAccessKey }, region).sign(httpRequestOf(request, headers), {
    signingDate: date,
    signableHeaders: new Set(names),
  });
  const expected = /Signature=([0-9a-f]{64})/.exec(String(again.headers.authorization))?.[1] ?? '';
  const sameHeaders = /SignedHeaders=([^,]+)/.exec(String(again.headers.authorization))?.[1] === signedHeaders;
  if (!sameHeaders || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    return {
      ok: false,
      type: 'INVALID_SIGNATURE',
      message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    };
  }
  return { ok: true, accessKeyId };
}

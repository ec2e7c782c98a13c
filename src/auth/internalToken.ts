import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Identity } from './identity';
import { Lru } from './lru';

export interface InternalTokenConfig {
  issuer: string;
  audience?: string | undefined;
  ttlSec: number;
  privateKeyFile?: string | undefined;
}

let processKey: KeyObject | undefined;

/**
 * The gateway's own identity token for upstreams: a short-lived ES256 JWT
 * with the verified identity, signed with a key the gateway holds, whose
 * public half is published as a JWKS. A new service verifies it with any JWT
 * library instead of trusting a header. Signing is synchronous (node:crypto)
 * and tokens are reused per identity for half their lifetime.
 */
export class InternalTokens {
  private readonly key: KeyObject;
  readonly kid: string;
  readonly jwks: string;
  private readonly cache = new Lru<{ token: string; until: number }>(10_000);

  constructor(private readonly cfg: InternalTokenConfig) {
    // A key made at start lives as long as the process (reloads keep it); a file key is shared by replicas.
    this.key = cfg.privateKeyFile ? createPrivateKey(readFileSync(cfg.privateKeyFile)) : (processKey ??= generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const jwk = createPublicKey(this.key).export({ format: 'jwk' });
    this.kid = createHash('sha256').update(JSON.stringify(jwk)).digest('base64url').slice(0, 16);
    this.jwks = JSON.stringify({ keys: [{ ...jwk, kid: this.kid, alg: 'ES256', use: 'sig' }] });
  }

  tokenFor(identity: Identity): string {
    const cacheKey = `${identity.userId}\n${identity.email ?? ''}\n${identity.roles.join(',')}`;
    const now = Date.now();
    const hit = this.cache.get(cacheKey);
    if (hit !== undefined && hit.until > now) return hit.token;
    const iat = Math.floor(now / 1000);
    const header = b64(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: this.kid }));
    const claims: Record<string, unknown> = { iss: this.cfg.issuer, sub: identity.userId, iat, exp: iat + this.cfg.ttlSec, roles: identity.roles };
    if (identity.email !== undefined) claims.email = identity.email;
    if (this.cfg.audience !== undefined) claims.aud = this.cfg.audience;
    const body = `${header}.${b64(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(body), { key: this.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    const token = `${body}.${signature}`;
    this.cache.set(cacheKey, { token, until: now + (this.cfg.ttlSec * 1000) / 2 });
    return token;
  }
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64url');
}

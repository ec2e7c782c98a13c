import { createSecretKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtConfig } from '../config/schema';
import { parseRoles, type AuthResult, type Identity } from './identity';
import { KeySet } from './jwks';
import { hash } from './credentialHash';
import { Lru } from './lru';

interface CachedToken {
  /** The answer, built once: `{ ok: true, identity }`. */
  result: AuthResult;
  /** ms epoch after which the cached verification no longer holds. */
  until: number;
}

const EXPIRED: AuthResult = { ok: false, reason: 'expired' };

/**
 * The last token verified on a keep-alive connection. A browser sends the same
 * token on every request of a connection, so comparing the string finds the
 * answer without hashing it; the token is held only as long as the client's own
 * connection, never in the shared cache.
 */
const kLast = Symbol('strangler.lastToken');
interface ConnectionMemo {
  verifier: JwtVerifier;
  token: string;
  entry: CachedToken;
}
type MemoSocket = { [kLast]?: ConnectionMemo };

/**
 * Verifies portal session tokens. Algorithms are pinned per key type: HS256
 * only with the shared secret, the configured asymmetric ones only with JWKS
 * keys, `none` never. `exp` is required; `nbf`, `iss`, `aud` enforced with a
 * small clock tolerance. A verified token is cached by its hash until it
 * expires, so the signature is checked once, not on every request.
 */
export class JwtVerifier {
  private readonly secret: KeyObject | undefined;
  readonly keys: KeySet | undefined;
  private readonly cache: Lru<CachedToken>;
  private readonly algorithms: string[];

  constructor(
    private readonly cfg: JwtConfig,
    onKeyError?: (message: string, haveKeys: boolean) => void,
  ) {
    this.secret = cfg.secret === undefined ? undefined : createSecretKey(Buffer.from(cfg.secret, 'utf8'));
    this.keys = cfg.jwksUrl === undefined ? undefined : new KeySet(cfg.jwksUrl, cfg.jwksRefreshMs, cfg.jwksMinRefetchMs, 5000, onKeyError);
    this.cache = new Lru(cfg.cacheSize);
    this.algorithms = [...(this.secret ? ['HS256'] : []), ...(this.keys ? cfg.algorithms : [])];
  }

  start(): void {
    this.keys?.start();
  }

  stop(): void {
    this.keys?.stop();
  }

  /**
   * Cached answer for a token, synchronously; undefined when it must be
   * verified. `connection` (the client's socket) remembers the last token seen on it.
   */
  cached(token: string, connection?: object): AuthResult | undefined {
    const memo = (connection as MemoSocket | undefined)?.[kLast];
    let hit: CachedToken | undefined;
    if (memo !== undefined && memo.token === token && memo.verifier === this) hit = memo.entry;
    else {
      hit = this.cache.get(hash(token));
      if (hit === undefined) return undefined;
      if (connection !== undefined) (connection as MemoSocket)[kLast] = { verifier: this, token, entry: hit };
    }
    if (hit.until <= Date.now()) return EXPIRED;
    return hit.result;
  }

  async verify(token: string): Promise<AuthResult> {
    let alg: string | undefined;
    let kid: string | undefined;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
    } catch {
      return { ok: false, reason: 'invalid', detail: 'malformed token' };
    }
    if (alg === undefined || !this.algorithms.includes(alg)) return { ok: false, reason: 'invalid', detail: `algorithm ${alg ?? 'missing'} not accepted` };
    let key: KeyObject | JWTVerifyGetKey;
    if (alg === 'HS256') key = this.secret!;
    else {
      const resolver = await this.keys!.resolver(kid);
      // No key was ever fetched: the token cannot be checked, which is not the user's fault.
      if (resolver === undefined) return { ok: false, reason: 'unavailable', detail: 'signing keys unavailable' };
      key = resolver;
    }
    try {
      const { payload } = await jwtVerify(token, key as KeyObject, {
        algorithms: [alg],
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        clockTolerance: this.cfg.clockToleranceSec,
        requiredClaims: ['exp'],
      });
      const identity = this.identityOf(payload);
      if (typeof identity === 'string') return { ok: false, reason: 'invalid', detail: identity };
      const result: AuthResult = { ok: true, identity };
      this.cache.set(hash(token), { result, until: payload.exp! * 1000 + this.cfg.clockToleranceSec * 1000 });
      return result;
    } catch (err) {
      if (err instanceof errors.JWTExpired) return EXPIRED;
      if (err instanceof errors.JWKSNoMatchingKey) {
        // A key the gateway could not refetch (the key server is down) cannot be judged: that is not the user's fault.
        if (this.keys?.lastError !== undefined) return { ok: false, reason: 'unavailable', detail: 'unknown signing key, and the key server cannot be reached' };
        return { ok: false, reason: 'invalid', detail: 'unknown signing key' };
      }
      return { ok: false, reason: 'invalid', detail: (err as { code?: string }).code ?? 'verification failed' };
    }
  }

  /** The identity a verified token carries, or why it cannot be used. */
  private identityOf(p: JWTPayload): Identity | string {
    const c = this.cfg.claims;
    const userId = p[c.userId];
    if (typeof userId !== 'string' && typeof userId !== 'number') return `claim ${c.userId} missing`;
    // Roles go upstream comma-separated: a role that holds a separator would read as two roles there.
    const roles = p[c.roles];
    if (Array.isArray(roles) && roles.some((r) => typeof r === 'string' && /[\s,]/.test(r))) return `a role in claim ${c.roles} contains a comma or white space`;
    const email = p[c.email];
    return { userId: String(userId), email: typeof email === 'string' ? email : undefined, roles: parseRoles(p[c.roles]), source: 'jwt', copied: undefined };
  }
}

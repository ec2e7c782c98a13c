import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { cookieValue } from '../core/cookies';
import type { AuthConfig } from '../config/schema';
import { ForwardAuth, type AuthBreaker } from './forward';
import type { AuthResult, Identity } from './identity';
import { InternalTokens } from './internalToken';
import type { JwtVerifier } from './jwt';

export type { AuthResult, Identity } from './identity';
export type { AuthBreaker } from './forward';

const MISSING: AuthResult = { ok: false, reason: 'missing' };

/**
 * Checks the portal session once, at the gateway: a JWT (Authorization:
 * Bearer or a cookie) and/or forward auth. Built when the table loads and
 * kept across reloads while `auth` is unchanged (key cache, answer caches).
 */
export class Authenticator {
  readonly jwt: JwtVerifier | undefined;
  readonly forward: ForwardAuth | undefined;
  readonly internal: InternalTokens | undefined;
  /** Lower-case identity header names, in the order userId, email, roles. */
  private readonly userIdHeader: string;
  private readonly emailHeader: string;
  private readonly rolesHeader: string;
  private readonly internalHeader: string;
  private readonly cookieName: string | undefined;
  private readonly headerPairs = new WeakMap<Identity, string[]>();

  constructor(
    readonly config: AuthConfig,
    forwardBreaker: AuthBreaker | undefined,
    onKeyError?: (message: string, haveKeys: boolean) => void,
  ) {
    // The JWT library is loaded only when tokens are configured.
    this.jwt = config.jwt ? new (loadJwt().JwtVerifier)(config.jwt, onKeyError) : undefined;
    this.forward = config.forward && forwardBreaker ? new ForwardAuth(config.forward, config.identityHeaders, forwardBreaker) : undefined;
    const it = config.internalToken;
    this.internal = it.enabled ? new InternalTokens(it) : undefined;
    this.userIdHeader = config.identityHeaders.userId.toLowerCase();
    this.emailHeader = config.identityHeaders.email.toLowerCase();
    this.rolesHeader = config.identityHeaders.roles.toLowerCase();
    this.internalHeader = it.header.toLowerCase();
    this.cookieName = config.jwt?.cookie;
  }

  start(): void {
    this.jwt?.start();
  }

  stop(): void {
    this.jwt?.stop();
    this.forward?.close();
  }

  /** Headers only the gateway may set: every client-sent copy is stripped, on every route. */
  ownedHeaders(): string[] {
    const names = [this.userIdHeader, this.emailHeader, this.rolesHeader, ...(this.config.forward?.copyHeaders ?? []), 'X-Strangler-Identity'];
    // Dropped from clients whether or not the token is on: a service that checks it must never see a client's copy.
    if (this.internalHeader !== 'authorization') names.push(this.internalHeader);
    return names;
  }

  /** The request's identity: synchronous when the answer is cached, a promise otherwise. */
  authenticate(req: IncomingMessage, requestId: string, originalUri: string): AuthResult | Promise<AuthResult> {
    const h = req.headers;
    if (this.jwt !== undefined) {
      const token = bearer(h.authorization) ?? (this.cookieName ? cookie(h.cookie, this.cookieName) : undefined);
      // Over HTTP/2 the memo is the client's connection's, which all its streams share.
      if (token !== undefined) return this.jwt.cached(token, (req.socket as { tls?: object }).tls ?? req.socket) ?? this.jwt.verify(token);
    }
    if (this.forward !== undefined) {
      if (h.cookie === undefined && h.authorization === undefined) return MISSING;
      const credential = `${h.cookie ?? ''}\n${h.authorization ?? ''}`;
      return this.forward.cached(credential) ?? this.forward.check(credential, req, requestId, originalUri);
    }
    return MISSING;
  }

  /** Sets the identity headers (after the client's copies were stripped). */
  applyIdentity(h: IncomingHttpHeaders, identity: Identity): void {
    // Identities are cached with their token, so their header values are worked out once, not per request.
    let pairs = this.headerPairs.get(identity);
    if (pairs === undefined) {
      pairs = this.identityHeaders(identity);
      this.headerPairs.set(identity, pairs);
    }
    for (let i = 0; i < pairs.length; i += 2) h[pairs[i]!] = pairs[i + 1]!;
    if (this.internal) h[this.internalHeader] = this.internalHeader === 'authorization' ? `Bearer ${this.internal.tokenFor(identity)}` : this.internal.tokenFor(identity);
  }

  /** Lower-case name, value pairs: headers copied from forward auth first, then the identity's own. */
  private identityHeaders(identity: Identity): string[] {
    const pairs: string[] = [];
    if (identity.copied) for (let i = 0; i < identity.copied.length; i += 2) pairs.push(identity.copied[i]!.toLowerCase(), identity.copied[i + 1]!);
    // Forward-auth values arrived as header values and go on byte for byte; token claims are JSON strings.
    const value = identity.source === 'jwt' ? headerValue : same;
    if (identity.userId !== '') pairs.push(this.userIdHeader, value(identity.userId));
    if (identity.email !== undefined) pairs.push(this.emailHeader, value(identity.email));
    if (identity.roles.length) pairs.push(this.rolesHeader, value(identity.roles.join(',')));
    return pairs;
  }
}

function loadJwt(): typeof import('./jwt') {
  return require('./jwt') as typeof import('./jwt');
}

const HEADER_SAFE = /^[\x20-\x7e]*$/;

/**
 * A token claim as a header value. Claims may hold characters a header cannot
 * carry (Node refuses control characters and anything above U+00FF, which made
 * every request of, say, a user with an internationalised email fail as a 502).
 * Printable ASCII goes as is; any other value is sent with every character
 * outside printable ASCII, and `%` itself, percent-encoded as UTF-8
 * (`josé@x` -> `jos%C3%A9@x`), so `decodeURIComponent` gives the claim back.
 */
export function headerValue(v: string): string {
  if (HEADER_SAFE.test(v)) return v;
  return v.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => {
    let out = '';
    for (const b of Buffer.from(c, 'utf8')) out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
    return out;
  });
}

function same(v: string): string {
  return v;
}

function bearer(value: string | undefined): string | undefined {
  if (value === undefined || value.length < 8) return undefined;
  return value.slice(0, 7).toLowerCase() === 'bearer ' ? value.slice(7).trim() || undefined : undefined;
}

function cookie(header: string | undefined, name: string): string | undefined {
  const v = cookieValue(header, name);
  // RFC 6265 allows a cookie value in double quotes; the quotes are not part of the token.
  if (v !== undefined && v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.length === 2 ? undefined : v.slice(1, -1);
  return v;
}

import { Agent, request, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ForwardAuthConfig } from '../config/schema';
import { parseRoles, type AuthResult } from './identity';
import { hash } from './credentialHash';
import { Lru } from './lru';
import { stateOf } from '../core/state';

/** The breaker protecting the auth endpoint (made by the caller: auth does not import resilience). */
export interface AuthBreaker {
  allows(): boolean;
  run(executor: (resolve: () => void, reject: (e: Error & { counts?: boolean }) => void) => void): Promise<unknown>;
}

interface Cached {
  result: AuthResult;
  until: number;
}

const DENY_HEADERS = new Set(['www-authenticate', 'location', 'content-type', 'set-cookie', 'cache-control']);
const MAX_DENY_BODY = 64 * 1024;

/**
 * Forward auth: asks an auth endpoint (the monolith's session check, or an
 * auth service) whether the request's credentials are good. 2xx = yes, with
 * the listed answer headers copied upstream; 401/403 = that answer goes back
 * to the client; anything else, or no answer, = unavailable (503). Answers are
 * cached per credential (hashed) for cacheMs; the endpoint has its own breaker.
 */
export class ForwardAuth {
  private readonly cache: Lru<Cached>;
  private readonly agent: Agent;
  private readonly url: URL;
  private readonly copy: string[];

  constructor(
    private readonly cfg: ForwardAuthConfig,
    private readonly identityHeaders: { userId: string; email: string; roles: string },
    private readonly breaker: AuthBreaker,
  ) {
    this.url = new URL(cfg.url);
    this.agent = this.url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true, timeout: 4000 });
    this.cache = new Lru(cfg.cacheSize);
    this.copy = cfg.copyHeaders.map((h) => h.toLowerCase());
  }

  /** Cached answer, synchronously; undefined when the endpoint must be asked. */
  cached(credential: string): AuthResult | undefined {
    const hit = this.cache.get(hash(credential));
    return hit !== undefined && hit.until > Date.now() ? hit.result : undefined;
  }

  async check(credential: string, req: IncomingMessage, requestId: string, originalUri: string): Promise<AuthResult> {
    if (!this.breaker.allows()) return { ok: false, reason: 'unavailable', detail: 'auth endpoint circuit open' };
    // A recorded request's call has a span of its own; the endpoint gets its id (never the credential as an attribute).
    const span = stateOf(req)?.trace?.child('forward auth', { 'http.request.method': 'GET', 'server.address': this.url.hostname, 'server.port': Number(this.url.port) || (this.url.protocol === 'https:' ? 443 : 80) });
    if (span === undefined) return this.ask(credential, req, requestId, originalUri, undefined);
    let result: AuthResult | undefined;
    try {
      result = await this.ask(credential, req, requestId, originalUri, span.traceparent);
      return result;
    } finally {
      span.set('strangler.auth', result === undefined ? 'unavailable' : result.ok ? 'ok' : result.reason);
      if (result !== undefined && !result.ok && result.deny !== undefined) span.set('http.response.status_code', result.deny.status);
      span.end(result === undefined || (!result.ok && result.reason === 'unavailable') ? 'AUTH_UNAVAILABLE' : undefined);
    }
  }

  private async ask(credential: string, req: IncomingMessage, requestId: string, originalUri: string, traceparent: string | undefined): Promise<AuthResult> {
    let answer: { status: number; headers: IncomingMessage['headers']; raw: string[]; body: Buffer } | undefined;
    await this.breaker.run((resolve, reject) => {
      const headers: Record<string, string> = { 'x-request-id': requestId, 'x-forwarded-method': req.method ?? 'GET', 'x-forwarded-uri': originalUri };
      if (req.headers.cookie) headers.cookie = req.headers.cookie;
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
      if (traceparent !== undefined) headers.traceparent = traceparent;
      const send = this.url.protocol === 'https:' ? httpsRequest : request;
      const out = send(this.url, { method: 'GET', headers, agent: this.agent, timeout: this.cfg.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_DENY_BODY) chunks.push(c);
        });
        res.on('end', () => {
          answer = { status: res.statusCode ?? 502, headers: res.headers, raw: res.rawHeaders, body: Buffer.concat(chunks) };
          // Any 5xx means no answer about the session; only breaker.failureStatuses count toward opening.
          if (answer.status >= 500) reject(Object.assign(new Error(`auth endpoint answered ${answer.status}`), { counts: this.cfg.breaker.failureStatuses.includes(answer.status) }));
          else resolve();
        });
        res.on('error', reject);
      });
      out.on('timeout', () => out.destroy(new Error('auth endpoint timed out')));
      out.on('error', (e) => reject(Object.assign(e, { counts: true })));
      out.end();
    });
    if (answer === undefined || answer.status >= 500) return { ok: false, reason: 'unavailable', detail: 'auth endpoint unavailable' };
    let result: AuthResult;
    if (answer.status >= 200 && answer.status < 300) {
      const copied: string[] = [];
      for (let i = 0; i < answer.raw.length; i += 2) if (this.copy.includes(answer.raw[i]!.toLowerCase())) copied.push(answer.raw[i]!, answer.raw[i + 1]!);
      const h = answer.headers;
      const pick = (name: string) => {
        const v = h[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v;
      };
      result = {
        ok: true,
        identity: { userId: pick(this.identityHeaders.userId) ?? '', email: pick(this.identityHeaders.email), roles: parseRoles(pick(this.identityHeaders.roles)), source: 'forward', copied },
      };
    } else if (answer.status === 401 || answer.status === 403) {
      const headers: string[] = [];
      for (let i = 0; i < answer.raw.length; i += 2) if (DENY_HEADERS.has(answer.raw[i]!.toLowerCase())) headers.push(answer.raw[i]!, answer.raw[i + 1]!);
      result = { ok: false, reason: 'denied', deny: { status: answer.status, headers, body: answer.body } };
    } else {
      return { ok: false, reason: 'unavailable', detail: `auth endpoint answered ${answer.status}` };
    }
    // Cached per credential: a session is good or bad whatever the URI. A 403 is not about the
    // session but about this request (the endpoint sees method and URI), so it is never reused.
    if (this.cfg.cacheMs > 0 && (result.ok || result.deny?.status !== 403)) this.cache.set(hash(credential), { result, until: Date.now() + this.cfg.cacheMs });
    return result;
  }

  close(): void {
    this.agent.destroy();
  }
}

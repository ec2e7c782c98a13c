import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { authenticating } from '../observability/tracing';

/**
 * A JWKS kept in memory. Fetched at start and refreshed in the background; a
 * token with an unknown `kid` triggers one refetch (throttled). When the key
 * server is down, the keys already fetched keep working — jose's own remote
 * set throws once its cache is stale, which would turn a key-server outage
 * into a login outage.
 */
export class KeySet {
  private getKey: JWTVerifyGetKey | undefined;
  private kids = new Set<string>();
  private lastFetch = 0;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;

  constructor(
    private readonly url: string,
    private readonly refreshMs: number,
    private readonly minRefetchMs: number,
    private readonly timeoutMs = 5000,
    /** Told when a fetch fails (the keys already held keep working). */
    private readonly onError: (message: string, haveKeys: boolean) => void = () => undefined,
  ) {}

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get ready(): boolean {
    return this.getKey !== undefined;
  }

  /** Keys for verification; refetches once (throttled) when `kid` is unknown. Undefined: no keys could ever be fetched. */
  async resolver(kid: string | undefined): Promise<JWTVerifyGetKey | undefined> {
    if (this.getKey === undefined || (kid !== undefined && !this.kids.has(kid) && Date.now() - this.lastFetch >= this.minRefetchMs)) {
      await this.refresh();
    }
    return this.getKey;
  }

  refresh(): Promise<void> {
    this.inflight ??= this.fetchOnce().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async fetchOnce(): Promise<void> {
    this.lastFetch = Date.now();
    // A fetch a recorded request started (a token with a key not seen yet) is traced under it; a periodic refresh is not.
    const span = authenticating.trace?.child('jwks fetch', { 'http.request.method': 'GET', 'server.address': new URL(this.url).hostname });
    try {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (span !== undefined) headers.traceparent = span.traceparent;
      const res = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs), headers });
      span?.set('http.response.status_code', res.status);
      if (!res.ok) throw new Error(`key server answered ${res.status}`);
      const jwks = (await res.json()) as JSONWebKeySet;
      if (!Array.isArray(jwks.keys)) throw new Error('key server answered without "keys"');
      this.getKey = createLocalJWKSet(jwks);
      this.kids = new Set(jwks.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string'));
      this.lastError = undefined;
      span?.end();
    } catch (err) {
      span?.end('JWKS_UNAVAILABLE');
      // Keep the keys we have.
      this.lastError = (err as Error).message;
      this.onError(this.lastError, this.getKey !== undefined);
    }
  }
}

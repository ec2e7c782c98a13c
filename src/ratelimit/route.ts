import type { IncomingMessage } from 'node:http';
import type { RateLimitConfig } from '../config/schema';
import { LocalLimiter, type Decision, type Policy } from './gcra';

/** Where shared allowances come from (Redis); undefined from it means "decide locally". */
export interface SharedLimiter {
  lease(key: string, policy: Policy, want: number): Promise<{ granted: number; remaining: number; resetSeconds: number } | undefined>;
}

/**
 * A lease is a twentieth of the allowance (at least 1): a replica spends it
 * locally, with one Redis round trip per lease instead of per request. A
 * lease not spent within LEASE_MS is given up (its requests are not made up
 * elsewhere): replicas may admit a little less than the limit, never more.
 */
const LEASE_SHARE = 20;
const LEASE_MS = 1_000;

interface Lease {
  tokens: number;
  until: number;
  /** Shared allowance left after this lease was granted (for the RateLimit header). */
  remaining: number;
  /** Redis refused: requests are refused here until `until`. */
  blocked: boolean;
}

/**
 * One route's rate limit: whose allowance a request uses, and the decision,
 * shared across replicas when Redis is configured and reachable, local to
 * this process otherwise.
 */
export class RouteLimiter {
  readonly local: LocalLimiter;
  private readonly header: string | undefined;
  /** The IETF RateLimit-Policy header value, made once. */
  readonly policyHeader: string;
  /** Shared allowance taken per Redis round trip, and what is left of each key's lease. */
  private readonly leaseSize: number;
  private readonly leases = new Map<string, Lease>();
  /** Lease requests in flight, by key: true once a lease (or a refusal) is in, false when Redis is away. */
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(
    readonly route: string,
    readonly config: RateLimitConfig,
    private readonly shared: SharedLimiter | undefined,
  ) {
    this.local = new LocalLimiter(config);
    this.header = config.key.startsWith('header:') ? config.key.slice(7).toLowerCase() : undefined;
    this.policyHeader = `"${config.key.replace(/[^A-Za-z0-9_-]/g, '-')}";q=${config.limit + config.burst};w=${Math.max(1, Math.round(config.windowMs / 1000))}`;
    this.leaseSize = Math.max(1, Math.floor((config.limit + config.burst) / LEASE_SHARE));
  }

  /**
   * A `header:<Name>` key's value, read from the client's own headers before
   * the gateway edits them (credentials may be dropped, edits applied).
   */
  headerKeyOf(req: IncomingMessage): string | undefined {
    if (this.header === undefined) return undefined;
    const v = req.headers[this.header];
    const value = Array.isArray(v) ? v[0] : v;
    return value === undefined || value === '' ? undefined : `h:${value}`;
  }

  /**
   * The client's key: its verified user (else its IP), its IP, a header's
   * value (else its IP), or the route as a whole. Called once the gateway has
   * set X-Forwarded-For, so a client cannot choose its IP.
   */
  keyOf(req: IncomingMessage, userId: string | undefined, headerKey?: string): string {
    const k = this.config.key;
    if (k === 'route') return 'route';
    if (this.header !== undefined && headerKey !== undefined) return headerKey;
    if (k === 'user' && userId !== undefined) return `u:${userId}`;
    return `ip:${clientIp(req)}`;
  }

  decide(key: string, now = Date.now()): Decision | Promise<Decision> {
    if (this.shared === undefined) return this.local.take(key, now);
    const spent = this.spend(key, now);
    if (spent !== undefined) return spent;
    // One lease request per key at a time: requests arriving meanwhile wait for it and spend from it.
    let pending = this.pending.get(key);
    if (pending === undefined) {
      pending = this.shared.lease(`${this.route}:${key}`, this.config, this.leaseSize).then(
        (l) => {
          this.pending.delete(key);
          if (this.leases.size >= 100_000) this.leases.clear();
          if (l === undefined) this.leases.delete(key);
          else if (l.granted === 0) this.leases.set(key, { tokens: 0, until: Date.now() + Math.min(LEASE_MS, l.resetSeconds * 1000), remaining: 0, blocked: true });
          else this.leases.set(key, { tokens: l.granted, until: Date.now() + LEASE_MS, remaining: l.remaining, blocked: false });
          return l !== undefined;
        },
        () => {
          this.pending.delete(key);
          return false;
        },
      );
      this.pending.set(key, pending);
    }
    return pending.then((reachable) => {
      // Redis away: this replica's own count decides.
      if (!reachable) return this.local.take(key);
      return this.spend(key, Date.now()) ?? this.decide(key);
    });
  }

  /** A decision from the key's lease, or undefined when a new lease is needed. */
  private spend(key: string, now: number): Decision | undefined {
    const lease = this.leases.get(key);
    if (lease === undefined || lease.until <= now) return undefined;
    if (lease.tokens > 0) {
      lease.tokens--;
      return { allowed: true, remaining: lease.remaining + lease.tokens, resetSeconds: 0 };
    }
    // Refused by Redis a moment ago: refused here until its next request is due, without asking again.
    if (lease.blocked) return { allowed: false, remaining: 0, resetSeconds: Math.max(1, Math.ceil((lease.until - now) / 1000)) };
    return undefined;
  }
}

/** The client's address: the first X-Forwarded-For entry, as the gateway set it (a trusted proxy's chain, or the peer). */
function clientIp(req: IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  const first = typeof xff === 'string' ? xff.split(',')[0]!.trim() : undefined;
  return first || req.socket.remoteAddress || 'unknown';
}

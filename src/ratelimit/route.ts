import type { IncomingMessage } from 'node:http';
import type { RateLimitConfig } from '../config/schema';
import { LocalLimiter, type Decision, type Policy } from './gcra';

/** Where a shared decision comes from (Redis); undefined from it means "decide locally". */
export interface SharedLimiter {
  take(key: string, policy: Policy): Promise<Decision | undefined>;
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

  constructor(
    readonly route: string,
    readonly config: RateLimitConfig,
    private readonly shared: SharedLimiter | undefined,
  ) {
    this.local = new LocalLimiter(config);
    this.header = config.key.startsWith('header:') ? config.key.slice(7).toLowerCase() : undefined;
    this.policyHeader = `"${config.key.replace(/[^A-Za-z0-9_-]/g, '-')}";q=${config.limit + config.burst};w=${Math.max(1, Math.round(config.windowMs / 1000))}`;
  }

  /** The client's key: its verified user (else its IP), its IP, a header's value, or the route as a whole. */
  keyOf(req: IncomingMessage, userId: string | undefined): string {
    const k = this.config.key;
    if (k === 'route') return 'route';
    if (this.header !== undefined) {
      const v = req.headers[this.header];
      return `h:${Array.isArray(v) ? v[0] : (v ?? '')}`;
    }
    if (k === 'user' && userId !== undefined) return `u:${userId}`;
    return `ip:${clientIp(req)}`;
  }

  decide(key: string): Decision | Promise<Decision> {
    if (this.shared === undefined) return this.local.take(key);
    return this.shared.take(`${this.route}:${key}`, this.config).then((d) => d ?? this.local.take(key));
  }
}

/** The client's address: the first X-Forwarded-For entry, as the gateway set it (a trusted proxy's chain, or the peer). */
function clientIp(req: IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  const first = typeof xff === 'string' ? xff.split(',')[0]!.trim() : undefined;
  return first || req.socket.remoteAddress || 'unknown';
}

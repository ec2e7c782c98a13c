/**
 * GCRA (the generic cell rate algorithm, as in ATM networks and Redis
 * rate limiters): one number per key, the theoretical arrival time (TAT) of
 * the next request. `limit + burst` requests may arrive at once; after that
 * one more every `windowMs / limit`. Exact, O(1), no timers.
 */

export interface Policy {
  readonly limit: number;
  readonly windowMs: number;
  readonly burst: number;
}

export interface Decision {
  allowed: boolean;
  /** Requests left now (the IETF RateLimit `r`). */
  remaining: number;
  /** Seconds until the allowance is whole again (`t`), or until the next request is allowed when refused (Retry-After). */
  resetSeconds: number;
}

/** Decides one request for a key whose TAT is `tat` (0 when unseen); returns the decision and the new TAT. */
export function gcra(p: Policy, tat: number, now: number): { decision: Decision; tat: number } {
  const interval = p.windowMs / p.limit;
  const capacity = p.limit + p.burst;
  const tolerance = interval * (capacity - 1);
  const start = Math.max(tat, now);
  const next = start + interval;
  if (next - now > tolerance + interval) {
    // Refused: the TAT does not move.
    return { decision: { allowed: false, remaining: 0, resetSeconds: Math.max(1, Math.ceil((start - tolerance - now) / 1000)) }, tat };
  }
  const remaining = Math.max(0, Math.floor((tolerance + interval - (next - now)) / interval));
  return { decision: { allowed: true, remaining, resetSeconds: Math.max(0, Math.ceil((next - now) / 1000)) }, tat: next };
}

/** The most keys a local limiter holds before it drops the ones whose allowance is whole again. */
const MAX_KEYS = 100_000;

/**
 * A per-process limiter: a map of TATs. A key whose TAT has passed is at full
 * allowance and is dropped when the map grows, so memory stays bounded by
 * the number of clients active within one window.
 */
export class LocalLimiter {
  private readonly tats = new Map<string, number>();

  constructor(readonly policy: Policy) {}

  take(key: string, now = Date.now()): Decision {
    const r = gcra(this.policy, this.tats.get(key) ?? 0, now);
    if (r.decision.allowed) {
      if (this.tats.size >= MAX_KEYS && !this.tats.has(key)) this.sweep(now);
      this.tats.set(key, r.tat);
    }
    return r.decision;
  }

  private sweep(now: number): void {
    for (const [k, tat] of this.tats) if (tat <= now) this.tats.delete(k);
    // Still full: the oldest entries go (Map keeps insertion order).
    if (this.tats.size >= MAX_KEYS) {
      let n = this.tats.size - MAX_KEYS + 1;
      for (const k of this.tats.keys()) {
        if (n-- <= 0) break;
        this.tats.delete(k);
      }
    }
  }

  get size(): number {
    return this.tats.size;
  }
}

/**
 * Up to `want` requests at once from a key's allowance (a lease), as the
 * Redis script does it: as many as fit are granted and the TAT moves by that
 * many intervals. `granted: 0` is a refusal (the TAT does not move).
 */
export function gcraLease(p: Policy, tat: number, now: number, want: number): { granted: number; remaining: number; resetSeconds: number; tat: number } {
  const interval = p.windowMs / p.limit;
  const tolerance = interval * (p.limit + p.burst - 1);
  const start = Math.max(tat, now);
  const fit = Math.floor((tolerance + interval - (start - now)) / interval);
  if (fit < 1) return { granted: 0, remaining: 0, resetSeconds: Math.max(1, Math.ceil((start - tolerance - now) / 1000)), tat };
  const granted = Math.min(want, fit);
  const next = start + granted * interval;
  return { granted, remaining: fit - granted, resetSeconds: Math.ceil((next - now) / 1000), tat: next };
}

/** Leases from per-key TATs kept in this process (the primary of server.workers lends them to its workers). */
export class LeaseBank {
  private readonly tats = new Map<string, number>();

  lease(key: string, p: Policy, want: number, now = Date.now()): { granted: number; remaining: number; resetSeconds: number } {
    const r = gcraLease(p, this.tats.get(key) ?? 0, now, want);
    if (r.granted > 0) {
      if (this.tats.size >= MAX_KEYS && !this.tats.has(key)) {
        for (const [k, tat] of this.tats) if (tat <= now) this.tats.delete(k);
        if (this.tats.size >= MAX_KEYS) this.tats.clear();
      }
      this.tats.set(key, r.tat);
    }
    return { granted: r.granted, remaining: r.remaining, resetSeconds: r.resetSeconds };
  }
}

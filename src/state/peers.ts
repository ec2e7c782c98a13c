import type { Policy } from '../ratelimit/gcra';
import type { SharedLimiter } from '../ratelimit/route';

/**
 * What a gateway shares with the other processes serving the same table:
 * the other replicas (through Redis, state.redis) or the other workers of
 * its replica (through the primary, server.workers). Either way the calls
 * are the same, and each has a local answer when the others cannot be reached.
 */

/** A canary event as processes exchange it: the newest one wins. */
export interface CanaryEvent {
  route: string;
  kind: 'rolled-back' | 'reset' | 'ramp';
  /** ms since the epoch, set by the process that decided. */
  at: number;
  reason?: string;
  errorPercent?: number;
  requests?: number;
  /** Ramp events: the step reached, and when the next may come. */
  step?: number;
  nextStepAt?: number;
}

export interface CanaryCounts {
  route: string;
  requests: number;
  failures: number;
}

export interface Peers extends SharedLimiter {
  /** Canary routes whose counts this process shares, and where it reads them (set by the gateway). */
  countsSource: (() => CanaryCounts[]) | undefined;
  /** A canary event decided here: announced to the others. */
  canaryEvent(e: CanaryEvent): void;
  /** The others' canary-side counts for a route, as last heard (zero while they cannot be reached). */
  remoteCounts(route: string): { requests: number; failures: number };
  /** Redis reachability (state.redis); undefined when the peers are not reached through Redis. */
  status(): { redis: 'connected' | 'unavailable'; detail: string } | undefined;
  close(): void;
}

/** Rollback and reset of a route replace each other; its ramp position is kept apart. */
export function slot(e: CanaryEvent): string {
  return e.kind === 'ramp' ? `${e.route}:ramp` : e.route;
}

/** Remembers the newest canary event per slot: an event is taken only if it is newer than what is known. */
export class NewestEvents {
  private readonly seen = new Map<string, number>();

  /** Marks an event as known; false when it is malformed or not newer than one already known. */
  take(e: CanaryEvent): boolean {
    if (typeof e?.route !== 'string' || typeof e.at !== 'number' || (e.kind !== 'rolled-back' && e.kind !== 'reset' && e.kind !== 'ramp')) return false;
    if ((this.seen.get(slot(e)) ?? 0) >= e.at) return false;
    this.seen.set(slot(e), e.at);
    return true;
  }
}

/** Sums count reports heard from others (each with when it was made), skipping those older than 3 s: a process that stopped reporting is gone. */
export function sumFresh(reports: Iterable<{ requests: number; failures: number; at: number }>, now: number): { requests: number; failures: number } {
  let requests = 0;
  let failures = 0;
  for (const v of reports) {
    if (now - v.at > 3_000) continue;
    requests += v.requests;
    failures += v.failures;
  }
  return { requests, failures };
}

export type { Policy };

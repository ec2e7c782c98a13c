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

/**
 * Numbers a process shares about one route once a second, summed over the
 * others by whoever reads them: plain numbers, arrays of numbers (histogram
 * buckets) and records of numbers (per-field counts) add up key by key.
 */
export type Counts = Record<string, number | number[] | Record<string, number>>;

export interface SharedCounts {
  /** `canary:<route>` (what the rollback and ramp rules judge) or `shadow:<route>` (the noise learnt). */
  key: string;
  counts: Counts;
}

export interface Peers extends SharedLimiter {
  /** What this process shares once a second, and where it reads it (set by the gateway). */
  countsSource: (() => SharedCounts[]) | undefined;
  /** A canary event decided here: announced to the others. */
  canaryEvent(e: CanaryEvent): void;
  /** The others' counts under a key, summed, as last heard; undefined when none (or they cannot be reached). */
  remoteCounts(key: string): Counts | undefined;
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

/** Adds `from` into `into`, key by key (numbers, arrays element by element, records field by field). */
export function addCounts(into: Counts, from: Counts): Counts {
  for (const [k, v] of Object.entries(from)) {
    const have = into[k];
    if (typeof v === 'number') into[k] = (typeof have === 'number' ? have : 0) + v;
    else if (Array.isArray(v)) {
      const sum = Array.isArray(have) ? have : new Array<number>(v.length).fill(0);
      for (let i = 0; i < v.length; i++) sum[i] = (sum[i] ?? 0) + (typeof v[i] === 'number' ? v[i]! : 0);
      into[k] = sum;
    } else if (v !== null && typeof v === 'object') {
      const sum = have !== undefined && typeof have === 'object' && !Array.isArray(have) ? have : {};
      for (const [f, n] of Object.entries(v)) if (typeof n === 'number') sum[f] = (sum[f] ?? 0) + n;
      into[k] = sum;
    }
  }
  return into;
}

/** Sums count reports heard from others (each with when it was made), skipping those older than 3 s: a process that stopped reporting is gone. */
export function sumFresh(reports: Iterable<{ counts: Counts; at: number }>, now: number): Counts | undefined {
  let sum: Counts | undefined;
  for (const v of reports) {
    if (now - v.at > 3_000) continue;
    sum = addCounts(sum ?? {}, v.counts);
  }
  return sum;
}

export type { Policy };

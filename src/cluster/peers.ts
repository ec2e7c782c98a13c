import type { Policy } from '../ratelimit/gcra';
import { NewestEvents, type CanaryEvent, type Counts, type Peers, type SharedCounts } from '../state/peers';
import type { FromWorker, ToWorker } from './protocol';
import { Replies } from './replies';

/** Counts go to the primary this often (the rollback rule's window is ten seconds or more). */
const COUNTS_MS = 1_000;
/** A lease the primary has not granted in this time is decided locally. */
const LEASE_TIMEOUT_MS = 250;

/**
 * A worker's link to the other workers of its replica, through the primary:
 * canary decisions go out and come in (newest wins), canary-side counts are
 * reported once a second and the others' sums come back, rate-limit
 * allowance is leased from the primary. Used when no Redis is configured
 * (with Redis, each worker is a replica of its own there).
 */
export class ClusterPeers implements Peers {
  countsSource: (() => SharedCounts[]) | undefined = undefined;
  private others = new Map<string, Counts>();
  private othersAt = 0;
  private readonly seen = new NewestEvents();
  private readonly leases = new Replies<{ granted: number; remaining: number; resetSeconds: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly send: (m: FromWorker) => void,
    private readonly adopt: (e: CanaryEvent) => void,
  ) {
    this.timer = setInterval(() => {
      const counts = this.countsSource?.() ?? [];
      if (counts.length > 0) this.send({ t: 'counts', counts });
    }, COUNTS_MS);
    this.timer.unref();
  }

  /** A message from the primary meant for the peers (false: not one). */
  receive(m: ToWorker): boolean {
    switch (m.t) {
      case 'canary':
        if (this.seen.take(m.e)) this.adopt(m.e);
        return true;
      case 'counts':
        this.others = new Map(Object.entries(m.others));
        this.othersAt = Date.now();
        return true;
      case 'lease':
        this.leases.answer(m.id, m.r);
        return true;
      default:
        return false;
    }
  }

  canaryEvent(e: CanaryEvent): void {
    this.seen.take(e);
    this.send({ t: 'canary', e });
  }

  remoteCounts(key: string): Counts | undefined {
    // Not heard from the primary for 3 s: the others' counts are too old to judge by.
    if (Date.now() - this.othersAt > 3_000) return undefined;
    return this.others.get(key);
  }

  lease(key: string, p: Policy, want: number): Promise<{ granted: number; remaining: number; resetSeconds: number } | undefined> {
    return this.leases.ask((id) => this.send({ t: 'lease', id, key, p: { limit: p.limit, windowMs: p.windowMs, burst: p.burst }, want }), LEASE_TIMEOUT_MS, undefined);
  }

  status(): undefined {
    return undefined;
  }

  close(): void {
    clearInterval(this.timer);
    this.leases.drop();
  }
}

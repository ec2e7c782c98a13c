/** Latency bucket upper bounds in ms (log-ish scale); the last bucket is open-ended. */
const BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, Infinity];

class Slot {
  start = 0;
  requests = 0;
  failures = 0;
  readonly latency = new Array<number>(BOUNDS.length).fill(0);
  reset(start: number): void {
    this.start = start;
    this.requests = 0;
    this.failures = 0;
    this.latency.fill(0);
  }
}

export interface WindowStats {
  requests: number;
  failures: number;
  errorPercent: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

/**
 * Rolling-window counts of one side of a canary: requests, failures and a
 * latency histogram in ten time slots. Recording is O(1) and allocation-free;
 * percentiles are estimated from the histogram (bucket upper bound).
 */
export class RollingWindow {
  private readonly slots: Slot[];
  private readonly slotMs: number;

  constructor(
    windowMs: number,
    private readonly now: () => number,
  ) {
    this.slotMs = Math.max(1, Math.ceil(windowMs / 10));
    this.slots = Array.from({ length: 10 }, () => new Slot());
  }

  private slot(t: number): Slot {
    const start = t - (t % this.slotMs);
    const s = this.slots[Math.floor(start / this.slotMs) % 10]!;
    if (s.start !== start) s.reset(start);
    return s;
  }

  /** Forgets every request recorded so far. */
  clear(): void {
    for (const s of this.slots) s.reset(0);
  }

  record(failed: boolean, ms: number): void {
    const s = this.slot(this.now());
    s.requests++;
    if (failed) s.failures++;
    let i = 0;
    while (ms > BOUNDS[i]!) i++;
    s.latency[i]!++;
  }

  /** The window's sums: requests, failures and the latency histogram (what other processes add to theirs). */
  sums(): WindowSums {
    const t = this.now();
    const oldest = t - t % this.slotMs - 9 * this.slotMs;
    let requests = 0;
    let failures = 0;
    const latency = new Array<number>(BOUNDS.length).fill(0);
    for (const s of this.slots) {
      if (s.start < oldest || s.requests === 0) continue;
      requests += s.requests;
      failures += s.failures;
      for (let i = 0; i < latency.length; i++) latency[i]! += s.latency[i]!;
    }
    return { requests, failures, latency };
  }

  /** This window's stats, with other processes' sums added when given. */
  stats(others?: Partial<WindowSums>): WindowStats {
    return statsOf(this.sums(), others);
  }
}

export interface WindowSums {
  requests: number;
  failures: number;
  latency: number[];
}

function statsOf(own: WindowSums, others?: Partial<WindowSums>): WindowStats {
  let { requests, failures, latency } = own;
  if (others !== undefined) {
    requests += typeof others.requests === 'number' ? others.requests : 0;
    failures += typeof others.failures === 'number' ? others.failures : 0;
    const theirs = others.latency;
    if (Array.isArray(theirs)) latency = latency.map((n, i) => n + (typeof theirs[i] === 'number' ? theirs[i] : 0));
  }
  return {
    requests,
    failures,
    errorPercent: requests === 0 ? 0 : Math.round((failures / requests) * 10000) / 100,
    p50Ms: percentile(latency, requests, 0.5),
    p95Ms: percentile(latency, requests, 0.95),
  };
}

function percentile(hist: number[], total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.ceil(total * q);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return BOUNDS[i] === Infinity ? BOUNDS[i - 1]! : BOUNDS[i]!;
  }
  return null;
}

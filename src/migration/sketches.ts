/**
 * Fixed-size summaries for counting traffic without growing with it:
 * space-saving top-k (the legacy inventory), HyperLogLog (distinct users) and
 * a log-bucket latency histogram (p95).
 */

/** An entry of a space-saving summary: `count` may overestimate by at most `error`. */
export interface Counted {
  key: string;
  count: number;
  /** The count the entry inherited when it replaced the least counted one. */
  error: number;
  /** Its position in the heap (maintained by the summary). */
  heapIndex: number;
}

/**
 * Metwally et al.'s space-saving: at most `capacity` keys are counted; a new
 * key replaces the least counted one and inherits its count (as `error`), so
 * every key counted more than total/capacity times is kept. A min-heap on
 * count makes each update O(log capacity).
 */
export class SpaceSaving<E extends Counted> {
  private readonly byKey = new Map<string, E>();
  private readonly heap: E[] = [];
  total = 0;

  constructor(
    readonly capacity: number,
    private readonly create: (key: string) => E,
    /** Clears an entry for reuse by a new key (keeps allocations fixed). */
    private readonly recycle: (entry: E, key: string) => void,
  ) {}

  /** Counts one occurrence of `key`; returns its entry. */
  add(key: string): E {
    this.total++;
    return this.addWeighted(key, 1, 0);
  }

  /**
   * Adds a count made elsewhere (another process's summary): `count`
   * occurrences of which up to `error` may be over-counted. A new key takes
   * the least counted entry's place when full, inheriting its count as error.
   * The total is not changed: the caller adds the other summary's total.
   */
  addWeighted(key: string, count: number, error: number): E {
    let e = this.byKey.get(key);
    if (e !== undefined) {
      e.count += count;
      e.error += error;
      this.down(e.heapIndex);
      return e;
    }
    if (this.heap.length < this.capacity) {
      e = this.create(key);
      e.key = key;
      e.count = count;
      e.error = error;
      e.heapIndex = this.heap.length;
      this.heap.push(e);
      this.byKey.set(key, e);
      this.up(e.heapIndex);
      return e;
    }
    e = this.heap[0]!;
    this.byKey.delete(e.key);
    const inherited = e.count;
    this.recycle(e, key);
    e.key = key;
    e.error = inherited + error;
    e.count = inherited + count;
    this.byKey.set(key, e);
    this.down(0);
    return e;
  }

  get(key: string): E | undefined {
    return this.byKey.get(key);
  }

  /** Entries by count, highest first. */
  sorted(): E[] {
    return [...this.heap].sort((a, b) => b.count - a.count);
  }

  get size(): number {
    return this.heap.length;
  }

  clear(): void {
    this.byKey.clear();
    this.heap.length = 0;
    this.total = 0;
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.count <= h[i]!.count) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < h.length && h[l]!.count < h[least]!.count) least = l;
      if (r < h.length && h[r]!.count < h[least]!.count) least = r;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }

  private swap(a: number, b: number): void {
    const h = this.heap;
    const x = h[a]!;
    h[a] = h[b]!;
    h[b] = x;
    h[a]!.heapIndex = a;
    h[b]!.heapIndex = b;
  }
}

/** FNV-1a, then a murmur3 finaliser: a well-mixed 32-bit hash of a string, cheap for short ids. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * HyperLogLog (Flajolet et al.) with 2^p one-byte registers: distinct
 * counts within about 1.04/sqrt(2^p) (p = 10: 1 KiB, ±3%), in fixed memory.
 */
export class HyperLogLog {
  readonly registers: Uint8Array;
  private readonly p: number;

  constructor(p = 10) {
    this.p = p;
    this.registers = new Uint8Array(1 << p);
  }

  add(value: string): void {
    this.addHash(hash32(value));
  }

  /** Adds a value already hashed with hash32 (one hash serves several sketches). */
  addHash(h: number): void {
    const index = h >>> (32 - this.p);
    // Rank of the first 1 bit in the remaining bits (1-based); all zero counts as the longest run.
    const rest = (h << this.p) >>> 0;
    const rank = rest === 0 ? 32 - this.p + 1 : Math.clz32(rest) + 1;
    if (rank > this.registers[index]!) this.registers[index] = rank;
  }

  /** Adds another sketch's registers (same p) into this one. */
  merge(other: HyperLogLog): void {
    const r = this.registers;
    const o = other.registers;
    for (let i = 0; i < r.length; i++) if (o[i]! > r[i]!) r[i] = o[i]!;
  }

  count(): number {
    const m = this.registers.length;
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < m; i++) {
      const v = this.registers[i]!;
      sum += 2 ** -v;
      if (v === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / m);
    const estimate = (alpha * m * m) / sum;
    // Small range: linear counting is more accurate while registers are still empty.
    if (estimate <= 2.5 * m && zeros > 0) return Math.round(m * Math.log(m / zeros));
    return Math.round(estimate);
  }

  clear(): void {
    this.registers.fill(0);
  }
}

/** Latency buckets: bucket i holds durations up to 2^(i/2) × 0.1 ms (about 41% apart), 40 buckets reach past 100 s. */
export const LATENCY_BUCKETS = 40;

export function latencyBucket(ms: number): number {
  if (ms <= 0.1) return 0;
  const i = Math.ceil(2 * Math.log2(ms / 0.1));
  return i >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : i;
}

/** The upper bound of the bucket holding quantile `q` of the counts (ms), or null when there are none. */
export function latencyQuantile(counts: ArrayLike<number>, q: number, offset = 0): number | null {
  let total = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) total += counts[offset + i]!;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) {
    seen += counts[offset + i]!;
    if (seen >= rank) return Math.round(0.1 * 2 ** (i / 2) * 100) / 100;
  }
  return null;
}

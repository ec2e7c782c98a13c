import { hash32, HyperLogLog, LATENCY_BUCKETS, latencyBucket, latencyQuantile, SpaceSaving, type Counted } from './sketches';
import { PathTemplater } from './templates';

/**
 * How far the migration is: requests answered by legacy and by new upstreams,
 * per route and overall, in one-minute buckets for 24 hours; distinct users
 * on each side; and the inventory of what the legacy upstreams still answer,
 * as path templates. Fixed memory: rings, sketches and a bounded top-k.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const MINUTES = 1440;
const HOURS = 24;
/** Per bucket: legacy answers, new answers, errors (5xx, either side). */
const FIELDS = 3;
const LEGACY = 0;
const NEW = 1;
const ERRORS = 2;
/** Paths whose template is remembered at most (about 200 KB). */
const TEMPLATE_CACHE = 2000;
/** "Now" is the last five minutes (the current one still filling). */
const NOW_MINUTES = 5;

/** A ring of time buckets, each FIELDS counters wide; a bucket is zeroed when time comes round to it again. */
class Ring {
  readonly counts: Uint32Array;
  /** The absolute bucket number (ms / size) written last. */
  private last = -1;

  constructor(
    private readonly size: number,
    private readonly bucketMs: number,
  ) {
    this.counts = new Uint32Array(size * FIELDS);
  }

  /** The offset of the bucket for `now`, after zeroing the buckets skipped since the last write. */
  at(now: number): number {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket !== this.last) this.advance(bucket);
    return (bucket % this.size) * FIELDS;
  }

  private advance(bucket: number): void {
    if (this.last === -1 || bucket - this.last >= this.size) this.counts.fill(0);
    else for (let b = this.last + 1; b <= bucket; b++) this.counts.fill(0, (b % this.size) * FIELDS, (b % this.size) * FIELDS + FIELDS);
    this.last = Math.max(bucket, this.last);
  }

  get lastBucket(): number {
    return this.last;
  }

  /** Adds another ring's buckets (another process's counts of the same thing), aligned by time. */
  absorb(counts: Uint32Array, last: number): void {
    if (last === -1) return;
    if (last > this.last) this.advance(last);
    for (let b = Math.max(last, this.last) - this.size + 1; b <= last; b++) {
      if (b <= last - this.size) continue;
      const o = (b % this.size) * FIELDS;
      for (let f = 0; f < FIELDS; f++) this.counts[o + f]! += counts[o + f]!;
    }
  }

  /** Sums of the last `n` buckets up to `now` (skipped buckets count as zero). */
  sum(now: number, n: number): [number, number, number] {
    const bucket = Math.floor(now / this.bucketMs);
    const out: [number, number, number] = [0, 0, 0];
    for (let b = bucket - n + 1; b <= bucket; b++) {
      if (b > this.last || b <= this.last - this.size) continue;
      const o = (b % this.size) * FIELDS;
      out[0] += this.counts[o]!;
      out[1] += this.counts[o + 1]!;
      out[2] += this.counts[o + 2]!;
    }
    return out;
  }
}

/** One route's counts; allocated when the route answers its first request. */
class RouteTraffic {
  readonly minutes = new Ring(MINUTES, MINUTE_MS);
  readonly hours = new Ring(HOURS, HOUR_MS);
  /** Distinct users per side, this hour and the previous one (a rolling estimate over the last one to two hours). */
  readonly users = [new HyperLogLog(10), new HyperLogLog(10), new HyperLogLog(10), new HyperLogLog(10)];
  private usersHour = -1;
  /** Latency buckets of this minute and the previous one, for a live p95. */
  readonly latency = new Uint32Array(2 * LATENCY_BUCKETS);
  private latencyMinute = -1;

  /** `user`: the user id's hash32, or -1. */
  record(side: number, failed: boolean, ms: number, user: number, now: number): void {
    let o = this.minutes.at(now);
    this.minutes.counts[o + side]!++;
    if (failed) this.minutes.counts[o + ERRORS]!++;
    o = this.hours.at(now);
    this.hours.counts[o + side]!++;
    if (failed) this.hours.counts[o + ERRORS]!++;
    this.toMinute(Math.floor(now / MINUTE_MS));
    this.latency[latencyBucket(ms)]!++;
    if (user !== -1) {
      this.toHour(Math.floor(now / HOUR_MS));
      this.users[side]!.addHash(user);
    }
  }

  /** Moves the latency buckets on to `minute`: the current minute's become the previous minute's. */
  private toMinute(minute: number): void {
    if (minute <= this.latencyMinute) return;
    this.latency.copyWithin(LATENCY_BUCKETS, 0, LATENCY_BUCKETS);
    if (minute !== this.latencyMinute + 1) this.latency.fill(0, LATENCY_BUCKETS);
    this.latency.fill(0, 0, LATENCY_BUCKETS);
    this.latencyMinute = minute;
  }

  /** Moves the user sketches on to `hour`: this hour's become the previous hour's. */
  private toHour(hour: number): void {
    if (hour <= this.usersHour) return;
    this.users[2]!.clear();
    this.users[3]!.clear();
    if (hour === this.usersHour + 1) {
      this.users[2]!.merge(this.users[0]!);
      this.users[3]!.merge(this.users[1]!);
    }
    this.users[0]!.clear();
    this.users[1]!.clear();
    this.usersHour = hour;
  }

  snapshot(): TrafficSnapshot {
    return {
      minutes: { counts: this.minutes.counts, last: this.minutes.lastBucket },
      hours: { counts: this.hours.counts, last: this.hours.lastBucket },
      users: this.users.map((u) => u.registers),
      usersHour: this.usersHour,
      latency: this.latency,
      latencyMinute: this.latencyMinute,
    };
  }

  /** Adds another process's counts of the same route, aligned by time. */
  absorb(s: TrafficSnapshot): void {
    this.minutes.absorb(s.minutes.counts, s.minutes.last);
    this.hours.absorb(s.hours.counts, s.hours.last);
    if (s.latencyMinute !== -1) {
      this.toMinute(s.latencyMinute);
      // Theirs may be a minute behind: their current minute is then our previous one.
      const shift = this.latencyMinute - s.latencyMinute;
      for (let i = 0; i < LATENCY_BUCKETS; i++) {
        if (shift === 0) {
          this.latency[i]! += s.latency[i]!;
          this.latency[LATENCY_BUCKETS + i]! += s.latency[LATENCY_BUCKETS + i]!;
        } else if (shift === 1) this.latency[LATENCY_BUCKETS + i]! += s.latency[i]!;
      }
    }
    if (s.usersHour !== -1) {
      this.toHour(s.usersHour);
      const shift = this.usersHour - s.usersHour;
      const merge = (into: number, from: number): void => {
        const r = this.users[into]!.registers;
        const o = s.users[from]!;
        for (let i = 0; i < r.length; i++) if (o[i]! > r[i]!) r[i] = o[i]!;
      };
      if (shift === 0) for (let k = 0; k < 4; k++) merge(k, k);
      else if (shift === 1) {
        merge(2, 0);
        merge(3, 1);
      }
    }
  }

  /** Distinct users per side over the last one to two hours. */
  distinctUsers(now: number): { legacy: number; new: number } {
    const hour = Math.floor(now / HOUR_MS);
    const side = (s: number): number => {
      if (hour === this.usersHour) {
        const h = new HyperLogLog(10);
        h.merge(this.users[s]!);
        h.merge(this.users[s + 2]!);
        return h.count();
      }
      // The hour has turned with no user since: what was "this hour" is now the previous one.
      return hour === this.usersHour + 1 ? this.users[s]!.count() : 0;
    };
    return { legacy: side(LEGACY), new: side(NEW) };
  }

  p95(now: number): number | null {
    const minute = Math.floor(now / MINUTE_MS);
    if (minute > this.latencyMinute + 1) return null;
    const merged = new Uint32Array(LATENCY_BUCKETS);
    for (let i = 0; i < LATENCY_BUCKETS; i++) merged[i] = (minute === this.latencyMinute ? this.latency[i]! + this.latency[LATENCY_BUCKETS + i]! : this.latency[i]!);
    return latencyQuantile(merged, 0.95);
  }
}

/** One route's counts as another process sends them (typed arrays travel as they are). */
export interface TrafficSnapshot {
  minutes: { counts: Uint32Array; last: number };
  hours: { counts: Uint32Array; last: number };
  users: Uint8Array[];
  usersHour: number;
  latency: Uint32Array;
  latencyMinute: number;
}

/** All of an insight's counts, to be summed with other processes' (server.workers). */
export interface InsightSnapshot {
  routes: Record<string, TrafficSnapshot>;
  overall: TrafficSnapshot;
  hourlyUsers: Uint8Array[];
  hourlyStamp: Float64Array;
  inventory: Array<{ key: string; count: number; error: number; method: string; template: string; route: string; lastSeen: number; statuses: Uint32Array; latency: Uint32Array }>;
  inventoryTotal: number;
  bySide: { legacy: number; new: number };
}

/** One line of the legacy inventory: a method and path template, and how the legacy side answers it. */
export interface TemplateEntry extends Counted {
  method: string;
  template: string;
  route: string;
  lastSeen: number;
  /** Answers by status class: 1xx..5xx. */
  readonly statuses: Uint32Array;
  readonly latency: Uint32Array;
}

function newEntry(key: string): TemplateEntry {
  return { key, count: 0, error: 0, heapIndex: 0, method: '', template: '', route: '', lastSeen: 0, statuses: new Uint32Array(5), latency: new Uint32Array(LATENCY_BUCKETS) };
}

function recycle(e: TemplateEntry): void {
  e.statuses.fill(0);
  e.latency.fill(0);
}

export interface MigrationSettings {
  /** Upstream names that count as the old system. */
  legacy: readonly string[];
  /** Explicit path templates (`/reports/{name}/pdf`), tried before the heuristics. */
  templates: readonly string[];
}

export interface Totals {
  legacy: number;
  new: number;
  errors: number;
}

function totals(t: [number, number, number]): Totals & { legacyPercent: number | null } {
  const all = t[0] + t[1];
  return { legacy: t[0], new: t[1], errors: t[2], legacyPercent: all === 0 ? null : Math.round((t[0] / all) * 10_000) / 100 };
}

export class MigrationInsight {
  private legacy: ReadonlySet<string> = new Set();
  private templater = new PathTemplater();
  private readonly routes = new Map<string, RouteTraffic>();
  private readonly overall = new RouteTraffic();
  /** Recent paths' templates and inventory keys by method. */
  private readonly templated = new Map<string, { template: string; keys: Map<string, string> }>();
  /** Distinct users per side and hour, overall: HOURS × 2 sketches of 1 KiB. */
  private readonly hourlyUsers = Array.from({ length: HOURS * 2 }, () => new HyperLogLog(10));
  private readonly hourlyStamp = new Float64Array(HOURS).fill(-1);
  readonly inventory: SpaceSaving<TemplateEntry>;
  /** Since start (for the Prometheus counters). */
  readonly bySide = { legacy: 0, new: 0 };

  constructor(
    settings: MigrationSettings,
    readonly inventorySize = 1000,
  ) {
    this.inventory = new SpaceSaving(inventorySize, newEntry, recycle);
    this.configure(settings);
  }

  /** On every table load: which upstreams are legacy, and the explicit templates. Counts are kept. */
  configure(settings: MigrationSettings): void {
    this.legacy = new Set(settings.legacy);
    this.templater = new PathTemplater(settings.templates);
    this.templated.clear();
  }

  isLegacy(upstream: string): boolean {
    return this.legacy.has(upstream);
  }

  /** One request answered by `upstream` (the side that actually answered: canary, primary or fallback). */
  record(route: string, upstream: string, method: string, path: string, status: number, ms: number, user: string | undefined, now = Date.now()): void {
    const legacy = this.legacy.has(upstream);
    const side = legacy ? LEGACY : NEW;
    const failed = status >= 500;
    let r = this.routes.get(route);
    if (r === undefined) {
      r = new RouteTraffic();
      this.routes.set(route, r);
    }
    const userHash = user === undefined ? -1 : hash32(user);
    r.record(side, failed, ms, userHash, now);
    this.overall.record(side, failed, ms, -1, now);
    if (userHash !== -1) this.hourlyUser(side, userHash, now);
    if (!legacy) {
      this.bySide.new++;
      return;
    }
    this.bySide.legacy++;
    // Paths repeat: their template and inventory key are remembered (a bounded cache, emptied when full).
    let known = this.templated.get(path);
    if (known === undefined) {
      if (this.templated.size >= TEMPLATE_CACHE) this.templated.clear();
      known = { template: this.templater.template(path), keys: new Map() };
      this.templated.set(path, known);
    }
    let key = known.keys.get(method);
    if (key === undefined) {
      key = `${method} ${known.template}`;
      known.keys.set(method, key);
    }
    const e = this.inventory.add(key);
    if (e.count === e.error + 1) {
      e.method = method;
      e.template = known.template;
    }
    e.route = route;
    e.lastSeen = now;
    const cls = Math.floor(status / 100) - 1;
    if (cls >= 0 && cls < 5) e.statuses[cls]!++;
    e.latency[latencyBucket(ms)]!++;
  }

  private hourlyUser(side: number, user: number, now: number): void {
    const hour = Math.floor(now / HOUR_MS);
    const slot = hour % HOURS;
    if (this.hourlyStamp[slot] !== hour) {
      this.hourlyStamp[slot] = hour;
      this.hourlyUsers[slot * 2]!.clear();
      this.hourlyUsers[slot * 2 + 1]!.clear();
    }
    this.hourlyUsers[slot * 2 + side]!.addHash(user);
  }

  /** Every count, for another process to sum with its own (server.workers: the primary asks each worker). */
  snapshot(): InsightSnapshot {
    const routes: Record<string, TrafficSnapshot> = {};
    for (const [name, r] of this.routes) routes[name] = r.snapshot();
    return {
      routes,
      overall: this.overall.snapshot(),
      hourlyUsers: this.hourlyUsers.map((h) => h.registers),
      hourlyStamp: this.hourlyStamp,
      inventory: this.inventory.sorted().map((e) => ({ key: e.key, count: e.count, error: e.error, method: e.method, template: e.template, route: e.route, lastSeen: e.lastSeen, statuses: e.statuses, latency: e.latency })),
      inventoryTotal: this.inventory.total,
      bySide: { ...this.bySide },
    };
  }

  /**
   * Adds another process's counts: rings and histograms are summed by time,
   * user sketches merged (a user seen by two workers counts once), inventory
   * entries merged by template (their over-counts add up).
   */
  absorb(s: InsightSnapshot): void {
    for (const [name, t] of Object.entries(s.routes)) {
      let r = this.routes.get(name);
      if (r === undefined) {
        r = new RouteTraffic();
        this.routes.set(name, r);
      }
      r.absorb(t);
    }
    this.overall.absorb(s.overall);
    for (let slot = 0; slot < HOURS; slot++) {
      const theirs = s.hourlyStamp[slot]!;
      if (theirs === -1 || theirs < this.hourlyStamp[slot]!) continue;
      if (theirs > this.hourlyStamp[slot]!) {
        this.hourlyStamp[slot] = theirs;
        this.hourlyUsers[slot * 2]!.clear();
        this.hourlyUsers[slot * 2 + 1]!.clear();
      }
      for (const k of [slot * 2, slot * 2 + 1]) {
        const r = this.hourlyUsers[k]!.registers;
        const o = s.hourlyUsers[k]!;
        for (let i = 0; i < r.length; i++) if (o[i]! > r[i]!) r[i] = o[i]!;
      }
    }
    for (const t of s.inventory) {
      const e = this.inventory.addWeighted(t.key, t.count, t.error);
      if (e.method === '') {
        e.method = t.method;
        e.template = t.template;
      }
      if (t.lastSeen >= e.lastSeen) {
        e.lastSeen = t.lastSeen;
        e.route = t.route;
      }
      for (let i = 0; i < 5; i++) e.statuses[i]! += t.statuses[i]!;
      for (let i = 0; i < LATENCY_BUCKETS; i++) e.latency[i]! += t.latency[i]!;
    }
    this.inventory.total += s.inventoryTotal;
    this.bySide.legacy += s.bySide.legacy;
    this.bySide.new += s.bySide.new;
  }

  /** A new insight with this one's settings and the sum of these snapshots. */
  static merged(settings: MigrationSettings, inventorySize: number, snapshots: readonly InsightSnapshot[]): MigrationInsight {
    const m = new MigrationInsight(settings, inventorySize);
    for (const s of snapshots) m.absorb(s);
    return m;
  }

  /** The overall share now, over 24 hours and per hour, and each route's counts. */
  report(now = Date.now()): MigrationReport {
    const hour = Math.floor(now / HOUR_MS);
    const hourly: MigrationReport['hourly'] = [];
    const users24 = [new HyperLogLog(10), new HyperLogLog(10)];
    for (let h = hour - HOURS + 1; h <= hour; h++) {
      const t = this.overall.hours.sum(h * HOUR_MS, 1);
      const slot = h % HOURS;
      const fresh = this.hourlyStamp[slot] === h;
      if (fresh) {
        users24[0]!.merge(this.hourlyUsers[slot * 2]!);
        users24[1]!.merge(this.hourlyUsers[slot * 2 + 1]!);
      }
      hourly.push({ hour: new Date(h * HOUR_MS).toISOString(), ...totals(t), users: fresh ? { legacy: this.hourlyUsers[slot * 2]!.count(), new: this.hourlyUsers[slot * 2 + 1]!.count() } : { legacy: 0, new: 0 } });
    }
    const routes: MigrationReport['routes'] = {};
    for (const [name, r] of this.routes) {
      const recent = r.minutes.sum(now, NOW_MINUTES);
      routes[name] = {
        now: { ...totals(recent), perSecond: Math.round(((recent[0] + recent[1]) / (NOW_MINUTES * 60)) * 100) / 100 },
        last24h: totals(r.hours.sum(now, HOURS)),
        users: r.distinctUsers(now),
        p95Ms: r.p95(now),
      };
    }
    return {
      legacyUpstreams: [...this.legacy],
      now: { windowMinutes: NOW_MINUTES, ...totals(this.overall.minutes.sum(now, NOW_MINUTES)) },
      last24h: { ...totals(this.overall.hours.sum(now, HOURS)), users: { legacy: users24[0]!.count(), new: users24[1]!.count() } },
      hourly,
      routes,
    };
  }

  /** The legacy inventory, most requested first. */
  inventoryReport(limit = this.inventorySize): InventoryReport {
    const inv = this.inventory;
    const templates = inv.sorted().slice(0, limit).map((e) => ({
      method: e.method,
      template: e.template,
      route: e.route,
      count: e.count,
      /** The count may be over by at most this much (space-saving). */
      maxOvercount: e.error,
      share: inv.total === 0 ? 0 : Math.round((e.count / inv.total) * 10_000) / 100,
      lastSeen: new Date(e.lastSeen).toISOString(),
      statuses: { '1xx': e.statuses[0]!, '2xx': e.statuses[1]!, '3xx': e.statuses[2]!, '4xx': e.statuses[3]!, '5xx': e.statuses[4]! },
      p95Ms: latencyQuantile(e.latency, 0.95),
    }));
    let attributed = 0;
    for (const e of inv.sorted()) attributed += e.count - e.error;
    return { capacity: this.inventorySize, tracked: inv.size, total: inv.total, other: inv.total - attributed, templates };
  }
}

export interface MigrationReport {
  legacyUpstreams: string[];
  now: Totals & { legacyPercent: number | null; windowMinutes: number };
  last24h: Totals & { legacyPercent: number | null; users: { legacy: number; new: number } };
  hourly: Array<Totals & { hour: string; legacyPercent: number | null; users: { legacy: number; new: number } }>;
  routes: Record<string, { now: Totals & { legacyPercent: number | null; perSecond: number }; last24h: Totals & { legacyPercent: number | null }; users: { legacy: number; new: number }; p95Ms: number | null }>;
}

export interface InventoryReport {
  capacity: number;
  tracked: number;
  total: number;
  /** Requests whose templates were pushed out of the top list. */
  other: number;
  templates: Array<{ method: string; template: string; route: string; count: number; maxOvercount: number; share: number; lastSeen: string; statuses: Record<string, number>; p95Ms: number | null }>;
}

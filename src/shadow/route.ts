import { randomBytes } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ShadowConfig } from '../config/schema';
import { basePathOf, rewritePath, stripOf } from '../routing/compile';
import { compareAnswers, type CompareOptions, type Difference } from './compare';

/** Why a request was not copied, or its answers not compared. */
export type SkipReason = 'sampled-out' | 'method' | 'body-unknown-length' | 'saturated' | 'too-large' | 'primary-failed' | 'circuit-open';

/** A shadow failing this many times in a row gets no copies for CIRCUIT_OPEN_MS: a struggling new service is not loaded further. */
const CIRCUIT_FAILURES = 5;
const CIRCUIT_OPEN_MS = 10_000;
export type ShadowOutcome = 'match' | 'mismatch' | 'shadow-error' | 'skipped';

export interface ShadowEvents {
  outcome(route: string, outcome: ShadowOutcome): void;
  skipped(route: string, reason: SkipReason): void;
  /** A comparison that finished after the request's access line was written (which said `pending`). */
  late(route: string, requestId: string, outcome: ShadowOutcome, fields: string[]): void;
  /** A compared pair's durations (whole answers, from when the copy left). */
  durations(route: string, primaryMs: number, shadowMs: number): void;
  /** A field that differed in a mismatch (bounded per route; `other` beyond). */
  field(route: string, field: string): void;
}

/** What the primary's side reports to its copy: the head, the body as it streams, the end or a failure. */
export interface ShadowTap {
  /** For the access line: the outcome, or `pending` while the copy is under way. */
  outcome(): string;
  head(status: number, headers: IncomingHttpHeaders): void;
  chunk(chunk: Buffer): void;
  end(): void;
  failed(): void;
}

const MAX_FIELDS = 50;
const MAX_SAMPLES = 50;

/**
 * One route's parallel run: the copies in flight (bounded by maxConcurrent,
 * so shadow memory is at most maxConcurrent × maxBodyBytes × 2), their own
 * keep-alive pool to the shadow upstream, and the counts of what the
 * comparisons found. A copy never touches the primary's response: it only
 * reads what the relay hands it, and its failures are counted here alone.
 */
export class ShadowRoute {
  private readonly agent: Agent;
  private readonly target: URL;
  private readonly basePath: string;
  private readonly stripLength: number;
  private readonly methods: ReadonlySet<string>;
  private readonly compare: CompareOptions;
  private readonly redact: readonly string[];
  inFlight = 0;
  private counts = newCounts();
  private failuresInARow = 0;
  private openUntil = 0;
  /** Comparisons and mismatches in ten time slots, for a canary gate's window. */
  private readonly slots = Array.from({ length: 10 }, () => ({ start: 0, compared: 0, mismatch: 0 }));
  private slotMs = 60_000;

  /** The primary, asked a second time for noise learning (routes with shadow.noise). */
  private readonly primaryTarget: URL | undefined;
  private readonly primaryAgent: Agent | undefined;

  constructor(
    readonly route: string,
    readonly config: ShadowConfig,
    upstreamUrl: string,
    private readonly preserveHost: boolean,
    private readonly events: ShadowEvents,
    primaryUrl?: string,
    private readonly primaryPreserveHost = true,
  ) {
    this.target = new URL(upstreamUrl);
    if (config.noise !== undefined && primaryUrl !== undefined) {
      this.primaryTarget = new URL(primaryUrl);
      const o = { keepAlive: true, maxSockets: config.maxConcurrent, scheduling: 'lifo' as const };
      this.primaryAgent = this.primaryTarget.protocol === 'https:' ? new HttpsAgent(o) : new Agent(o);
    }
    this.basePath = basePathOf(upstreamUrl);
    this.stripLength = stripOf(config.stripPrefix).length;
    this.methods = new Set(config.methods);
    this.redact = config.compare.redact;
    this.compare = { headers: config.compare.headers.map((h) => h.toLowerCase()), ignore: config.compare.ignore, unordered: config.compare.unordered, maxBodyBytes: config.maxBodyBytes };
    const options = { keepAlive: true, maxSockets: config.maxConcurrent, scheduling: 'lifo' as const };
    this.agent = this.target.protocol === 'https:' ? new HttpsAgent(options) : new Agent(options);
  }

  /**
   * Starts the copy of a request that is about to go to the primary, at the
   * same moment; returns the tap the primary's answer is reported to, or
   * undefined when the request is not copied (counted as skipped).
   */
  copy(requestId: string, method: string, path: string, query: string, headers: IncomingHttpHeaders, body: IncomingMessage | undefined, primaryPath = ''): ShadowTap | undefined {
    const c = this.counts;
    let reason: SkipReason | undefined;
    if (!this.methods.has(method)) reason = 'method';
    else if (body !== undefined && headers['content-length'] === undefined) reason = 'body-unknown-length';
    else if (body !== undefined && Number(headers['content-length']) > this.config.maxBodyBytes) reason = 'too-large';
    else if (this.config.percent < 100 && Math.random() * 100 >= this.config.percent) reason = 'sampled-out';
    else if (this.inFlight >= this.config.maxConcurrent) reason = 'saturated';
    else if (this.openUntil !== 0 && Date.now() < this.openUntil) reason = 'circuit-open';
    if (reason !== undefined) {
      this.skip(reason);
      return undefined;
    }
    c.copied++;
    const noise = this.config.noise;
    // Noise: a safe request sometimes also goes to the primary a second time (never one with a body).
    const twice = noise !== undefined && this.primaryTarget !== undefined && body === undefined && (method === 'GET' || method === 'HEAD') && Math.random() * 100 < noise.sample;
    const shadowPath = rewritePath(path, query, this.stripLength, this.basePath);
    return new ShadowCopy(this, requestId, method, shadowPath, this.headersFor(headers), body, redactQuery(path, query), twice ? { path: primaryPath, headers: this.headersFor(headers, true) } : undefined);
  }

  /** The primary request's headers (identity and forwarding already set), without credentials unless asked, marked as a shadow. */
  private headersFor(h: IncomingHttpHeaders, toPrimary = false): IncomingHttpHeaders {
    const out: IncomingHttpHeaders = { ...h };
    if (!this.config.forwardCredentials) {
      delete out.authorization;
      delete out.cookie;
    }
    if (toPrimary) {
      if (!this.primaryPreserveHost) out.host = this.primaryTarget!.host;
    } else if (!this.preserveHost) out.host = this.target.host;
    out['x-strangler-shadow'] = toPrimary ? 'noise' : '1';
    // The same trace, a span of its own.
    const tp = typeof h.traceparent === 'string' ? /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/.exec(h.traceparent) : null;
    if (tp) out.traceparent = `00-${tp[1]}-${randomBytes(8).toString('hex')}-${tp[2]}`;
    return out;
  }

  /** Sends the copy; its body, when the request has one, is written as the client's arrives (both sides get it at once). */
  send(method: string, path: string, headers: IncomingHttpHeaders, body: IncomingMessage | undefined, onResponse: (res: IncomingMessage) => void, onError: () => void, toPrimary = false): () => void {
    const target = toPrimary ? this.primaryTarget! : this.target;
    const send = target.protocol === 'https:' ? httpsRequest : request;
    const agent = toPrimary ? this.primaryAgent! : this.agent;
    const req = send({ protocol: target.protocol, hostname: target.hostname.replace(/^\[|\]$/g, ''), port: target.port, method, path, headers, agent }, onResponse);
    req.on('error', onError);
    if (body === undefined || body.complete) req.end();
    else {
      // At most maxBodyBytes (its Content-Length was checked): held here if the shadow reads slowly.
      const onData = (chunk: Buffer) => void req.write(chunk);
      body.on('data', onData);
      body.once('end', () => req.end());
      body.once('close', () => body.off('data', onData));
    }
    return () => req.destroy();
  }

  skip(reason: SkipReason): ShadowOutcome {
    const c = this.counts;
    c.skipped.set(reason, (c.skipped.get(reason) ?? 0) + 1);
    this.events.skipped(this.route, reason);
    this.events.outcome(this.route, 'skipped');
    return 'skipped';
  }

  shadowError(): ShadowOutcome {
    if (++this.failuresInARow >= CIRCUIT_FAILURES) {
      this.failuresInARow = 0;
      this.openUntil = Date.now() + CIRCUIT_OPEN_MS;
    }
    this.counts.shadowError++;
    this.events.outcome(this.route, 'shadow-error');
    return 'shadow-error';
  }

  /** The window a canary gate reads (set by the table from the route's canary.gate). */
  gateWindow(windowMs: number): void {
    this.slotMs = Math.max(1, Math.ceil(windowMs / 10));
  }

  /** Comparisons and mismatches over the last window. */
  agreement(now = Date.now()): { compared: number; mismatch: number } {
    const oldest = now - (now % this.slotMs) - 9 * this.slotMs;
    let compared = 0;
    let mismatch = 0;
    for (const s of this.slots) {
      if (s.start < oldest) continue;
      compared += s.compared;
      mismatch += s.mismatch;
    }
    return { compared, mismatch };
  }

  private slot(now = Date.now()): { start: number; compared: number; mismatch: number } {
    const start = now - (now % this.slotMs);
    const s = this.slots[Math.floor(start / this.slotMs) % 10]!;
    if (s.start !== start) {
      s.start = start;
      s.compared = 0;
      s.mismatch = 0;
    }
    return s;
  }

  /**
   * Diffy's test: a field differs for real only when its primary-vs-shadow
   * rate exceeds its primary-vs-primary rate, by more than relativePercent of
   * the two and more than absolutePercent of the comparisons.
   */
  isNoise(field: string): boolean {
    const n = this.config.noise;
    const c = this.counts;
    if (n === undefined || c.noiseSamples === 0) return false;
    const noiseRate = (c.noise.get(field) ?? 0) / c.noiseSamples;
    if (noiseRate === 0) return false;
    const rawRate = (c.raw.get(field) ?? 0) / Math.max(1, c.compared);
    const gap = rawRate - noiseRate;
    return !(gap > 0 && gap / (rawRate + noiseRate) > n.relativePercent / 100 && gap > n.absolutePercent / 100);
  }

  late(requestId: string, outcome: ShadowOutcome, fields: string[]): void {
    this.events.late(this.route, requestId, outcome, fields);
  }

  compared(
    primary: { status: number; headers: IncomingHttpHeaders; body: Buffer },
    shadow: { status: number; headers: IncomingHttpHeaders; body: Buffer },
    ms: { primary: number; shadow: number },
    request: { id: string; method: string; path: string },
    secondary?: { status: number; headers: IncomingHttpHeaders; body: Buffer },
  ): { outcome: ShadowOutcome; fields: string[] } {
    const c = this.counts;
    // A failing shadow is an error, not a difference (unless the primary failed the same way).
    if (shadow.status >= 500 && primary.status < 500) return { outcome: this.shadowError(), fields: [] };
    const result = compareAnswers(primary, shadow, this.compare);
    if (result.outcome === 'too-large') return { outcome: this.skip('too-large'), fields: [] };
    c.compared++;
    this.failuresInARow = 0;
    // Raw differences are counted per field for every comparison; primary-vs-primary ones on the noise sample.
    for (const f of new Set(result.differences.map((d) => d.field))) c.raw.set(f, (c.raw.get(f) ?? 0) + 1);
    if (secondary !== undefined) {
      const noise = compareAnswers(primary, secondary, this.compare);
      if (noise.outcome !== 'too-large') {
        c.noiseSamples++;
        for (const f of new Set(noise.differences.map((d) => d.field))) c.noise.set(f, (c.noise.get(f) ?? 0) + 1);
      }
    }
    // Differences only in fields learnt as noise do not make a mismatch (a status difference always does).
    const real = result.differences.filter((d) => d.field === 'status' || !this.isNoise(d.field));
    if (result.outcome === 'mismatch' && real.length === 0) result.outcome = 'match';
    this.events.durations(this.route, ms.primary, ms.shadow);
    const slot = this.slot();
    slot.compared++;
    if (result.outcome === 'mismatch') slot.mismatch++;
    c.latency.primary.push(ms.primary);
    c.latency.shadow.push(ms.shadow);
    if (c.latency.primary.length > 1000) {
      c.latency.primary.shift();
      c.latency.shadow.shift();
    }
    const pair = `${primary.status}→${shadow.status}`;
    c.statusPairs.set(pair, (c.statusPairs.get(pair) ?? 0) + 1);
    if (result.outcome === 'match') {
      c.match++;
      this.events.outcome(this.route, 'match');
      return { outcome: 'match', fields: [] };
    }
    c.mismatch++;
    this.events.outcome(this.route, 'mismatch');
    const seen = new Set<string>();
    for (const d of result.differences) {
      if (seen.has(d.field)) continue;
      seen.add(d.field);
      // Bounded: the 50 first fields of a route, the rest as `other` (labels of a metric too).
      const key = c.fields.has(d.field) || c.fields.size < MAX_FIELDS ? d.field : 'other';
      c.fields.set(key, (c.fields.get(key) ?? 0) + 1);
      this.events.field(this.route, key);
    }
    c.samples.push({ at: new Date().toISOString(), requestId: request.id, method: request.method, path: request.path, statuses: [primary.status, shadow.status], differences: result.differences.slice(0, 20).map((d) => sampleOf(d, this.redact)) });
    if (c.samples.length > MAX_SAMPLES) c.samples.shift();
    return { outcome: 'mismatch', fields: [...seen] };
  }

  describe(): Record<string, unknown> {
    const c = this.counts;
    const decided = c.match + c.mismatch;
    return {
      route: this.route,
      shadow: this.config.upstream,
      percent: this.config.percent,
      inFlight: this.inFlight,
      copied: c.copied,
      compared: c.compared,
      match: c.match,
      mismatch: c.mismatch,
      shadowError: c.shadowError,
      skipped: Object.fromEntries(c.skipped),
      mismatchPercent: decided === 0 ? null : Math.round((c.mismatch / decided) * 10_000) / 100,
      window: windowReport(this.agreement(), this.slotMs * 10),
      fields: [...c.fields]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([field, count]) => ({ field, count, share: c.mismatch === 0 ? 0 : Math.round((count / c.mismatch) * 10_000) / 100, ...(this.isNoise(field) ? { noise: true } : {}) })),
      noise: this.config.noise === undefined ? null : { samples: c.noiseSamples, fields: [...c.noise].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([field, count]) => ({ field, count })) },
      statusPairs: Object.fromEntries(c.statusPairs),
      latencyMs: { primary: percentiles(c.latency.primary), shadow: percentiles(c.latency.shadow) },
    };
  }

  samples(): unknown[] {
    return [...this.counts.samples].reverse();
  }

  reset(): void {
    this.counts = newCounts();
    for (const s of this.slots) s.start = 0;
  }

  close(): void {
    this.agent.destroy();
    this.primaryAgent?.destroy();
  }
}

interface Sample {
  at: string;
  requestId: string;
  method: string;
  /** Query values redacted: they can carry tokens. */
  path: string;
  statuses: [number, number];
  differences: Array<{ path: string; kind: string; primary?: string; shadow?: string }>;
}

function newCounts() {
  return {
    copied: 0,
    compared: 0,
    match: 0,
    mismatch: 0,
    shadowError: 0,
    skipped: new Map<SkipReason, number>(),
    fields: new Map<string, number>(),
    statusPairs: new Map<string, number>(),
    latency: { primary: [] as number[], shadow: [] as number[] },
    /** Per field: comparisons where primary and shadow differed (raw), and where two primary answers did (noise). */
    raw: new Map<string, number>(),
    noise: new Map<string, number>(),
    noiseSamples: 0,
    samples: [] as Sample[],
  };
}

/** `/orders?id=7&token=abc` -> `/orders?id=***&token=***`. */
function redactQuery(path: string, query: string): string {
  if (query === '' || query === '?') return path;
  return path + '?' + query.slice(1).split('&').map((kv) => (kv.includes('=') ? `${kv.slice(0, kv.indexOf('='))}=***` : kv)).join('&');
}

function windowReport(a: { compared: number; mismatch: number }, windowMs: number): Record<string, number | null> {
  return { windowMs, compared: a.compared, mismatch: a.mismatch, mismatchPercent: a.compared === 0 ? null : Math.round((a.mismatch / a.compared) * 10_000) / 100 };
}

/** Headers whose values are secrets: never shown in samples. */
const SECRET_HEADER = /^header:(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token|x-strangler-identity)$/;

/** Values in samples are cut to 200 characters; redacted paths and secret headers are shown as ***. */
function sampleOf(d: Difference, redact: readonly string[]): Sample['differences'][number] {
  const hidden = SECRET_HEADER.test(d.field) || redact.some((p) => d.field === p || d.field.startsWith(p + '.') || d.field.startsWith(p + '['));
  const cut = (v: unknown) => (v === undefined ? undefined : hidden ? '***' : (typeof v === 'string' ? v : JSON.stringify(v)).slice(0, 200));
  return { path: d.path, kind: d.kind, primary: cut(d.primary), shadow: cut(d.shadow) };
}

function percentiles(values: number[]): { p50: number | null; p95: number | null; p99: number | null } {
  if (values.length === 0) return { p50: null, p95: null, p99: null };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/**
 * One copied request: the shadow's answer is read in full (up to
 * maxBodyBytes), the primary's is reported by the relay, and when both are
 * complete they are compared. Bounded in time by the shadow's timeoutMs.
 */
class ShadowCopy implements ShadowTap {
  private primary: { status: number; headers: IncomingHttpHeaders; chunks: Buffer[]; size: number; done: boolean; ms: number } | undefined;
  private shadow: { status: number; headers: IncomingHttpHeaders; body: Buffer; ms: number } | undefined;
  /** The primary's second answer (noise learning): pending, received, or given up. */
  private secondary: { status: number; headers: IncomingHttpHeaders; body: Buffer } | 'pending' | undefined;
  private cancelSecondary: (() => void) | undefined;
  private readonly started = performance.now();
  private finished = false;
  private result: ShadowOutcome | undefined;
  /** The access line was written while the copy was under way: its result gets a line of its own. */
  private reportLate = false;
  private readonly cancel: () => void;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly owner: ShadowRoute,
    private readonly requestId: string,
    private readonly method: string,
    path: string,
    headers: IncomingHttpHeaders,
    body: IncomingMessage | undefined,
    private readonly shownPath: string,
    twice: { path: string; headers: IncomingHttpHeaders } | undefined,
  ) {
    owner.inFlight++;
    this.timer = setTimeout(() => this.shadowFailed(), owner.config.timeoutMs);
    this.cancel = owner.send(method, path, headers, body, (res) => this.onShadowResponse(res), () => this.shadowFailed());
    if (twice !== undefined) {
      this.secondary = 'pending';
      const gaveUp = () => {
        this.secondary = undefined;
        this.tryCompare();
      };
      this.cancelSecondary = owner.send(method, twice.path, twice.headers, undefined, (res) => readAll(res, owner.config.maxBodyBytes, (answer) => {
        this.secondary = answer ?? undefined;
        this.tryCompare();
      }), gaveUp, true);
    }
  }

  private onShadowResponse(res: IncomingMessage): void {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > this.owner.config.maxBodyBytes) {
        res.destroy();
        this.finish(() => ({ outcome: this.owner.skip('too-large'), fields: [] }));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => {
      this.shadow = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - this.started };
      this.tryCompare();
    });
    res.on('error', () => this.shadowFailed());
  }

  private shadowFailed(): void {
    this.finish(() => ({ outcome: this.owner.shadowError(), fields: [] }));
  }

  outcome(): string {
    if (this.result !== undefined) return this.result;
    this.reportLate = true;
    return 'pending';
  }

  head(status: number, headers: IncomingHttpHeaders): void {
    this.primary = { status, headers, chunks: [], size: 0, done: false, ms: 0 };
  }

  chunk(chunk: Buffer): void {
    const p = this.primary;
    if (p === undefined || this.finished) return;
    p.size += chunk.length;
    if (p.size > this.owner.config.maxBodyBytes) return this.finish(() => ({ outcome: this.owner.skip('too-large'), fields: [] }));
    p.chunks.push(chunk);
  }

  end(): void {
    const p = this.primary;
    if (p === undefined) return this.failed();
    p.done = true;
    p.ms = performance.now() - this.started;
    this.tryCompare();
  }

  failed(): void {
    this.finish(() => ({ outcome: this.owner.skip('primary-failed'), fields: [] }));
  }

  private tryCompare(): void {
    const p = this.primary;
    const s = this.shadow;
    if (p === undefined || !p.done || s === undefined || this.secondary === 'pending') return;
    const secondary = this.secondary;
    this.finish(() =>
      this.owner.compared({ status: p.status, headers: p.headers, body: Buffer.concat(p.chunks) }, s, { primary: p.ms, shadow: s.ms }, { id: this.requestId, method: this.method, path: this.shownPath }, secondary),
    );
  }

  /** Exactly once: stops the copy's timer and request, releases its slot, records its result. */
  private finish(record: () => { outcome: ShadowOutcome; fields: string[] }): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.cancel();
    this.cancelSecondary?.();
    this.primary = undefined;
    this.owner.inFlight--;
    const { outcome, fields } = record();
    this.result = outcome;
    if (this.reportLate) this.owner.late(this.requestId, outcome, fields);
  }
}

/** Reads a whole answer up to `max` bytes; null when it is larger or fails. */
function readAll(res: IncomingMessage, max: number, done: (answer: { status: number; headers: IncomingHttpHeaders; body: Buffer } | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (a: Parameters<typeof done>[0]) => {
    if (!settled) {
      settled = true;
      done(a);
    }
  };
  res.on('data', (c: Buffer) => {
    size += c.length;
    if (size > max) {
      res.destroy();
      settle(null);
    } else chunks.push(c);
  });
  res.on('end', () => settle({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
  res.on('error', () => settle(null));
  res.on('close', () => settle(null));
}

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { ShadowConfig } from '../config/schema';
import { childTraceparent } from '../observability/requestId';
import type { RequestTrace, TraceSpan } from '../observability/tracing';
import { basePathOf, rewritePath, stripOf } from '../routing/compile';
import { compareAnswers, headerSelection, type CompareOptions, type Difference } from './compare';
import type { Counts } from '../state/peers';

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
/** Fields of the noise learnt sent to other processes once a second: the most frequent. */
const SHARED_FIELDS = 50;
const MAX_SAMPLES = 50;
/** Compared pairs whose durations are kept for the latency percentiles. */
const LATENCY_KEPT = 1000;

/**
 * Request headers a copy never carries. The primary's hop-by-hop headers are
 * gone already; these are the framing and negotiation the copy's own client
 * redoes (a body is only copied with its Content-Length), the host (set per
 * side), and the trace context (a child span is set).
 */
const NOT_COPIED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer', 'host', 'traceparent', 'x-strangler-shadow']);

/** What a copy's handler and the noise request read: a whole answer. */
interface Whole {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One route's parallel run: the copies in flight (bounded by maxConcurrent,
 * so shadow memory is at most maxConcurrent × maxBodyBytes × 2), their own
 * keep-alive pool to the shadow upstream, and the counts of what the
 * comparisons found. A copy never touches the primary's response: it only
 * reads what the relay hands it, and its failures are counted here alone.
 */
export class ShadowRoute {
  /** The copies' own keep-alive pool to the shadow upstream (undici: a copy is a client request that costs about half of node:http's). */
  private readonly pool: Pool;
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
  private readonly primaryPool: Pool | undefined;

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
    // One connection per copy in flight at most; undici's own timeouts are a backstop behind the copy's deadline.
    const options = { connections: config.maxConcurrent, pipelining: 1, headersTimeout: config.timeoutMs + 1000, bodyTimeout: config.timeoutMs + 1000 };
    // Loaded with the first shadow: a table without one never loads undici.
    const { Pool } = require('undici') as typeof import('undici');
    this.pool = new Pool(this.target.origin, options);
    if (config.noise !== undefined && primaryUrl !== undefined) {
      this.primaryTarget = new URL(primaryUrl);
      this.primaryPool = new Pool(this.primaryTarget.origin, options);
    }
    this.basePath = basePathOf(upstreamUrl);
    this.stripLength = stripOf(config.stripPrefix).length;
    this.methods = new Set(config.methods);
    this.redact = config.compare.redact;
    this.compare = { ...headerSelection(config.compare.headers, config.compare.ignoreHeaders), ignore: config.compare.ignore, unordered: config.compare.unordered, maxBodyBytes: config.maxBodyBytes };
  }

  /**
   * Starts the copy of a request that is about to go to the primary, at the
   * same moment; returns the tap the primary's answer is reported to, or
   * undefined when the request is not copied (counted as skipped).
   */
  copy(requestId: string, method: string, path: string, query: string, headers: IncomingHttpHeaders, body: IncomingMessage | undefined, primaryPath = '', trace?: RequestTrace): ShadowTap | undefined {
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
    // A recorded request's copy is a span of a trace of its own, linked to the request's: the new service's spans land there.
    const span = trace?.linked(`shadow ${this.config.upstream}`, { 'strangler.shadow': true, 'strangler.route': this.route, 'http.request.method': method, 'strangler.upstream': this.config.upstream });
    return new ShadowCopy(this, requestId, method, shadowPath, this.headersFor(headers, false, span), body, redactQuery(path, query), twice ? { path: primaryPath, headers: this.headersFor(headers, true) } : undefined, span);
  }

  /**
   * The primary request's headers (identity and forwarding already set) as a
   * flat list, without credentials unless asked, marked as a shadow (`1`, or
   * `noise` for the primary's second answer), in a child span of the trace.
   */
  private headersFor(h: IncomingHttpHeaders, toPrimary = false, span?: TraceSpan): string[] {
    const out: string[] = [];
    const credentials = this.config.forwardCredentials;
    for (const name in h) {
      const v = h[name];
      if (v === undefined || NOT_COPIED.has(name) || (!credentials && (name === 'authorization' || name === 'cookie'))) continue;
      if (typeof v === 'string') out.push(name, v);
      else for (const each of v) out.push(name, each);
    }
    const host = (toPrimary ? this.primaryPreserveHost : this.preserveHost) ? h.host : (toPrimary ? this.primaryTarget! : this.target).host;
    if (host !== undefined) out.push('host', host);
    out.push('x-strangler-shadow', toPrimary ? 'noise' : '1');
    // The gateway set a valid traceparent on the primary request.
    const tp = h.traceparent;
    if (span !== undefined) out.push('traceparent', span.traceparent);
    else if (typeof tp === 'string' && tp.length === 55) out.push('traceparent', childTraceparent(tp));
    return out;
  }

  /** Sends a copy (or the primary's second request); its body, when the request has one, is written as the client's arrives. */
  send(method: string, path: string, headers: string[], body: PassThrough | undefined, handler: Dispatcher.DispatchHandler, toPrimary = false): void {
    (toPrimary ? this.primaryPool! : this.pool).dispatch({ method, path, headers, body: body ?? null }, handler);
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
    // With other processes' learning (shared state), their samples count as this one's.
    const r = this.remoteLearnt?.();
    const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
    const field_ = (rec: unknown): number => (rec !== null && typeof rec === 'object' ? num((rec as Record<string, unknown>)[field]) : 0);
    const samples = c.noiseSamples + num(r?.noiseSamples);
    if (n === undefined || samples === 0) return false;
    const noiseRate = ((c.noise.get(field) ?? 0) + field_(r?.noise)) / samples;
    if (noiseRate === 0) return false;
    const rawRate = ((c.raw.get(field) ?? 0) + field_(r?.raw)) / Math.max(1, c.compared + num(r?.compared));
    const gap = rawRate - noiseRate;
    return !(gap > 0 && gap / (rawRate + noiseRate) > n.relativePercent / 100 && gap > n.absolutePercent / 100);
  }

  /** Other processes' learning, summed (replicas through Redis, workers through their primary); set by the gateway. */
  remoteLearnt: (() => Counts | undefined) | undefined = undefined;

  /** What this process learnt of the noise (the most frequent fields), for the other processes. */
  learnt(): Counts {
    const c = this.counts;
    const top = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).slice(0, SHARED_FIELDS));
    return { noiseSamples: c.noiseSamples, compared: c.compared, noise: top(c.noise), raw: top(c.raw) };
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
    const at = c.latencyCount++ % LATENCY_KEPT;
    c.latency.primary[at] = ms.primary;
    c.latency.shadow[at] = ms.shadow;
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
    // Copies still in flight end as shadow errors of the retired route.
    this.pool.destroy().catch(() => undefined);
    this.primaryPool?.destroy().catch(() => undefined);
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
    /** The last LATENCY_KEPT compared pairs' durations, a ring. */
    latency: { primary: [] as number[], shadow: [] as number[] },
    latencyCount: 0,
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
  private shadow: (Whole & { ms: number }) | undefined;
  private readonly reader: WholeAnswer;
  /** The primary's second answer (noise learning): pending, received, or given up. */
  private secondary: Whole | 'pending' | undefined;
  private secondaryReader: WholeAnswer | undefined;
  private readonly started = performance.now();
  private finished = false;
  private result: ShadowOutcome | undefined;
  /** The access line was written while the copy was under way: its result gets a line of its own. */
  private reportLate = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly owner: ShadowRoute,
    private readonly requestId: string,
    private readonly method: string,
    path: string,
    headers: string[],
    body: IncomingMessage | undefined,
    private readonly shownPath: string,
    twice: { path: string; headers: string[] } | undefined,
    /** With tracing, a recorded request's: the copy's span (set before sending: a send can fail at once). */
    private readonly span: TraceSpan | undefined = undefined,
  ) {
    owner.inFlight++;
    this.timer = setTimeout(() => this.shadowFailed(), owner.config.timeoutMs);
    this.reader = new WholeAnswer(owner.config.maxBodyBytes, (answer) => {
      if (answer === 'too-large') this.finish(() => ({ outcome: this.owner.skip('too-large'), fields: [] }));
      else if (answer === 'failed') this.shadowFailed();
      else {
        this.shadow = { status: answer.status, headers: answer.headers, body: answer.body, ms: performance.now() - this.started };
        this.tryCompare();
      }
    });
    owner.send(method, path, headers, body === undefined ? undefined : this.bodyOf(body), this.reader);
    if (twice !== undefined) {
      this.secondary = 'pending';
      this.secondaryReader = new WholeAnswer(owner.config.maxBodyBytes, (answer) => {
        this.secondary = typeof answer === 'string' ? undefined : answer;
        this.tryCompare();
      });
      owner.send(method, twice.path, twice.headers, undefined, this.secondaryReader, true);
    }
  }

  /**
   * The client's body, written to the copy as it arrives (both sides get it at
   * once). At most maxBodyBytes (its Content-Length was checked): held here if
   * the shadow reads slowly. A client that goes away mid-body fails the
   * primary, not the shadow.
   */
  private bodyOf(body: IncomingMessage): PassThrough {
    const copy = new PassThrough();
    const onData = (chunk: Buffer) => void copy.write(chunk);
    body.on('data', onData);
    body.once('end', () => copy.end());
    body.once('close', () => {
      body.off('data', onData);
      if (!body.readableEnded) {
        this.failed();
        copy.destroy();
      }
    });
    return copy;
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
    if (this.finished || p === undefined || !p.done || s === undefined || this.secondary === 'pending') return;
    const secondary = this.secondary;
    const body = p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks);
    this.finish(() => this.owner.compared({ status: p.status, headers: p.headers, body }, s, { primary: p.ms, shadow: s.ms }, { id: this.requestId, method: this.method, path: this.shownPath }, secondary));
  }

  /** Exactly once: stops the copy's timer and requests, releases its slot, records its result. */
  private finish(record: () => { outcome: ShadowOutcome; fields: string[] }): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.reader.cancel();
    this.secondaryReader?.cancel();
    this.primary = undefined;
    this.owner.inFlight--;
    const { outcome, fields } = record();
    this.result = outcome;
    if (this.span !== undefined) {
      this.span.set('strangler.shadow.outcome', outcome);
      this.span.set('http.response.status_code', this.shadow?.status);
      this.span.end(outcome === 'shadow-error' ? 'SHADOW_ERROR' : undefined);
    }
    if (this.reportLate) this.owner.late(this.requestId, outcome, fields);
  }
}

/**
 * An undici handler that reads a whole answer up to `max` bytes (the shadow's,
 * or the primary's second one for noise learning), then reports it once; it
 * can be cancelled at any point, before the request has even left.
 */
class WholeAnswer implements Dispatcher.DispatchHandler {
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private settled = false;
  private controller: Dispatcher.DispatchController | undefined;

  constructor(
    private readonly max: number,
    private readonly done: (answer: Whole | 'too-large' | 'failed') => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Cancelled while waiting for a connection: never sent.
    if (this.settled) controller.abort(new Error('cancelled'));
    else this.controller = controller;
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[]>): void {
    if (status < 200) return;
    this.status = status;
    this.headers = headers;
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.size += chunk.length;
    if (this.size <= this.max) this.chunks.push(chunk);
    else {
      this.cancel();
      this.done('too-large');
    }
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.done({ status: this.status, headers: this.headers, body });
  }

  onResponseError(): void {
    if (this.settled) return;
    this.settled = true;
    this.chunks = [];
    this.done('failed');
  }

  /** Stops reading without reporting. */
  cancel(): void {
    if (this.settled) return;
    this.settled = true;
    this.chunks = [];
    this.controller?.abort(new Error('cancelled'));
  }
}

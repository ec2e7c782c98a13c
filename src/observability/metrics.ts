import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fastMetrics';

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const NO_ROUTE = '(none)';

type HistogramSeries = ReturnType<FastHistogram['child']>;
type CounterSeries = ReturnType<FastCounter['child']>;

interface SeriesByClass {
  requests: CounterSeries[];
  duration: HistogramSeries[];
}

/** Template series of strangler_legacy_requests_total at most (the rest is `other`). */
const MAX_TEMPLATE_SERIES = 200;

/** What the migration counts expose to Prometheus. */
export interface MigrationCounts {
  bySide: { legacy: number; new: number };
  /** Requests answered by legacy upstreams (the inventory's total). */
  legacyTotal: number;
  /** Most requested first. */
  templates: ReadonlyArray<{ method: string; template: string; count: number }>;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The gateway's Prometheus metrics, in a registry of its own. Labels are
 * bounded: route and upstream names come from the table, status is a class,
 * never a raw path. Children are looked up once per route, upstream and status class and
 * kept, so recording a request is two property reads and two increments.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: FastCounter;
  private readonly duration: FastHistogram;
  readonly inFlight: Gauge;
  private readonly upstreamErrors: Counter<'upstream' | 'kind'>;
  private readonly reloads: Counter<'outcome'>;
  private readonly configVersion: Gauge<'version'>;
  private readonly lastReload: Gauge<'outcome'>;
  /** Cached children by route, then upstream. */
  private readonly series = new Map<string, Map<string, SeriesByClass>>();
  private readonly fallbacks: Counter<'route' | 'from' | 'to' | 'reason'>;
  private readonly retries: Counter<'upstream'>;
  private readonly breakerTransitions: Counter<'upstream' | 'to'>;
  private readonly ejections: Counter<'upstream'>;
  private readonly canaryRequests: FastCounter;
  private readonly canaryFailures: FastCounter;
  private readonly canaryDuration: FastHistogram;
  private readonly canarySeries = new Map<string, { requests: CounterSeries; failures: CounterSeries; duration: HistogramSeries }>();
  private readonly canaryRollbacks: Counter<'route'>;
  private readonly shadowRequests: Counter<'route' | 'outcome'>;
  private readonly shadowSkipped: Counter<'route' | 'reason'>;
  private readonly shadowDuration: FastHistogram;
  private readonly shadowFields: Counter<'route' | 'field'>;
  private readonly rateLimitedTotal: Counter<'route'>;
  private readonly workerRestarts: Counter;

  constructor(
    openConnections: () => Array<{ upstream: string; open: number }>,
    inFlight: () => number,
    breakerStates: () => Array<{ upstream: string; state: 'closed' | 'open' | 'half-open' }>,
    canaryPercents: () => Array<{ route: string; percent: number; rolledBack: boolean }> = () => [],
    migration: () => MigrationCounts | undefined = () => undefined,
    redisUp: () => boolean | undefined = () => undefined,
    tlsCertificates: () => ReadonlyArray<{ name: string; notAfter: Date }> = () => [],
    tracingCounts: () => { exported: number; queueFull: number; exportFailed: number } | undefined = () => undefined,
  ) {
    const registers = [this.registry];
    this.requests = new FastCounter('strangler_requests_total', 'Requests answered, by route, upstream and status class', this.registry);
    this.duration = new FastHistogram('strangler_request_duration_seconds', 'Time from request to response close, by route, upstream and status class', DURATION_BUCKETS, this.registry);
    // Read when scraped: the request path pays nothing for it.
    this.inFlight = new Gauge({
      name: 'strangler_requests_in_flight',
      help: 'Requests being handled now',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    this.upstreamErrors = new Counter({ name: 'strangler_upstream_errors_total', help: 'Failed upstream requests, by upstream and kind (the error code)', labelNames: ['upstream', 'kind'], registers });
    this.reloads = new Counter({ name: 'strangler_config_reloads_total', help: 'Route table reload attempts, by outcome (applied, unchanged, failed)', labelNames: ['outcome'], registers });
    this.configVersion = new Gauge({ name: 'strangler_config_version_info', help: 'The active route table version (content hash) as a label; value 1', labelNames: ['version'], registers, aggregator: 'max' });
    this.lastReload = new Gauge({ name: 'strangler_config_last_reload_timestamp_seconds', help: 'When the last reload attempt with this outcome happened', labelNames: ['outcome'], registers, aggregator: 'max' });
    new Gauge({
      name: 'strangler_upstream_open_connections',
      help: 'Open connections to each upstream (busy and idle keep-alive)',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const { upstream, open } of openConnections()) this.set({ upstream }, open);
      },
    });
    this.fallbacks = new Counter({ name: 'strangler_fallbacks_total', help: 'Requests served by a route fallback, by route, failed upstream, fallback upstream and reason', labelNames: ['route', 'from', 'to', 'reason'], registers });
    this.retries = new Counter({ name: 'strangler_retries_total', help: 'Attempts retried on another instance, by upstream', labelNames: ['upstream'], registers });
    this.ejections = new Counter({ name: 'strangler_instance_ejections_total', help: 'Instances ejected by passive health checks, by upstream', labelNames: ['upstream'], registers });
    this.breakerTransitions = new Counter({ name: 'strangler_breaker_transitions_total', help: 'Circuit breaker state changes, by upstream and new state', labelNames: ['upstream', 'to'], registers });
    new Gauge({
      name: 'strangler_breaker_state',
      // Summed over workers this would mean nothing: the worst (or the one) value is the answer.
      aggregator: 'max',
      help: 'Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const { upstream, state } of breakerStates()) this.set({ upstream }, state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
      },
    });
    this.canaryRequests = new FastCounter('strangler_canary_requests_total', 'Requests of canary routes, by route and side (primary, canary)', this.registry);
    this.canaryFailures = new FastCounter('strangler_canary_failures_total', '5xx or failed-over requests of canary routes, by route and side', this.registry);
    this.canaryDuration = new FastHistogram('strangler_canary_request_duration_seconds', 'Latency of canary routes, by route and side', DURATION_BUCKETS, this.registry);
    this.canaryRollbacks = new Counter({ name: 'strangler_canary_rollbacks_total', help: 'Automatic canary rollbacks, by route', labelNames: ['route'], registers });
    new Gauge({
      name: 'strangler_canary_percent',
      // Summed over workers this would mean nothing: the worst (or the one) value is the answer.
      aggregator: 'max',
      help: 'Share of users sent to the canary now (after ramp and rollback), by route',
      labelNames: ['route'],
      registers,
      collect() {
        this.reset();
        for (const c of canaryPercents()) this.set({ route: c.route }, c.percent);
      },
    });
    new Gauge({
      name: 'strangler_canary_rolled_back',
      // Summed over workers this would mean nothing: the worst (or the one) value is the answer.
      aggregator: 'max',
      help: '1 while a canary route is rolled back, by route',
      labelNames: ['route'],
      registers,
      collect() {
        this.reset();
        for (const c of canaryPercents()) this.set({ route: c.route }, c.rolledBack ? 1 : 0);
      },
    });
    this.shadowRequests = new Counter({ name: 'strangler_shadow_requests_total', help: 'Requests of routes with a shadow, by route and outcome (match, mismatch, shadow-error, skipped)', labelNames: ['route', 'outcome'], registers });
    this.shadowSkipped = new Counter({ name: 'strangler_shadow_skipped_total', help: 'Requests not copied or not compared, by route and reason', labelNames: ['route', 'reason'], registers });
    this.shadowDuration = new FastHistogram('strangler_shadow_duration_seconds', 'Whole answers of compared pairs, by route and side (primary, shadow)', DURATION_BUCKETS, this.registry);
    this.shadowFields = new Counter({ name: 'strangler_shadow_field_mismatch_total', help: 'Mismatches by route and differing field (50 fields per route, the rest as other)', labelNames: ['route', 'field'], registers });
    // The migration's counts are kept by the gateway in fixed-size structures and read here when scraped.
    new Counter({
      name: 'strangler_requests_by_side_total',
      help: 'Requests answered by a legacy upstream or a new one (migration.legacy), since start',
      labelNames: ['side'],
      registers,
      collect() {
        const m = migration();
        this.reset();
        this.inc({ side: 'legacy' }, m?.bySide.legacy ?? 0);
        this.inc({ side: 'new' }, m?.bySide.new ?? 0);
      },
    });
    new Counter({
      name: 'strangler_legacy_requests_total',
      help: `Requests answered by a legacy upstream, by method and path template (the ${MAX_TEMPLATE_SERIES} most requested; the rest as template="other")`,
      labelNames: ['method', 'template'],
      registers,
      collect() {
        const m = migration();
        this.reset();
        if (m === undefined) return;
        let listed = 0;
        for (const t of m.templates.slice(0, MAX_TEMPLATE_SERIES)) {
          this.inc({ method: t.method, template: t.template }, t.count);
          listed += t.count;
        }
        if (m.legacyTotal > listed) this.inc({ method: '*', template: 'other' }, m.legacyTotal - listed);
      },
    });
    this.rateLimitedTotal = new Counter({ name: 'strangler_rate_limited_total', help: 'Requests refused with 429 by a route rate limit, by route', labelNames: ['route'], registers });
    new Gauge({
      name: 'strangler_redis_up',
      aggregator: 'min',
      help: '1 while the shared-state Redis (state.redis) is reachable, 0 while it is not; absent without state.redis',
      registers,
      collect() {
        const up = redisUp();
        this.reset();
        if (up !== undefined) this.set(up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'strangler_tls_cert_expiry_seconds',
      help: 'Seconds until each certificate of the listening port (server.tls) expires, by its place in the table; negative once expired',
      labelNames: ['name'],
      registers,
      // The same certificates in every worker: the soonest is the answer.
      aggregator: 'min',
      collect() {
        this.reset();
        const now = Date.now();
        for (const c of tlsCertificates()) this.set({ name: c.name }, Math.round((c.notAfter.getTime() - now) / 1000));
      },
    });
    // Read from the tracer when scraped (its counts since this process started it; a reload that changes tracing starts new ones).
    new Counter({
      name: 'strangler_tracing_spans_exported_total',
      help: 'Spans the collector accepted (tracing)',
      registers,
      collect() {
        const c = tracingCounts();
        this.reset();
        if (c !== undefined) this.inc(c.exported);
      },
    });
    new Counter({
      name: 'strangler_tracing_spans_dropped_total',
      help: 'Spans dropped: the export queue was full (a slow or absent collector), or an export failed or timed out',
      labelNames: ['reason'],
      registers,
      collect() {
        const c = tracingCounts();
        this.reset();
        if (c === undefined) return;
        this.inc({ reason: 'queue_full' }, c.queueFull);
        this.inc({ reason: 'export_failed' }, c.exportFailed);
      },
    });
    this.workerRestarts = new Counter({ name: 'strangler_worker_restarts_total', help: 'Workers (server.workers) that exited and were restarted', registers });
    collectDefaultMetrics({ register: this.registry, prefix: 'strangler_' });
    for (const outcome of ['applied', 'unchanged', 'failed']) this.reloads.inc({ outcome }, 0);
  }

  /** Records one finished request. */
  request(route: string | undefined, upstream: string | undefined, status: number, seconds: number): void {
    const r = route === undefined ? NO_ROUTE : route;
    const u = upstream === undefined ? NO_ROUTE : upstream;
    // Keyed by route AND upstream: a request that started before a reload finishes
    // after it with its old upstream, and must not label the route's new traffic.
    let byUpstream = this.series.get(r);
    if (byUpstream === undefined) {
      byUpstream = new Map();
      this.series.set(r, byUpstream);
    }
    let s = byUpstream.get(u);
    if (s === undefined) {
      const labels = { route: r, upstream: u };
      s = {
        requests: STATUS_CLASSES.map((c) => this.requests.child({ ...labels, status_class: c })),
        duration: STATUS_CLASSES.map((c) => this.duration.child({ ...labels, status_class: c })),
      };
      byUpstream.set(u, s);
    }
    const cls = status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : 4;
    s.requests[cls]!.value++;
    this.duration.observe(s.duration[cls]!, seconds);
  }

  upstreamError(upstream: string, kind: string): void {
    this.upstreamErrors.inc({ upstream, kind });
  }

  fallback(route: string, from: string, to: string, reason: string): void {
    this.fallbacks.inc({ route, from, to, reason });
  }

  retry(upstream: string): void {
    this.retries.inc({ upstream });
  }

  ejected(upstream: string): void {
    this.ejections.inc({ upstream });
  }

  breakerChanged(upstream: string, to: string): void {
    this.breakerTransitions.inc({ upstream, to });
  }

  canary(route: string, side: 'primary' | 'canary', failed: boolean, seconds: number): void {
    const key = side === 'canary' ? `c ${route}` : `p ${route}`;
    let s = this.canarySeries.get(key);
    if (s === undefined) {
      const labels = { route, side };
      s = { requests: this.canaryRequests.child(labels), failures: this.canaryFailures.child(labels), duration: this.canaryDuration.child(labels) };
      this.canarySeries.set(key, s);
    }
    s.requests.value++;
    if (failed) s.failures.value++;
    this.canaryDuration.observe(s.duration, seconds);
  }

  workerRestarted(): void {
    this.workerRestarts.inc();
  }

  rateLimited(route: string): void {
    this.rateLimitedTotal.inc({ route });
  }

  shadowOutcome(route: string, outcome: string): void {
    this.shadowRequests.inc({ route, outcome });
  }

  shadowSkip(route: string, reason: string): void {
    this.shadowSkipped.inc({ route, reason });
  }

  shadowDurations(route: string, primaryMs: number, shadowMs: number): void {
    this.shadowDuration.observe(this.shadowDuration.child({ route, side: 'primary' }), primaryMs / 1000);
    this.shadowDuration.observe(this.shadowDuration.child({ route, side: 'shadow' }), shadowMs / 1000);
  }

  shadowField(route: string, field: string): void {
    this.shadowFields.inc({ route, field });
  }

  canaryRolledBack(route: string): void {
    this.canaryRollbacks.inc({ route });
  }

  reload(outcome: 'applied' | 'unchanged' | 'failed'): void {
    this.reloads.inc({ outcome });
    this.lastReload.set({ outcome }, Date.now() / 1000);
  }

  activeVersion(version: string): void {
    this.configVersion.reset();
    this.configVersion.set({ version }, 1);
  }

  /** A route table swap may retire routes and upstreams: drop their cached children (the series stay exported). */
  tableChanged(): void {
    this.series.clear();
  }

  async text(): Promise<string> {
    // prom-client 15 writes NaN as "Nan"; the exposition format (and strict parsers) want "NaN".
    return (await this.registry.metrics()).replace(/^([^#\n].*) Nan$/gm, '$1 NaN');
  }
}

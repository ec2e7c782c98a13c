import { createTracer, type Tracer } from './observability/tracing';
import type { TracingConfig } from './config/schema';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { TlsListener } from './tls/listener';
import { FileSetWatcher } from './config/watch';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AdminControl, CandidateCheck, EditOutcome, ReloadError, ReloadOutcome } from './admin/app';
import type { LoadedTable } from './config/load';
import { formatProblem, type ConfigProblem } from './config/problem';
import type { AccessLog } from './observability/accessLog';
import { createLoggers, type LogOutputs, type Logger, type Loggers } from './observability/logger';
import type { GatewayMetrics, MigrationCounts } from './observability/metrics';
import { MigrationInsight, type InsightSnapshot } from './migration/insight';
import type { CanaryEvent, Peers } from './state/peers';
import type { ClusterPeers } from './cluster/peers';
import type { FromWorker, ToWorker } from './cluster/protocol';
import { createPipeline, type PipelineHost } from './pipeline';
import type { AuthBreaker } from './auth';
import { onUpstreamResponse, type DispatchEvents } from './dispatch';
import { UpstreamBreaker } from './resilience/breaker';
import { RouteMatcher } from './routing/compile';
import { activate, retiredShadows, retiredUpstreams, type ActiveTable, type TableDeps } from './table';
import { TableLoader } from './tableLoader';
import { listenOn } from './core/listen';
import { openSource, TableControl, type ReloadRecord, type ReloadTrigger, type TableSource } from './tableControl';

/** A route table read and checked, with where it came from and the loader that read it. */
export interface Loaded {
  loader: TableLoader;
  source: TableSource;
  table: LoadedTable;
}

export type { ReloadRecord, ReloadTrigger };

export interface GatewayOptions {
  /** Route table file. */
  configPath: string;
  /** Overrides `server.port` (the CLI passes PORT from the environment). */
  port?: number;
  /** Overrides `admin.port`. */
  adminPort?: number;
  host?: string;
  /** Environment for `${VAR}` interpolation. */
  env?: NodeJS.ProcessEnv;
  /** Overrides `log.format` (STRANGLER_LOG_FORMAT in the environment). */
  logFormat?: 'json' | 'pretty';
  /** Log destinations (tests capture logs here). */
  logOutputs?: LogOutputs;
  /** The table already read by Gateway.load (the CLI reads it first to see how many workers it asks for). */
  loaded?: Loaded;
  /** Set in a worker of server.workers: the table its primary loaded, and the way to its primary. */
  worker?: { table: LoadedTable; send: (m: FromWorker) => void };
}

export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid route table:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The running gateway: builds everything from the route table, owns the
 * listening socket and the lifecycle (start, drain, stop).
 */
export class Gateway implements PipelineHost, AdminControl {
  table: ActiveTable;
  draining = false;
  /** Only with an admin port, the one place metrics can be read. */
  readonly metrics: GatewayMetrics | undefined;
  /** State shared with other replicas (state.redis, read at start); undefined without it. */
  readonly shared: Peers | undefined;
  /** server.tls: the certificates of the listening port (an https server), and the plain listener that redirects to it. */
  private readonly tls: TlsListener | undefined;
  private redirect: Server | undefined;
  /** The Strict-Transport-Security value (server.hsts), from the table served. */
  private hsts: string | undefined;
  /** The table served (to activate again when upstream TLS files change). */
  private current: LoadedTable | undefined;
  /** upstreams.<name>.tls files of the table served (made at the first table naming one). */
  private upstreamTlsFiles: FileSetWatcher | undefined;
  private swaps: Promise<unknown> = Promise.resolve();
  /** A worker's link to the others through its primary (server.workers without Redis). */
  private readonly clusterPeers: ClusterPeers | undefined;
  /** The migration's counts: only with an admin port (where they are read) and migration.count. */
  migration: MigrationInsight | undefined;
  /** Breaker state changes since start (the last TRANSITIONS_KEPT), and instance ejections per upstream. */
  private readonly breakerTransitions: Array<{ at: string; upstream: string; from: string; to: string }> = [];
  private readonly ejections = new Map<string, number>();
  private admin: Server | undefined;
  readonly dispatchEvents: DispatchEvents;
  private readonly deps: TableDeps;
  /** The route table's owner: this process, unless it is a worker of server.workers (its primary owns it). */
  private readonly control: TableControl | undefined;
  private readonly loader: TableLoader | undefined;
  readonly log: Logger;
  readonly accessLog: AccessLog | null;
  private readonly loggers: Loggers;
  /** The HTTP/1.1 server every request goes through (with server.tls it does not listen: the TLS front hands it connections). */
  private readonly server: Server;
  /** What listens on the port: the server itself, or the TLS front. */
  private readonly listener: NetServer;
  private inFlight = 0;
  /** OpenTelemetry tracing (the table's `tracing`); undefined without it. */
  tracer: Tracer | undefined = undefined;
  /** Tracers replaced by a reload, until the requests that started under them are done. */
  private readonly retiredTracers = new Map<Tracer, NodeJS.Timeout>();
  private readonly upgraded = new Set<Duplex>();
  private drainWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    loaded: LoadedTable,
    private readonly options: GatewayOptions,
    owner: Omit<Loaded, 'table'> | undefined,
  ) {
    this.loader = owner?.loader;
    const logConfig = options.logFormat ? { ...loaded.config.log, format: options.logFormat } : loaded.config.log;
    this.loggers = createLoggers(logConfig, options.logOutputs);
    this.log = this.loggers.root;
    this.accessLog = this.loggers.access;
    // Metrics are read on the admin port: without one, none are kept and prom-client is never loaded.
    this.metrics = loaded.config.admin === undefined ? undefined : new (loadMetrics().GatewayMetrics)(
      () => [...this.table.upstreams.values()].map((u) => ({ upstream: u.name, open: u.transport.openConnections() })),
      () => this.inFlight,
      () => [...this.table.upstreams.values()].map((u) => ({ upstream: u.name, state: u.breaker.state })),
      () => [...this.table.canaries.values()].map((c) => ({ route: c.route, percent: c.effectivePercent(), rolledBack: c.rolledBack !== undefined })),
      () => this.migrationCounts(),
      () => {
        const status = this.shared?.status();
        return status === undefined ? undefined : status.redis === 'connected';
      },
      () => [
        ...(this.tls?.certificates ?? []),
        ...[...this.table.upstreams.values()].flatMap((u) => (u.clientCertificate === undefined ? [] : [{ name: `upstreams.${u.name}.tls`, notAfter: u.clientCertificate.notAfter }])),
      ],
      () => this.tracer?.counts(),
    );
    const metrics = this.metrics;
    this.dispatchEvents = {
      log: this.log,
      fallback: (route, from, to, reason) => metrics?.fallback(route, from, to, reason),
      retry: (upstream) => metrics?.retry(upstream),
      ejected: (upstream) => {
        this.ejections.set(upstream, (this.ejections.get(upstream) ?? 0) + 1);
        metrics?.ejected(upstream);
      },
    };
    this.deps = {
      log: this.log,
      events: {
        breakerChanged: (upstream, from, to) => {
          this.breakerTransitions.push({ at: new Date().toISOString(), upstream, from, to });
          if (this.breakerTransitions.length > TRANSITIONS_KEPT) this.breakerTransitions.shift();
          metrics?.breakerChanged(upstream, to);
        },
      },
      onResponse: onUpstreamResponse,
      shadowEvents: {
        outcome: (route, outcome) => metrics?.shadowOutcome(route, outcome),
        skipped: (route, reason) => metrics?.shadowSkip(route, reason),
        late: (route, reqId, outcome, fields) => this.log.info({ reqId, route, shadow: outcome, fields }, 'shadow comparison'),
        durations: (route, primaryMs, shadowMs) => metrics?.shadowDurations(route, primaryMs, shadowMs),
        field: (route, field) => metrics?.shadowField(route, field),
      },
      canaryEvents: {
        rolledBack: (route, details) => {
          this.shared?.canaryEvent({ route, kind: 'rolled-back', at: Date.now(), reason: String(details.reason ?? ''), errorPercent: Number(details.errorPercent ?? 0), requests: Number(details.requests ?? 0) });
          metrics?.canaryRolledBack(route);
          this.log.warn({ route, ...details }, `canary of route ${route} rolled back: all its users go to the primary`);
        },
        stepped: (route, percent, step, nextStepAt) => {
          this.shared?.canaryEvent({ route, kind: 'ramp', at: Date.now(), step, nextStepAt });
          this.log.info({ route, percent }, `canary of route ${route} ramped to ${percent}%`);
        },
      },
      authBreaker: (auth) =>
        auth.forward
          ? (new UpstreamBreaker(auth.forward.breaker, {
              stateChanged: (from, to, counts) => this.log[to === 'open' ? 'warn' : 'info']({ upstream: 'auth.forward', from, to, ...counts }, `circuit ${to} for the forward-auth endpoint`),
            }) as unknown as AuthBreaker)
          : undefined,
    };
    // Replicas share canary decisions and rate-limit counters through Redis (loaded only when configured);
    // without it, the workers of one replica (server.workers) share them through their primary.
    const redis = loaded.config.state?.redis;
    const adopt = (e: CanaryEvent): void => {
      const c = this.table.canaries.get(e.route);
      if (c === undefined) return;
      c.adopt(e);
      if (e.kind === 'ramp') this.log.info({ route: e.route, step: e.step }, `canary of route ${e.route} ramped by another gateway process`);
      else this.log.warn({ route: e.route, kind: e.kind, at: new Date(e.at).toISOString() }, `canary of route ${e.route} ${e.kind === 'reset' ? 'reset' : 'rolled back'} by another gateway process`);
    };
    if (redis !== undefined) {
      this.shared = new (loadSharedState().SharedState)(redis, {
        canary: adopt,
        availability: (up, detail) =>
          up ? this.log.info({ redis: 'connected' }, 'shared state: Redis is reachable') : this.log.error({ redis: 'unavailable', detail }, 'shared state: Redis is unreachable; serving with the last shared state and local decisions'),
      });
    } else if (options.worker !== undefined) {
      this.clusterPeers = new (require('./cluster/peers') as typeof import('./cluster/peers')).ClusterPeers(options.worker.send, adopt);
      this.shared = this.clusterPeers;
    } else this.shared = undefined;
    this.deps.sharedLimiter = this.shared;
    if (this.shared !== undefined) {
      // Once a second: the canary windows (rollback and ramp rules) and the shadow noise learnt.
      this.shared.countsSource = () => [
        ...[...this.table.canaries.values()].map((c) => ({ key: `canary:${c.route}`, counts: c.localCounts() })),
        ...[...this.table.shadows.values()].filter((s) => s.config.noise !== undefined).map((s) => ({ key: `shadow:${s.route}`, counts: s.learnt() })),
      ];
      const shared = this.shared;
      this.deps.sharedCounts = (key) => shared.remoteCounts(key);
    }
    const s = loaded.config.server;
    // server.tls is read at start (the listener's kind); its certificate files are re-read when they change.
    this.tls = s.tls === undefined ? undefined : new (require('./tls/listener') as typeof import('./tls/listener')).TlsListener(s.tls);
    this.table = activate(loaded, this.deps);
    this.tableServed(loaded);
    this.control = owner === undefined ? undefined : new TableControl(options.configPath, owner.loader, owner.source, loaded, this, this.log, this.metrics);
    if (this.control === undefined) this.metrics?.activeVersion(loaded.version);
    const serverOptions = {
      maxHeaderSize: s.maxHeaderBytes,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      // Node checks the two timeouts above only this often (30 s by default): a slow client would
      // be cut up to 30 s late. A quarter of the shorter one keeps it within a quarter of its limit.
      connectionsCheckingInterval: checkingIntervalMs(s.headersTimeoutMs, s.requestTimeoutMs),
      // Node's default 1000 header lines is generous; the byte limit above is what protects us.
    };
    this.server = createServer(serverOptions);
    this.listener = this.tls === undefined ? this.server : this.tls.createFront(this.server, s.maxHeaderBytes, s.requestTimeoutMs);
    // No count limit in Node's parser: past it Node drops header lines from req.headers while still framing
    // the body with them (a dropped Content-Length). The byte limit bounds memory; the pipeline refuses
    // requests with MAX_HEADER_LINES or more lines (431).
    this.server.maxHeadersCount = 0;
    const pipeline = createPipeline(this);
    // Strict-Transport-Security (server.hsts, over TLS only) is set before anything answers: every answer carries it.
    this.server.on('request', this.tls === undefined ? pipeline.onRequest : (req: IncomingMessage, res: ServerResponse) => {
      if (this.hsts !== undefined) res.setHeader('strict-transport-security', this.hsts);
      pipeline.onRequest(req, res);
    });
    this.server.on('upgrade', pipeline.onUpgrade);
    this.server.on('clientError', pipeline.onClientError);
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    if (options.worker !== undefined) {
      // A worker of server.workers: its primary read and checked the table, and owns watch, reload and the admin API.
      const gw = new Gateway(options.worker.table, options, undefined);
      await gw.listen();
      return gw;
    }
    const loaded = options.loaded ?? (await Gateway.load(options));
    const gw = new Gateway(loaded.table, options, loaded);
    await gw.listen();
    await gw.listenAdmin();
    gw.control?.watch();
    return gw;
  }

  /** Reads and checks the route table (on a worker thread); throws ConfigError with every problem. */
  static async load(options: Pick<GatewayOptions, 'configPath' | 'env'>): Promise<Loaded> {
    const loader = new TableLoader(options.env ?? process.env);
    const source = await openSource(loader, options.configPath);
    if (Array.isArray(source)) {
      loader.close();
      throw new ConfigError(source);
    }
    const result = await source.read(undefined);
    if (!result.ok) {
      loader.close();
      source.stop();
      throw new ConfigError(result.problems);
    }
    // Its heap goes before the traffic comes: tearing an isolate down is not free, nor is holding it.
    loader.release();
    return { loader, source, table: result.table };
  }

  private async listenAdmin(): Promise<void> {
    if (!this.table.config.admin) return;
    // The admin app (koa) is loaded only when the table asks for an admin port.
    const { listenAdmin } = await import('./admin/app');
    this.admin = await listenAdmin(this, this.log, this.options.adminPort);
  }

  get adminPort(): number | undefined {
    return this.admin ? (this.admin.address() as AddressInfo).port : undefined;
  }

  /**
   * upstreams.<name>.tls: every file is watched while a served table names it
   * (and each load warns about insecureSkipVerify). A change rebuilds the
   * upstreams whose files changed, if every file still checks.
   */
  private watchUpstreamTls(loaded: LoadedTable): void {
    const files: string[] = [];
    for (const [name, u] of Object.entries(loaded.config.upstreams)) {
      if (u.tls === undefined) continue;
      if (u.tls.insecureSkipVerify) this.log.warn({ upstream: name }, `upstream ${name}: insecureSkipVerify is on: its certificate is not verified, anyone on the path can pose as it`);
      for (const f of [u.tls.caFile, u.tls.certFile, u.tls.keyFile]) if (f !== undefined) files.push(f);
    }
    if (files.length === 0 && this.upstreamTlsFiles === undefined) return;
    const r = loaded.config.reload;
    this.upstreamTlsFiles ??= new FileSetWatcher(() => this.reloadUpstreamTls(), r.debounceMs, r.pollIntervalMs);
    this.upstreamTlsFiles.watch(files);
  }

  private reloadUpstreamTls(): void {
    void this.inOrder(async () => this.reloadUpstreamTlsNow());
  }

  private reloadUpstreamTlsNow(): void {
    const loaded = this.current;
    if (this.draining || loaded === undefined) return;
    const { readUpstreamTls } = require('./tls/certificates') as typeof import('./tls/certificates');
    const problems: string[] = [];
    for (const [name, u] of Object.entries(loaded.config.upstreams)) {
      if (u.tls === undefined) continue;
      try {
        readUpstreamTls(u.tls, name);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    const previous = this.table;
    if (problems.length === 0) {
      // The same table, activated again: only upstreams whose files changed are rebuilt (their pools start afresh).
      const next = activate(loaded, this.deps, previous, previous.matcher);
      this.table = next;
      const rebuilt = [...retiredUpstreams(previous, next)];
      for (const upstream of rebuilt) upstream.retire();
      if (rebuilt.length === 0) return;
      this.tlsReloaded({ ok: true, changes: [`upstream TLS files reloaded: ${rebuilt.map((u) => u.name).join(', ')}`] });
      return;
    }
    this.tlsReloaded({ ok: false, file: 'upstreams', message: `${problems.join('; ')}; still using the previous files` });
  }

  /** A TLS files reload, reported where reloads are: here, or (a worker of server.workers) by the primary. */
  private tlsReloaded(result: { ok: true; changes: string[] } | { ok: false; file: string; message: string }): void {
    if (this.control !== undefined) {
      this.control.external('tls', result);
      return;
    }
    if (result.ok) this.log.info({ trigger: 'tls', changes: result.changes }, result.changes[0]!);
    else this.log.error({ trigger: 'tls', problems: [result.message] }, `TLS files rejected: ${result.message}`);
    this.options.worker?.send({ t: 'tls', result });
  }

  /** The certificate files changed: swapped in if they check, else the old ones are kept (and it is reported like a bad reload). */
  private reloadTls(): void {
    const tls = this.tls;
    if (tls === undefined || this.draining) return;
    const r = tls.reload(this.listener as TlsServer);
    this.tlsReloaded(
      r.ok
        ? { ok: true, changes: [`TLS certificates reloaded: ${r.certificates.map((c) => `${c.subject} until ${c.notAfter.toISOString()}`).join(', ')}`] }
        : { ok: false, file: 'server.tls', message: `${r.error}; still serving the previous certificates` },
    );
  }

  get hstsHeader(): string | undefined {
    return this.hsts;
  }

  get redirectPort(): number | undefined {
    return this.redirect ? (this.redirect.address() as AddressInfo).port : undefined;
  }

  /** A message from the primary for the peers (canary decisions and counts, leases); false when it is not one. */
  peerMessage(m: ToWorker): boolean {
    return this.clusterPeers?.receive(m) ?? false;
  }

  sharedStatus(): { redis: 'connected' | 'unavailable'; detail: string } | undefined {
    return this.shared?.status();
  }

  async metricsText(): Promise<{ contentType: string; text: string } | undefined> {
    const m = this.metrics;
    return m === undefined ? undefined : { contentType: m.registry.contentType, text: await m.text() };
  }

  /**
   * `tracing` of the table served: a tracer is made when it appears or
   * changes (the OpenTelemetry SDK is loaded then), the old one exports what
   * it holds and stops; requests in flight keep the trace they started with.
   */
  private traceWith(config: TracingConfig | undefined): void {
    const old = this.tracer;
    if (config !== undefined && old !== undefined && JSON.stringify(old.config) === JSON.stringify(config)) return;
    this.tracer = config === undefined ? undefined : createTracer(config);
    if (old === undefined) return;
    // Requests in flight end their spans into the tracer they started with: it stops once they have had time to finish.
    const timer = setTimeout(() => {
      this.retiredTracers.delete(old);
      void old.shutdown().catch(() => undefined);
    }, TRACER_GRACE_MS).unref();
    this.retiredTracers.set(old, timer);
  }

  /** A table was swapped in: the migration counts follow its settings; upstream TLS files are watched. */
  private tableServed(loaded: LoadedTable): void {
    this.current = loaded;
    this.watchUpstreamTls(loaded);
    this.hsts = this.tls === undefined ? undefined : (require('./tls/listener') as typeof import('./tls/listener')).hstsValue(loaded.config.server);
    this.traceWith(loaded.config.tracing);
    const m = loaded.config.migration;
    if (loaded.config.admin === undefined || !m.count) {
      this.migration = undefined;
      return;
    }
    const settings = { legacy: this.table.legacy, templates: m.templates };
    if (this.migration === undefined || this.migration.inventorySize !== m.inventorySize) this.migration = new MigrationInsight(settings, m.inventorySize);
    else this.migration.configure(settings);
  }

  private migrationCounts(): MigrationCounts | undefined {
    const m = this.migration;
    if (m === undefined) return undefined;
    return { bySide: m.bySide, legacyTotal: m.inventory.total, templates: m.inventory.sorted() };
  }

  /** The migration report with each route's place in the table (GET /migration); undefined when not counting. */
  migrationReport(others: readonly InsightSnapshot[] = []): Record<string, unknown> | undefined {
    const m = this.withOthers(others);
    if (m === undefined) return undefined;
    const report = m.report();
    const legacy = new Set(this.table.legacy);
    const canaries = this.table.canaries;
    const shadows = this.table.shadows;
    const routes = this.table.config.routes.map((r) => {
      const canary = canaries.get(r.name);
      const shadow = shadows.get(r.name)?.describe();
      const traffic = report.routes[r.name];
      return {
        route: r.name,
        path: r.path,
        upstream: r.upstream ?? null,
        // A route that redirects or answers by itself sends nothing to either side.
        side: r.upstream === undefined ? 'none' : legacy.has(r.upstream) ? 'legacy' : 'new',
        canary: canary === undefined ? null : { upstream: canary.config.upstream, side: legacy.has(canary.config.upstream) ? 'legacy' : 'new', percent: canary.effectivePercent(), rolledBack: canary.rolledBack !== undefined },
        shadow: shadow === undefined ? null : { upstream: shadow.shadow, mismatchPercent: (shadow.window as { mismatchPercent: number | null }).mismatchPercent, compared: (shadow.window as { compared: number }).compared },
        breakers: [...new Set([...(r.upstream ? [r.upstream] : []), ...(r.canary ? [r.canary.upstream] : []), ...(r.fallback ? [r.fallback] : [])])].map((u) => ({ upstream: u, state: this.table.upstreams.get(u)?.breaker.state ?? 'unknown' })),
        ...(traffic ?? { now: null, last24h: null, users: null, p95Ms: null }),
      };
    });
    return { version: this.table.version, ...report, routes };
  }

  inventory(others: readonly InsightSnapshot[] = []): ReturnType<MigrationInsight['inventoryReport']> | undefined {
    return this.withOthers(others)?.inventoryReport();
  }

  /** This process's migration counts (server.workers: for the worker that sums them). */
  migrationSnapshot(): InsightSnapshot | undefined {
    return this.migration?.snapshot();
  }

  /** The migration counts, summed with other workers' when given. */
  private withOthers(others: readonly InsightSnapshot[]): MigrationInsight | undefined {
    const m = this.migration;
    if (m === undefined || others.length === 0) return m;
    const cfg = this.table.config.migration;
    return MigrationInsight.merged({ legacy: this.table.legacy, templates: cfg.templates }, m.inventorySize, [m.snapshot(), ...others]);
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.owned().reload(trigger);
  }

  reloads(): ReloadRecord[] {
    return this.owned().reloads();
  }

  get lastReloadError(): ReloadError | undefined {
    return this.control?.lastReloadError;
  }

  tableText(): Promise<{ version: string; file: string; allowEdit: boolean; text: string }> {
    return this.owned().tableText();
  }

  checkEdit(text: string): Promise<CandidateCheck> {
    return this.owned().checkEdit(text);
  }

  applyEdit(text: string, baseVersion: string, by: string): Promise<EditOutcome> {
    return this.owned().applyEdit(text, baseVersion, by);
  }

  checkCandidate(yaml: string): Promise<CandidateCheck> {
    return this.owned().checkCandidate(yaml);
  }

  /** The table's owner; a worker of server.workers has none (its primary owns the table). */
  private owned(): TableControl {
    if (this.control === undefined) throw new Error('this gateway is a worker: its primary owns the route table');
    return this.control;
  }

  /**
   * Swaps in a new table version, already validated (by the table's owner:
   * this process, or the primary). The matcher is compiled a slice of routes
   * per event-loop turn; the swap itself is one synchronous step, and each
   * request keeps the table it started with. false: not applied (shutting down).
   */
  apply(loaded: LoadedTable): Promise<boolean> {
    return this.inOrder(() => this.applyNow(loaded));
  }

  /** Table swaps one at a time (a worker can be sent two versions at once; upstream TLS files can change meanwhile). */
  private inOrder<T>(work: () => Promise<T>): Promise<T> {
    const next = this.swaps.then(work);
    this.swaps = next.catch(() => undefined);
    return next;
  }

  private async applyNow(loaded: LoadedTable): Promise<boolean> {
    if (this.draining) return false;
    const current = this.table;
    const matcher = await RouteMatcher.build(loaded.config);
    if (this.draining) return false;
    const next = activate(loaded, this.deps, current, matcher);
    this.table = next;
    this.tableServed(loaded);
    this.metrics?.tableChanged();
    if (this.control === undefined) this.metrics?.activeVersion(loaded.version);
    for (const upstream of retiredUpstreams(current, next)) upstream.retire();
    for (const shadow of retiredShadows(current, next)) shadow.close();
    if (current.auth !== next.auth) current.auth?.stop();
    return true;
  }

  canaryStates(): Array<Record<string, unknown>> {
    return [...this.table.canaries.values()].map((c) => c.describe());
  }

  shadowStates(): Array<Record<string, unknown>> {
    return [...this.table.shadows.values()].map((s) => s.describe());
  }

  shadowSamples(route: string): unknown[] | undefined {
    return this.table.shadows.get(route)?.samples();
  }

  resetShadow(route: string): boolean {
    const s = this.table.shadows.get(route);
    if (s === undefined) return false;
    s.reset();
    this.log.info({ route }, `parallel run of route ${route} reset by an operator`);
    return true;
  }

  resetCanary(route: string): boolean {
    const c = this.table.canaries.get(route);
    if (c === undefined) return false;
    c.reset();
    this.shared?.canaryEvent({ route, kind: 'reset', at: Date.now() });
    this.log.info({ route }, `canary of route ${route} reset by an operator`);
    return true;
  }

  upstreamStates(): Array<Record<string, unknown>> {
    return [...this.table.upstreams.values()].map((u) => ({ ...u.describe(), ejections: this.ejections.get(u.name) ?? 0 }));
  }

  breakerHistory(): Array<{ at: string; upstream: string; from: string; to: string }> {
    return [...this.breakerTransitions].reverse();
  }

  private async listen(): Promise<void> {
    const s = this.table.config.server;
    const port = this.options.port ?? s.port;
    const host = this.options.host ?? s.host;
    const bound = await listenOn(this.listener, port, host);
    this.log.info({ port: bound, host, tls: this.tls !== undefined, version: this.table.version, routes: this.table.config.routes.length }, 'gateway listening');
    if (this.tls === undefined) return;
    const r = s.redirectHttp;
    if (r !== undefined) {
      const { createRedirectServer } = await import('./tls/listener');
      const redirect = createRedirectServer(() => this.port, () => this.table.config.server.healthPath);
      this.redirect = redirect;
      const redirectPort = await listenOn(redirect, r.port, r.host ?? host);
      this.log.info({ port: redirectPort, host: r.host ?? host }, 'redirecting plain HTTP to https');
    }
    const reload = this.table.config.reload;
    this.tls.watch(() => this.reloadTls(), reload.debounceMs, reload.pollIntervalMs);
  }

  get port(): number {
    return (this.listener.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestFinished(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiters.length) {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  socketUpgraded(socket: Duplex): void {
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  /**
   * Stops accepting, lets in-flight requests finish (bounded by the drain
   * timeout), then closes what is left. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    this.draining = true;
    this.control?.stop();
    const timeoutMs = this.table.config.server.drainTimeoutMs;
    this.log.info({ inFlight: this.inFlight, timeoutMs }, 'draining');
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    // (With TLS the HTTP/1.1 server does not listen: closing it stops its timeout checks and closes its idle connections.)
    if (this.listener !== this.server) this.server.close(() => undefined);
    this.server.closeIdleConnections();
    // HTTP/2 clients are told GOAWAY: their open streams finish, new ones go elsewhere.
    this.tls?.drain();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([drained, expired]);
      clearTimeout(timer);
      if (this.inFlight > 0) this.log.warn({ inFlight: this.inFlight }, 'drain timeout: closing remaining connections');
    }
    for (const socket of this.upgraded) socket.destroy();
    this.tls?.closeAll();
    this.server.closeAllConnections();
    await closed;
    this.tls?.stop();
    this.upstreamTlsFiles?.stop();
    if (this.redirect !== undefined) {
      const redirect = this.redirect;
      await new Promise<void>((resolve) => {
        redirect.close(() => resolve());
        redirect.closeAllConnections();
      });
    }
    if (this.admin) {
      const admin = this.admin;
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    }
    for (const upstream of this.table.upstreams.values()) upstream.close();
    for (const shadow of this.table.shadows.values()) shadow.close();
    this.table.auth?.stop();
    this.shared?.close();
    this.loader?.close();
    const tracers = [...this.retiredTracers.keys(), ...(this.tracer === undefined ? [] : [this.tracer])];
    if (tracers.length > 0) {
      for (const timer of this.retiredTracers.values()) clearTimeout(timer);
      this.retiredTracers.clear();
      // What is queued goes to the collector (bounded: a collector that is down must not hold the stop).
      let traceTimer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(tracers.map((t) => t.shutdown().catch(() => undefined))), new Promise<void>((resolve) => (traceTimer = setTimeout(resolve, 5000)))]);
      clearTimeout(traceTimer);
    }
    this.log.info('stopped');
    // Batches already handed to the files finish first, so the last lines land after them, in order
    // (bounded: a stdout pipe nobody reads must not hold the stop).
    let settleTimer: NodeJS.Timeout | undefined;
    await Promise.race([this.loggers.settled(), new Promise<void>((resolve) => (settleTimer = setTimeout(resolve, 5000)))]);
    clearTimeout(settleTimer);
    this.loggers.close();
  }
}

/** How long a tracer replaced by a reload keeps taking the spans of the requests that started under it. */
const TRACER_GRACE_MS = 60_000;

/** Breaker state changes kept for GET /upstreams. */
const TRANSITIONS_KEPT = 100;

function loadSharedState(): typeof import('./state/redis') {
  return require('./state/redis') as typeof import('./state/redis');
}

function loadMetrics(): typeof import('./observability/metrics') {
  return require('./observability/metrics') as typeof import('./observability/metrics');
}

/** How often Node checks the header and request timeouts: a quarter of the shorter, from 250 ms to 30 s. */
export function checkingIntervalMs(headersTimeoutMs: number, requestTimeoutMs: number): number {
  const shortest = requestTimeoutMs > 0 ? Math.min(headersTimeoutMs, requestTimeoutMs) : headersTimeoutMs;
  return Math.min(30_000, Math.max(250, Math.floor(shortest / 4)));
}

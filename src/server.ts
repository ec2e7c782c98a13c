import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AdminControl, CandidateCheck, EditOutcome, ReloadError, ReloadOutcome } from './admin/app';
import type { LoadedTable } from './config/load';
import { formatProblem, type ConfigProblem } from './config/problem';
import { TableWatcher } from './config/watch';
import type { AccessLog } from './observability/accessLog';
import { createLoggers, type LogOutputs, type Logger, type Loggers } from './observability/logger';
import type { GatewayMetrics, MigrationCounts } from './observability/metrics';
import { MigrationInsight } from './migration/insight';
import type { SharedState } from './state/redis';
import { saveTableFile } from './config/save';
import { versionOf } from './config/version';
import { readFile } from 'node:fs/promises';
import { createPipeline, type PipelineHost } from './pipeline';
import type { AuthBreaker } from './auth';
import { onUpstreamResponse, type DispatchEvents } from './dispatch';
import { UpstreamBreaker } from './resilience/breaker';
import { RouteMatcher } from './routing/compile';
import { activate, retiredShadows, retiredUpstreams, type ActiveTable, type TableDeps } from './table';
import { TableLoader } from './tableLoader';

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
  lastReloadError: ReloadError | undefined;
  /** Only with an admin port, the one place metrics can be read. */
  readonly metrics: GatewayMetrics | undefined;
  /** State shared with other replicas (state.redis, read at start); undefined without it. */
  readonly shared: SharedState | undefined;
  /** The migration's counts: only with an admin port (where they are read) and migration.count. */
  migration: MigrationInsight | undefined;
  /** The last RELOADS_KEPT reload attempts, newest last. */
  private readonly reloadHistory: ReloadRecord[] = [];
  /** YAML texts of recently served versions: what a console edit was based on, to show what changed since. */
  private readonly recentTexts = new Map<string, string>();
  /** Breaker state changes since start (the last TRANSITIONS_KEPT), and instance ejections per upstream. */
  private readonly breakerTransitions: Array<{ at: string; upstream: string; from: string; to: string }> = [];
  private readonly ejections = new Map<string, number>();
  private admin: Server | undefined;
  readonly dispatchEvents: DispatchEvents;
  private readonly deps: TableDeps;
  private watcher: TableWatcher | undefined;
  private readonly loader: TableLoader;
  private loaded: LoadedTable;
  private reloadQueue: Promise<unknown> = Promise.resolve();
  readonly log: Logger;
  readonly accessLog: AccessLog | null;
  private readonly loggers: Loggers;
  private readonly server: Server;
  private inFlight = 0;
  private readonly upgraded = new Set<Duplex>();
  private drainWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    loaded: LoadedTable,
    private readonly options: GatewayOptions,
    loader: TableLoader,
  ) {
    this.loader = loader;
    this.loaded = loaded;
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
      () => (this.shared === undefined ? undefined : this.shared.status().redis === 'connected'),
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
    // Replicas share canary decisions and rate-limit counters through Redis (loaded only when configured).
    const redis = loaded.config.state?.redis;
    this.shared =
      redis === undefined
        ? undefined
        : new (loadSharedState().SharedState)(redis, {
            canary: (e) => {
              const c = this.table.canaries.get(e.route);
              if (c === undefined) return;
              c.adopt(e);
              if (e.kind === 'ramp') this.log.info({ route: e.route, step: e.step }, `canary of route ${e.route} ramped by another replica`);
              else this.log.warn({ route: e.route, kind: e.kind, at: new Date(e.at).toISOString() }, `canary of route ${e.route} ${e.kind === 'reset' ? 'reset' : 'rolled back'} by another replica`);
            },
            availability: (up, detail) =>
              up ? this.log.info({ redis: 'connected' }, 'shared state: Redis is reachable') : this.log.error({ redis: 'unavailable', detail }, 'shared state: Redis is unreachable; serving with the last shared state and local decisions'),
          });
    this.deps.sharedLimiter = this.shared;
    if (this.shared !== undefined) {
      this.shared.countsSource = () => [...this.table.canaries.values()].map((c) => ({ route: c.route, ...c.localCounts() }));
      const shared = this.shared;
      this.deps.sharedCounts = (route) => shared.remoteCounts(route);
    }
    this.table = activate(loaded, this.deps);
    this.tableServed(loaded);
    this.metrics?.activeVersion(loaded.version);
    const s = loaded.config.server;
    this.server = createServer({
      maxHeaderSize: s.maxHeaderBytes,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      // Node checks the two timeouts above only this often (30 s by default): a slow client would
      // be cut up to 30 s late. A quarter of the shorter one keeps it within a quarter of its limit.
      connectionsCheckingInterval: checkingIntervalMs(s.headersTimeoutMs, s.requestTimeoutMs),
      // Node's default 1000 header lines is generous; the byte limit above is what protects us.
    });
    // No count limit in Node's parser: past it Node drops header lines from req.headers while still framing
    // the body with them (a dropped Content-Length). The byte limit bounds memory; the pipeline refuses
    // requests with MAX_HEADER_LINES or more lines (431).
    this.server.maxHeadersCount = 0;
    const pipeline = createPipeline(this);
    this.server.on('request', pipeline.onRequest);
    this.server.on('upgrade', pipeline.onUpgrade);
    this.server.on('clientError', pipeline.onClientError);
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const loader = new TableLoader(options.env ?? process.env);
    const result = await loader.load(options.configPath, undefined);
    if (!result.ok) {
      loader.close();
      throw new ConfigError(result.problems);
    }
    // Its heap goes before the traffic comes: tearing an isolate down is not free, nor is holding it.
    loader.release();
    const gw = new Gateway(result.table, options, loader);
    await gw.listen();
    await gw.listenAdmin();
    gw.watch();
    return gw;
  }

  private async listenAdmin(): Promise<void> {
    const cfg = this.table.config.admin;
    if (!cfg) return;
    // The admin app (koa) is loaded only when the table asks for an admin port.
    const { createAdminApp } = await import('./admin/app');
    const admin = createServer(createAdminApp(this).callback());
    this.admin = admin;
    await new Promise<void>((resolve, reject) => {
      admin.once('error', reject);
      admin.listen(this.options.adminPort ?? cfg.port, cfg.host, () => {
        admin.off('error', reject);
        resolve();
      });
    });
    this.log.info({ port: this.adminPort, host: cfg.host, auth: cfg.token ? 'bearer token required' : 'none (loopback only)' }, 'admin API listening');
  }

  private watch(): void {
    const r = this.table.config.reload;
    if (!r.watch) return;
    this.watcher = new TableWatcher(this.options.configPath, () => void this.reload('watch'), r.debounceMs, r.pollIntervalMs);
    this.watcher.start();
  }

  get adminPort(): number | undefined {
    return this.admin ? (this.admin.address() as AddressInfo).port : undefined;
  }

  /**
   * Re-reads the route table file. A valid new version is swapped in atomically
   * (each request keeps the table it started with); an invalid one changes
   * nothing but the reported error. Never throws.
   */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.serially(async () => this.remember(trigger, await this.reloadNow(trigger)));
  }

  /** One reload or console edit at a time, in the order they were asked for. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.reloadQueue.then(work);
    this.reloadQueue = next.catch(() => undefined);
    return next;
  }

  /** Keeps a reload attempt in the history (GET /reloads). */
  private remember(trigger: ReloadTrigger, outcome: ReloadOutcome, by?: string): ReloadOutcome {
    this.reloadHistory.push({
      at: new Date().toISOString(),
      trigger,
      ...(by === undefined ? {} : { by }),
      outcome: outcome.outcome,
      version: outcome.version,
      ...(outcome.outcome === 'applied' ? { previousVersion: outcome.previousVersion, changes: outcome.changes, durationMs: outcome.durationMs } : {}),
      ...(outcome.outcome === 'failed' ? { problems: outcome.problems.map(formatProblem) } : {}),
    });
    if (this.reloadHistory.length > RELOADS_KEPT) this.reloadHistory.shift();
    return outcome;
  }

  sharedStatus(): { redis: 'connected' | 'unavailable'; detail: string } | undefined {
    return this.shared?.status();
  }

  reloads(): ReloadRecord[] {
    return [...this.reloadHistory].reverse();
  }

  /** A table was swapped in: the migration counts follow its settings, its text is kept for edit conflicts. */
  private tableServed(loaded: LoadedTable): void {
    this.recentTexts.set(loaded.version, loaded.text);
    if (this.recentTexts.size > TEXTS_KEPT) this.recentTexts.delete(this.recentTexts.keys().next().value as string);
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
  migrationReport(): Record<string, unknown> | undefined {
    const m = this.migration;
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

  inventory(): ReturnType<MigrationInsight['inventoryReport']> | undefined {
    return this.migration?.inventoryReport();
  }

  /** The route table as the console shows it: the served text with literal secrets masked. */
  async tableText(): Promise<{ version: string; file: string; allowEdit: boolean; text: string }> {
    const loaded = this.loaded;
    return { version: loaded.version, file: this.options.configPath, allowEdit: this.table.config.admin?.allowEdit === true, text: await this.loader.maskSecrets(loaded.text) };
  }

  /** Validates an edit (its masked secrets put back from the served text) and summarises its changes. */
  async checkEdit(text: string): Promise<CandidateCheck> {
    const restored = await this.loader.restoreSecrets(text, this.loaded.text, '<edit>');
    if (!restored.ok) return { valid: false, problems: restored.problems };
    return this.checkCandidate(restored.text);
  }

  /**
   * Saves a console edit to the route table file and reloads it. Refused when
   * the edit is based on another version than the one served, or the file
   * changed on disk since it was loaded (the answer says what changed).
   */
  applyEdit(text: string, baseVersion: string, by: string): Promise<EditOutcome> {
    return this.serially(() => this.applyEditNow(text, baseVersion, by));
  }

  private async applyEditNow(text: string, baseVersion: string, by: string): Promise<EditOutcome> {
    const admin = this.table.config.admin;
    if (admin?.allowEdit !== true) return { outcome: 'read-only' };
    const file = this.options.configPath;
    const current = this.loaded;
    const onDisk = await readFile(file, 'utf8').catch(() => undefined);
    if (baseVersion !== current.version || (onDisk !== undefined && onDisk !== current.text)) {
      const theirs = onDisk ?? current.text;
      const baseText = this.recentTexts.get(baseVersion);
      let changes: string[] = [];
      if (baseText !== undefined) {
        const diff = await this.loader.text(theirs, file, { version: baseVersion, source: file, text: baseText, config: current.config });
        changes = diff.ok ? (diff.changes ?? []) : ['the file on disk is not a valid route table now'];
      }
      return { outcome: 'conflict', version: onDisk !== undefined && onDisk !== current.text ? versionOf(onDisk) : current.version, changes, knownBase: baseText !== undefined };
    }
    const restored = await this.loader.restoreSecrets(text, current.text, file);
    if (!restored.ok) return { outcome: 'invalid', problems: restored.problems };
    const candidate = await this.loader.text(restored.text, file, current);
    if (!candidate.ok) return { outcome: 'invalid', problems: candidate.problems };
    const { historyFile } = await saveTableFile(file, restored.text, admin.historySize);
    const result = this.remember('console', await this.reloadNow('console'), by);
    if (result.outcome === 'applied') this.log.info({ by, version: result.version, previousVersion: result.previousVersion, changes: result.changes, history: historyFile }, `route table edited in the console by ${by}`);
    return { outcome: 'saved', reload: result };
  }

  private async reloadNow(trigger: string): Promise<ReloadOutcome> {
    const started = performance.now();
    const current = this.table;
    // Parsing, validation and the change summary run on a worker thread: traffic keeps flowing meanwhile.
    const result = await this.loader.load(this.options.configPath, this.loaded);
    // Shutting down: a late reload must not build pools and breakers that nobody will close.
    if (this.draining) return { outcome: 'unchanged', version: current.version };
    if (!result.ok) {
      this.lastReloadError = { at: new Date().toISOString(), trigger, problems: result.problems };
      this.metrics?.reload('failed');
      this.log.error({ trigger, version: current.version, problems: result.problems.map(formatProblem) }, `route table rejected, still serving version ${current.version}`);
      return { outcome: 'failed', version: current.version, problems: result.problems };
    }
    this.lastReloadError = undefined;
    if (result.table.version === current.version) {
      this.metrics?.reload('unchanged');
      this.log.debug({ trigger, version: current.version }, 'route table unchanged');
      return { outcome: 'unchanged', version: current.version };
    }
    // The matcher is compiled a slice of routes per event-loop turn (the table itself arrived in
    // parts): traffic is served between slices, and the swap below is one synchronous step.
    const matcher = await RouteMatcher.build(result.table.config);
    if (this.draining) return { outcome: 'unchanged', version: current.version };
    const next = activate(result.table, this.deps, current, matcher);
    const changes = result.changes ?? [];
    this.table = next;
    this.loaded = result.table;
    this.tableServed(result.table);
    this.metrics?.tableChanged();
    this.metrics?.activeVersion(next.version);
    this.metrics?.reload('applied');
    for (const upstream of retiredUpstreams(current, next)) upstream.retire();
    for (const shadow of retiredShadows(current, next)) shadow.close();
    if (current.auth !== next.auth) current.auth?.stop();
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    this.log.info({ trigger, version: next.version, previousVersion: current.version, changes, durationMs }, `route table applied: ${changes.length ? changes.join('; ') : 'no routing change'}`);
    return { outcome: 'applied', version: next.version, previousVersion: current.version, changes, durationMs };
  }

  async checkCandidate(yaml: string): Promise<CandidateCheck> {
    const result = await this.loader.text(yaml, '<candidate>', this.loaded);
    if (!result.ok) return { valid: false, problems: result.problems };
    return { valid: true, version: result.table.version, changes: result.changes ?? [] };
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

  private listen(): Promise<void> {
    const s = this.table.config.server;
    const port = this.options.port ?? s.port;
    const host = this.options.host ?? s.host;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.log.info({ port: this.port, host, version: this.table.version, routes: this.table.config.routes.length }, 'gateway listening');
        resolve();
      });
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
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
    this.watcher?.stop();
    const timeoutMs = this.table.config.server.drainTimeoutMs;
    this.log.info({ inFlight: this.inFlight, timeoutMs }, 'draining');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([drained, expired]);
      clearTimeout(timer);
      if (this.inFlight > 0) this.log.warn({ inFlight: this.inFlight }, 'drain timeout: closing remaining connections');
    }
    for (const socket of this.upgraded) socket.destroy();
    this.server.closeAllConnections();
    await closed;
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
    this.loader.close();
    this.log.info('stopped');
    // Batches already handed to the files finish first, so the last lines land after them, in order
    // (bounded: a stdout pipe nobody reads must not hold the stop).
    let settleTimer: NodeJS.Timeout | undefined;
    await Promise.race([this.loggers.settled(), new Promise<void>((resolve) => (settleTimer = setTimeout(resolve, 5000)))]);
    clearTimeout(settleTimer);
    this.loggers.close();
  }
}

/** Reload attempts kept for GET /reloads. */
const RELOADS_KEPT = 50;
/** Breaker state changes kept for GET /upstreams. */
const TRANSITIONS_KEPT = 100;
/** Served versions whose text is kept, to tell a console edit based on one of them what changed since. */
const TEXTS_KEPT = 20;

export type ReloadTrigger = 'watch' | 'SIGHUP' | 'api' | 'console';

export interface ReloadRecord {
  at: string;
  trigger: ReloadTrigger;
  /** Who asked (console edits): the admin token's name. */
  by?: string;
  outcome: ReloadOutcome['outcome'];
  version: string;
  previousVersion?: string;
  changes?: string[];
  durationMs?: number;
  problems?: string[];
}

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

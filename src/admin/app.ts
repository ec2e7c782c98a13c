import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import Koa from 'koa';
import Router from 'koa-router';
import { formatProblem, type ConfigProblem } from '../config/problem';
import { CREDENTIAL_URL, isSecretPath, maskUrlPassword, SECRET_KEY } from '../config/secretKeys';
import type { RouteTableConfig } from '../config/schema';
import type { ActiveTable } from '../table';
import type { InventoryReport } from '../migration/insight';
import { serveConsole } from './console';
import { listenOn } from '../core/listen';

export interface ReloadError {
  at: string;
  trigger: string;
  problems: ConfigProblem[];
}

export type ReloadOutcome =
  | { outcome: 'applied'; version: string; previousVersion: string; changes: string[]; durationMs: number }
  | { outcome: 'unchanged'; version: string }
  | { outcome: 'failed'; version: string; problems: ConfigProblem[] };

export type EditOutcome =
  | { outcome: 'read-only' }
  | { outcome: 'conflict'; version: string; changes: string[]; knownBase: boolean }
  | { outcome: 'invalid'; problems: ConfigProblem[] }
  | { outcome: 'saved'; reload: ReloadOutcome };

export type CandidateCheck = { valid: true; version: string; changes: string[] } | { valid: false; problems: ConfigProblem[] };

type Maybe<T> = T | Promise<T>;

/**
 * What the admin API may see and do. The Gateway implements it; with
 * server.workers the primary does, asking its workers and summing their answers.
 */
export interface AdminControl {
  readonly table: Pick<ActiveTable, 'version' | 'config' | 'loadedAt' | 'source'>;
  readonly lastReloadError: ReloadError | undefined;
  readonly draining: boolean;
  /** The Prometheus text; undefined without metrics. */
  metricsText(): Promise<{ contentType: string; text: string } | undefined>;
  reload(trigger: string): Promise<ReloadOutcome>;
  checkCandidate(yaml: string): Promise<CandidateCheck>;
  upstreamStates(): Maybe<Array<Record<string, unknown>>>;
  /** Breaker state changes, newest first. */
  breakerHistory(): Maybe<Array<{ at: string; upstream: string; from: string; to: string }>>;
  canaryStates(): Maybe<Array<Record<string, unknown>>>;
  /** false when the route has no canary. */
  resetCanary(route: string): Maybe<boolean>;
  shadowStates(): Maybe<Array<Record<string, unknown>>>;
  /** undefined when the route has no shadow. */
  shadowSamples(route: string): Maybe<unknown[] | undefined>;
  resetShadow(route: string): Maybe<boolean>;
  /** undefined when the migration is not counted (migration.count: false). */
  migrationReport(): Maybe<Record<string, unknown> | undefined>;
  inventory(): Maybe<InventoryReport | undefined>;
  reloads(): unknown[];
  /** Redis (state.redis) reachability; undefined without it. */
  sharedStatus(): Maybe<{ redis: 'connected' | 'unavailable'; detail: string } | undefined>;
  /** server.workers: how many workers are serving, of how many; undefined in a single process. */
  workerStatus?(): { serving: number; workers: number };
  tableText(): Promise<{ version: string; file: string; allowEdit: boolean; text: string }>;
  checkEdit(yaml: string): Promise<CandidateCheck>;
  applyEdit(yaml: string, baseVersion: string, by: string): Promise<EditOutcome>;
}

/** A copy of the table with every secret shown as `***`: by key name, by place (isSecretPath), or a URL's password. */
export function redactConfig(config: RouteTableConfig): unknown {
  return redact(JSON.parse(JSON.stringify(config)) as unknown, []);
}

function redact(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1];
  if (key !== undefined && value !== null && (SECRET_KEY.test(key) || isSecretPath(path))) return '***';
  if (typeof value === 'string') return CREDENTIAL_URL.test(value) ? maskUrlPassword(value) : value;
  if (Array.isArray(value)) return value.map((v, i) => redact(v, [...path, String(i)]));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, [...path, k])]));
  return value;
}

function problemsJson(problems: ConfigProblem[]) {
  return problems.map((p) => ({ line: p.line, col: p.col, message: p.message, text: formatProblem(p) }));
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new HttpError(413, 'BODY_TOO_LARGE', `body over ${limit} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        // Stop keeping the body but go on reading it (discarded): destroying the request
        // would destroy the socket too, and the client would get no 413, only a reset.
        settled = true;
        chunks.length = 0;
        req.off('data', onData);
        req.resume();
        reject(new HttpError(413, 'BODY_TOO_LARGE', `body over ${limit} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (settled) return;
      settled = true;
      let text: string;
      try {
        // fatal: invalid bytes throw, while a real U+FFFD character in the text is fine.
        text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        reject(new HttpError(400, 'BAD_BODY', 'body is not valid UTF-8'));
        return;
      }
      resolve(text);
    });
    // A client that leaves mid-body must not leave the handler waiting forever.
    req.on('close', () => {
      if (settled) return;
      settled = true;
      reject(new HttpError(400, 'BAD_BODY', 'the request body was cut short'));
    });
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
  });
}

async function yamlBody(ctx: Koa.Context, control: AdminControl): Promise<string> {
  if (!/^(application|text)\/(x-)?yaml\s*(;|$)/i.test(ctx.get('content-type'))) throw new HttpError(415, 'YAML_REQUIRED', 'send the route table as Content-Type: application/yaml');
  return readBody(ctx.req, control.table.config.admin?.maxBodyBytes ?? 4 * 1024 * 1024);
}

/** Who made a change, for the log: the admin token's fingerprint, or the loopback address when no token is set. */
function whoIs(ctx: Koa.Context, control: AdminControl): string {
  const token = control.table.config.admin?.token;
  if (token === undefined) return `loopback ${ctx.req.socket.remoteAddress ?? ''}`.trim();
  return `admin token ${createHash('sha256').update(token).digest('hex').slice(0, 8)} from ${ctx.req.socket.remoteAddress ?? 'unknown'}`;
}

/** RFC 4180: fields with a comma, quote or line break are quoted; a leading =, +, - or @ is prefixed so a spreadsheet does not run it. */
function csvField(v: string | number | null): string {
  let s = v === null ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function inventoryCsv(inv: InventoryReport): string {
  const head = ['method', 'template', 'route', 'count', 'max_overcount', 'share_percent', 'last_seen', '1xx', '2xx', '3xx', '4xx', '5xx', 'p95_ms'];
  const rows = inv.templates.map((t) => [t.method, t.template, t.route, t.count, t.maxOvercount, t.share, t.lastSeen, t.statuses['1xx']!, t.statuses['2xx']!, t.statuses['3xx']!, t.statuses['4xx']!, t.statuses['5xx']!, t.p95Ms]);
  return [head, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

function sameToken(given: string, expected: string): boolean {
  // Hash first: equal-length inputs for timingSafeEqual, and no length leak.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The admin API: a koa app on its own port (loopback by default). Read-only
 * views of the live table and upstreams, validation of candidate tables,
 * reloads, health and Prometheus metrics.
 */
export function createAdminApp(control: AdminControl): Koa {
  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new HttpError(404, 'NOT_FOUND', `no admin endpoint ${ctx.method} ${ctx.path}`);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError((err as { status?: number }).status ?? 500, 'ADMIN_ERROR', (err as Error).message);
      ctx.status = e.status;
      ctx.body = { error: { code: e.code, message: e.status >= 500 ? 'admin request failed' : e.message } };
      if (e.status === 401) ctx.set('WWW-Authenticate', 'Bearer realm="strangler-admin"');
      // The rest of an oversized body is not worth reading: close the connection after answering.
      if (e.status === 413) ctx.set('Connection', 'close');
    }
  });

  // Health and readiness answer without a token: orchestrators probe them.
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const workers = control.workerStatus?.();
    // With server.workers: ready while at least one worker serves (the others are being restarted).
    const ready = !control.draining && (workers === undefined || workers.serving > 0);
    ctx.status = ready ? 200 : 503;
    // Redis away does not make the gateway unready: it serves with its last shared state and local decisions.
    const shared = await control.sharedStatus();
    ctx.body = { status: ready ? 'ready' : control.draining ? 'draining' : 'starting', version: control.table.version, ...(shared === undefined ? {} : { state: shared }), ...(workers === undefined ? {} : { workers }) };
  });

  // The listener keeps the address it was started with until a restart, so a reload may
  // rotate the token but never remove it: that would open a (maybe public) admin port.
  const startupToken = control.table.config.admin?.token;
  const requireToken: Koa.Middleware = async (ctx, next) => {
    // Read per request from the live table, so a token rotation applies on reload.
    const expected = control.table.config.admin?.token ?? startupToken;
    if (expected !== undefined) {
      const header = ctx.get('authorization');
      const m = /^Bearer\s+(.+)$/i.exec(header);
      if (!m || !sameToken(m[1]!.trim(), expected)) throw new HttpError(401, 'UNAUTHORIZED', 'missing or wrong admin token');
    }
    await next();
  };

  router.get('/routes', requireToken, (ctx) => {
    const t = control.table;
    ctx.body = {
      version: t.version,
      loadedAt: t.loadedAt.toISOString(),
      source: t.source,
      lastReloadError: control.lastReloadError ? { ...control.lastReloadError, problems: problemsJson(control.lastReloadError.problems) } : null,
      ...(redactConfig(t.config) as object),
    };
  });

  router.post('/routes/validate', requireToken, async (ctx) => {
    const limit = control.table.config.admin?.maxBodyBytes ?? 4 * 1024 * 1024;
    const body = await readBody(ctx.req, limit);
    if (body.trim() === '') throw new HttpError(400, 'EMPTY_BODY', 'send the candidate route table (YAML) as the request body');
    const result = await control.checkCandidate(body);
    ctx.status = result.valid ? 200 : 422;
    ctx.body = result.valid ? result : { valid: false, problems: problemsJson(result.problems) };
  });

  router.post('/reload', requireToken, async (ctx) => {
    const result = await control.reload('api');
    ctx.status = result.outcome === 'failed' ? 422 : 200;
    ctx.body = result.outcome === 'failed' ? { ...result, problems: problemsJson(result.problems) } : result;
  });

  router.get('/upstreams', requireToken, async (ctx) => {
    ctx.body = { version: control.table.version, upstreams: await control.upstreamStates(), breakerHistory: await control.breakerHistory() };
  });

  router.get('/canaries', requireToken, async (ctx) => {
    ctx.body = { version: control.table.version, canaries: await control.canaryStates() };
  });

  router.post('/canaries/:route/reset', requireToken, async (ctx) => {
    const route = String(ctx.params.route);
    if (!(await control.resetCanary(route))) throw new HttpError(404, 'NO_CANARY', `route "${route}" has no canary`);
    ctx.body = { reset: route, canary: (await control.canaryStates()).find((c) => c.route === route) };
  });

  router.get('/shadows', requireToken, async (ctx) => {
    ctx.body = { version: control.table.version, shadows: await control.shadowStates() };
  });

  router.get('/shadows/:route/samples', requireToken, async (ctx) => {
    const route = String(ctx.params.route);
    const samples = await control.shadowSamples(route);
    if (samples === undefined) throw new HttpError(404, 'NO_SHADOW', `route "${route}" has no shadow`);
    ctx.body = { route, samples };
  });

  router.post('/shadows/:route/reset', requireToken, async (ctx) => {
    const route = String(ctx.params.route);
    if (!(await control.resetShadow(route))) throw new HttpError(404, 'NO_SHADOW', `route "${route}" has no shadow`);
    ctx.body = { reset: route, shadow: (await control.shadowStates()).find((s) => s.route === route) };
  });

  router.get('/migration', requireToken, async (ctx) => {
    const report = await control.migrationReport();
    if (report === undefined) throw new HttpError(404, 'NOT_COUNTING', 'the migration is not counted (migration.count is false)');
    // The inventory is part of the report; a page that polls (the console's overview) leaves it out with ?inventory=none.
    ctx.body = ctx.query.inventory === 'none' ? report : { ...report, inventory: await control.inventory() };
  });

  router.get('/migration/inventory', requireToken, async (ctx) => {
    const inv = await control.inventory();
    if (inv === undefined) throw new HttpError(404, 'NOT_COUNTING', 'the migration is not counted (migration.count is false)');
    ctx.body = inv;
  });

  router.get('/migration/inventory.csv', requireToken, async (ctx) => {
    const inv = await control.inventory();
    if (inv === undefined) throw new HttpError(404, 'NOT_COUNTING', 'the migration is not counted (migration.count is false)');
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Content-Disposition', 'attachment; filename="legacy-inventory.csv"');
    ctx.body = inventoryCsv(inv);
  });

  router.get('/reloads', requireToken, (ctx) => {
    ctx.body = { version: control.table.version, reloads: control.reloads() };
  });

  router.get('/table', requireToken, async (ctx) => {
    ctx.body = await control.tableText();
  });

  // The console's editor: YAML bodies only, so a cross-site form post (which cannot send this type) never reaches them.
  router.post('/table/check', requireToken, async (ctx) => {
    const body = await yamlBody(ctx, control);
    const result = await control.checkEdit(body);
    ctx.status = result.valid ? 200 : 422;
    ctx.body = result.valid ? result : { valid: false, problems: problemsJson(result.problems) };
  });

  router.put('/table', requireToken, async (ctx) => {
    const base = ctx.get('if-match').replace(/^"|"$/g, '');
    if (base === '') throw new HttpError(428, 'VERSION_REQUIRED', 'send If-Match: <the version the edit is based on>');
    const body = await yamlBody(ctx, control);
    const result = await control.applyEdit(body, base, whoIs(ctx, control));
    switch (result.outcome) {
      case 'read-only':
        throw new HttpError(403, 'READ_ONLY', 'editing the route table is off (admin.allowEdit is false)');
      case 'conflict':
        ctx.status = 409;
        ctx.body = { error: { code: 'STALE_EDIT', message: `the route table changed since version ${base}: reload it and edit again` }, version: result.version, changes: result.changes, knownBase: result.knownBase };
        return;
      case 'invalid':
        ctx.status = 422;
        ctx.body = { valid: false, problems: problemsJson(result.problems) };
        return;
      default:
        ctx.status = result.reload.outcome === 'failed' ? 422 : 200;
        ctx.body = result.reload.outcome === 'failed' ? { ...result.reload, problems: problemsJson(result.reload.problems) } : result.reload;
    }
  });

  serveConsole(router);

  router.get('/metrics', requireToken, async (ctx) => {
    const metrics = await control.metricsText();
    if (metrics === undefined) {
      ctx.status = 404;
      return;
    }
    ctx.type = metrics.contentType;
    ctx.body = metrics.text;
  });

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  app.on('error', () => {
    // Errors are answered by the middleware above; koa's default would print stack traces to stderr.
  });
  return app;
}

/** Starts the admin API on the table's admin port (or `port`); resolves once it listens. */
export async function listenAdmin(control: AdminControl, log: { info(o: object, msg: string): void }, port?: number): Promise<Server | undefined> {
  const cfg = control.table.config.admin;
  if (!cfg) return undefined;
  const admin = createServer(createAdminApp(control).callback());
  const bound = await listenOn(admin, port ?? cfg.port, cfg.host);
  log.info({ port: bound, host: cfg.host, auth: cfg.token ? 'bearer token required' : 'none (loopback only)' }, 'admin API listening');
  return admin;
}

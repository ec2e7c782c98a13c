import type { RouteConfig, RouteTableConfig, UpstreamConfig } from '../config/schema';
import { RouteMatcher } from './compile';
import { isTemplate } from './template';

/** What changed between two route tables, in the words ops use. */
export interface TableDiff {
  routesAdded: Array<{ name: string; path: string; upstream: string }>;
  routesRemoved: Array<{ name: string; path: string; upstream: string }>;
  /** Paths that now go somewhere else (including paths carved out of, or returned to, a broader route). */
  destinationsChanged: Array<{ path: string; from: string; to: string }>;
  /** Routes whose other settings changed (methods, stripPrefix, host, ...). */
  routesChanged: Array<{ name: string; fields: string[] }>;
  upstreamsAdded: string[];
  upstreamsRemoved: string[];
  upstreamUrlsChanged: Array<{ name: string; from: string; to: string }>;
  upstreamsChanged: Array<{ name: string; fields: string[] }>;
  /** Settings that only take effect on restart (listening address, timeouts of the server). */
  restartRequired: string[];
  empty: boolean;
}

const NOWHERE = '(no route: 404)';
const LIVE_SERVER_SETTINGS = new Set(['hsts', 'healthPath', 'trustProxy', 'encodedSlashes', 'drainTimeoutMs']);

export function diffTables(before: RouteTableConfig, after: RouteTableConfig): TableDiff {
  const oldRoutes = new Map(before.routes.map((r) => [r.name, r]));
  const newRoutes = new Map(after.routes.map((r) => [r.name, r]));
  const oldMatcher = new RouteMatcher(before);
  const newMatcher = new RouteMatcher(after);

  const routesAdded = after.routes.filter((r) => !oldRoutes.has(r.name)).map(brief);
  const routesRemoved = before.routes.filter((r) => !newRoutes.has(r.name)).map(brief);
  const routesChanged: TableDiff['routesChanged'] = [];
  for (const [name, next] of newRoutes) {
    const prev = oldRoutes.get(name);
    if (!prev) continue;
    const fields = changedFields(prev, next).filter((f) => f !== 'upstream');
    if (fields.length) routesChanged.push({ name, fields });
  }

  // A destination change is judged by asking both tables where a route's own path goes.
  const destinations = new Map<string, { from: string; to: string }>();
  for (const r of [...before.routes, ...after.routes]) {
    const method = r.methods?.[0] ?? 'GET';
    const host = r.host?.replace(/^\*\./, 'any.') ?? '';
    // A template path is not a request path: its route's own destination stands for it, in each table.
    const from = isTemplate(r.path) ? destinationOf(sameTemplate(oldRoutes.get(r.name), r)) : destinationOf(oldMatcher.match(method, host, r.path)?.config);
    const to = isTemplate(r.path) ? destinationOf(sameTemplate(newRoutes.get(r.name), r)) : destinationOf(newMatcher.match(method, host, r.path)?.config);
    if (from !== to) destinations.set(describePath(r), { from, to });
  }

  const upstreamsAdded = Object.keys(after.upstreams).filter((u) => !(u in before.upstreams));
  const upstreamsRemoved = Object.keys(before.upstreams).filter((u) => !(u in after.upstreams));
  const upstreamUrlsChanged: TableDiff['upstreamUrlsChanged'] = [];
  const upstreamsChanged: TableDiff['upstreamsChanged'] = [];
  for (const [name, next] of Object.entries(after.upstreams)) {
    const prev = before.upstreams[name];
    if (!prev) continue;
    if (prev.urls.join(',') !== next.urls.join(',')) upstreamUrlsChanged.push({ name, from: prev.urls.join(', '), to: next.urls.join(', ') });
    const fields = changedFields<UpstreamConfig>(prev, next).filter((f) => f !== 'url' && f !== 'urls');
    if (fields.length) upstreamsChanged.push({ name, fields });
  }

  const restartRequired = [
    // healthPath, trustProxy, encodedSlashes and drainTimeoutMs are read from the live table: they apply at once.
    ...changedFields(before.server, after.server)
      .filter((f) => !LIVE_SERVER_SETTINGS.has(f))
      .map((f) => `server.${f}`),
    ...changedFields(before.admin ?? {}, after.admin ?? {})
      .filter((f) => f !== 'token' && f !== 'maxBodyBytes')
      .map((f) => `admin.${f}`),
    ...changedFields(before.reload, after.reload).map((f) => `reload.${f}`),
    ...changedFields(before.log, after.log).map((f) => `log.${f}`),
  ];
  const diff: TableDiff = {
    routesAdded,
    routesRemoved,
    destinationsChanged: [...destinations].map(([path, d]) => ({ path, ...d })),
    routesChanged,
    upstreamsAdded,
    upstreamsRemoved,
    upstreamUrlsChanged,
    upstreamsChanged,
    restartRequired,
    empty: false,
  };
  diff.empty = summarize(diff).length === 0;
  return diff;
}

function brief(r: RouteConfig) {
  return { name: r.name, path: describePath(r), upstream: r.upstream ?? actionOf(r) };
}

/** Where a route sends a request, in words: its upstream, or what the gateway answers itself. */
function actionOf(r: RouteConfig): string {
  if (r.redirect !== undefined) return `redirect ${r.redirect.status} ${r.redirect.to}`;
  if (r.respond !== undefined) return `respond ${r.respond.status}`;
  return r.upstream ?? NOWHERE;
}

function destinationOf(r: RouteConfig | undefined): string {
  return r === undefined ? NOWHERE : actionOf(r);
}

/** The route of that name, if it still has that template path. */
function sameTemplate(candidate: RouteConfig | undefined, r: RouteConfig): RouteConfig | undefined {
  return candidate !== undefined && candidate.path === r.path ? candidate : undefined;
}

function describePath(r: RouteConfig): string {
  let s = r.path;
  if (r.exact) s += ' (exact)';
  if (r.methods) s += ` [${r.methods.join(',')}]`;
  if (r.host) s += ` host ${r.host}`;
  return s;
}

function changedFields<T extends object>(a: T, b: T): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k])).sort();
}

/** One line per change, for logs and `strangler diff`. Empty when nothing changed. */
export function summarize(d: TableDiff): string[] {
  const lines: string[] = [];
  for (const c of d.destinationsChanged) lines.push(`${c.path}: ${c.from} -> ${c.to}`);
  for (const r of d.routesAdded) lines.push(`route added: ${r.name} (${r.path} -> ${r.upstream})`);
  for (const r of d.routesRemoved) lines.push(`route removed: ${r.name} (${r.path} -> ${r.upstream})`);
  for (const r of d.routesChanged) lines.push(`route changed: ${r.name} (${r.fields.join(', ')})`);
  for (const u of d.upstreamsAdded) lines.push(`upstream added: ${u}`);
  for (const u of d.upstreamsRemoved) lines.push(`upstream removed: ${u}`);
  for (const u of d.upstreamUrlsChanged) lines.push(`upstream ${u.name}: ${u.from} -> ${u.to}`);
  for (const u of d.upstreamsChanged) lines.push(`upstream changed: ${u.name} (${u.fields.join(', ')})`);
  for (const s of d.restartRequired) lines.push(`${s} changed: takes effect on restart`);
  return lines;
}

import type { RouteConfig, RouteTableConfig } from '../config/schema';

/** A route prepared for matching: everything per-request code needs is computed here, once. */
export interface CompiledRoute {
  readonly name: string;
  readonly path: string;
  readonly exact: boolean;
  readonly methods: ReadonlySet<string> | null;
  /** Lower-case host, or `.example.com` for `*.example.com`, or null for any host. */
  readonly host: string | null;
  readonly hostWildcard: boolean;
  readonly upstream: string;
  /** Characters removed from the front of the normalised path (stripPrefix), 0 for none. */
  readonly stripLength: number;
  /** The upstream URL's own path, prepended to what is forwarded ('' for none). */
  readonly basePath: string;
  readonly websocket: boolean;
  /** Methods retried on a connect failure, or null when the route turns retries off. */
  readonly retryMethods: ReadonlySet<string> | null;
  readonly fallback: string | null;
  /** Canary side rewrite (its stripPrefix and upstream base path). */
  readonly canaryStripLength: number;
  readonly canaryBasePath: string;
  readonly authPolicy: 'none' | 'optional' | 'required';
  readonly roles: readonly string[] | null;
  readonly forwardCredentials: boolean;
  /** The fallback upstream's base path (the fallback sees the original, unstripped path). */
  readonly fallbackBasePath: string;
  /** The prefix to put back in front of Location and Set-Cookie paths of the answers ('' for none), per side. */
  readonly restorePrefix: string;
  readonly canaryRestorePrefix: string;
  readonly rewriteLocation: boolean;
  readonly rewriteCookiePath: boolean;
  readonly config: RouteConfig;
}

export interface RouteMatch {
  route: CompiledRoute;
  /** The path (and query) the upstream sees. */
  upstreamPath: string;
}

/**
 * The route table as a lookup structure. Matching is a handful of hash lookups
 * (one per path segment of the request), whatever the number of routes: exact
 * paths first, then prefixes from the longest to `/`. Within one path, routes
 * that name a host come before host wildcards and those before any-host routes;
 * routes that list methods come before those that take all. A route whose
 * methods or host do not fit is skipped and matching goes on to shorter prefixes.
 */
export class RouteMatcher {
  private readonly exact = new Map<string, CompiledRoute[]>();
  private readonly prefix = new Map<string, CompiledRoute[]>();
  /** Only parse the Host header when some route needs it. */
  readonly usesHost: boolean;
  readonly routes: readonly CompiledRoute[];

  /** `compiled`: the table's routes already compiled, in order (see `build`). */
  constructor(table: RouteTableConfig, compiled?: CompiledRoute[]) {
    if (compiled === undefined) {
      const bases = upstreamBases(table);
      compiled = table.routes.map((r) => compileRoute(r, table, bases));
    }
    this.routes = compiled;
    this.usesHost = compiled.some((r) => r.host !== null);
    for (const r of compiled) {
      const map = r.exact ? this.exact : this.prefix;
      const list = map.get(r.path);
      if (list) list.push(r);
      else map.set(r.path, [r]);
    }
    for (const list of [...this.exact.values(), ...this.prefix.values()]) list.sort(bySpecificity);
  }

  /**
   * The same matcher, compiled a slice of routes per event-loop turn: a large
   * table is compiled on a live gateway without one long pause for traffic.
   */
  static async build(table: RouteTableConfig, routesPerTurn = 1000): Promise<RouteMatcher> {
    const bases = upstreamBases(table);
    const compiled: CompiledRoute[] = [];
    const routes = table.routes;
    for (let i = 0; i < routes.length; i++) {
      if (i > 0 && i % routesPerTurn === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      compiled.push(compileRoute(routes[i]!, table, bases));
    }
    return new RouteMatcher(table, compiled);
  }

  /** `path` must be normalised and `host` lower-case without port (or '' when unknown). */
  match(method: string, host: string, path: string): CompiledRoute | undefined {
    const exact = this.exact.get(path);
    if (exact) {
      const r = pick(exact, method, host);
      if (r) return r;
    }
    let key = path.length > 1 && path.charCodeAt(path.length - 1) === 0x2f ? path.slice(0, -1) : path;
    for (;;) {
      const list = this.prefix.get(key);
      if (list) {
        const r = pick(list, method, host);
        if (r) return r;
      }
      if (key === '/') return undefined;
      const cut = key.lastIndexOf('/');
      key = cut === 0 ? '/' : key.slice(0, cut);
    }
  }
}

function pick(list: CompiledRoute[], method: string, host: string): CompiledRoute | undefined {
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (r.methods !== null && !r.methods.has(method)) continue;
    if (r.host !== null) {
      if (r.hostWildcard ? !host.endsWith(r.host) : host !== r.host) continue;
    }
    return r;
  }
  return undefined;
}

function hostRank(r: CompiledRoute): number {
  return r.host === null ? 0 : r.hostWildcard ? r.host.length : 1000 + r.host.length;
}

function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  return hostRank(b) - hostRank(a) || (b.methods ? 1 : 0) - (a.methods ? 1 : 0);
}

/** Shared by every route that does not set `retry`. */
const DEFAULT_RETRY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Each upstream's own base path. One URL parse per upstream, not per route: a 10,000-route table compiles in milliseconds. */
function upstreamBases(table: RouteTableConfig): Map<string, string> {
  return new Map(Object.entries(table.upstreams).map(([n, u]) => [n, basePathOf(u.urls[0]!)]));
}

/** An upstream URL's own path, put in front of what is forwarded ('' for none). */
export function basePathOf(url: string): string {
  return new URL(url).pathname.replace(/\/$/, '');
}

/** What a `stripPrefix` removes: the prefix without a trailing slash ('' for none or `/`). */
export function stripOf(prefix: string | undefined): string {
  return prefix === undefined || prefix === '/' ? '' : prefix.replace(/\/$/, '');
}

function compileRoute(r: RouteConfig, table: RouteTableConfig, bases: ReadonlyMap<string, string>): CompiledRoute {
  const basePath = bases.get(r.upstream) ?? '';
  const strip = stripOf(r.stripPrefix);
  const canaryStrip = stripOf(r.canary?.stripPrefix);
  const stripped = strip !== '' || canaryStrip !== '';
  const rewriteLocation = r.rewriteLocation ?? stripped;
  const rewriteCookiePath = r.rewriteCookiePath ?? stripped;
  const rewriteAny = rewriteLocation || rewriteCookiePath;
  const host = r.host?.toLowerCase() ?? null;
  const hostWildcard = host !== null && host.startsWith('*.');
  return Object.freeze({
    name: r.name,
    path: r.path,
    exact: r.exact,
    // A route that answers GET answers HEAD too, as every HTTP server does.
    methods: r.methods ? new Set(r.methods.includes('GET') ? [...r.methods, 'HEAD'] : r.methods) : null,
    host: hostWildcard ? host!.slice(1) : host,
    hostWildcard,
    upstream: r.upstream,
    stripLength: strip.length,
    basePath,
    websocket: r.websocket,
    retryMethods: r.retry === undefined ? DEFAULT_RETRY_METHODS : r.retry.enabled ? new Set(r.retry.methods) : null,
    fallback: r.fallback ?? null,
    canaryStripLength: canaryStrip.length,
    canaryBasePath: r.canary ? (bases.get(r.canary.upstream) ?? '') : '',
    // Listing roles implies a verified user.
    authPolicy: r.roles ? 'required' : (r.auth ?? table.auth?.default ?? 'none'),
    roles: r.roles ?? null,
    forwardCredentials: r.forwardCredentials,
    fallbackBasePath: r.fallback ? (bases.get(r.fallback) ?? '') : '',
    restorePrefix: rewriteAny ? strip : '',
    canaryRestorePrefix: rewriteAny ? canaryStrip : '',
    rewriteLocation,
    rewriteCookiePath,
    config: r,
  });
}

/** The path and query the upstream sees for a request that matched `route`. */
export function upstreamPathFor(route: CompiledRoute, path: string, query: string): string {
  return rewritePath(path, query, route.stripLength, route.basePath);
}

/**
 * The path sent upstream: as normalised, `;parameters` included (a legacy
 * `;jsessionid` keeps working); when the route strips a prefix on either side,
 * the parameter-free path (`matchPath`) for every side, because the prefix is
 * measured on it. The request path and `explain` both call this.
 */
export function forwardedPath(route: CompiledRoute, path: string, matchPath: string): string {
  return matchPath !== path && (route.stripLength > 0 || route.canaryStripLength > 0) ? matchPath : path;
}

/** The path and query the canary side sees (canary.stripPrefix, the canary upstream's base path). */
export function canaryPathFor(route: CompiledRoute, path: string, query: string): string {
  return rewritePath(path, query, route.canaryStripLength, route.canaryBasePath);
}

/** The path and query the fallback upstream sees: the original path, under its own base path. */
export function fallbackPathFor(route: CompiledRoute, path: string, query: string): string {
  return rewritePath(path, query, 0, route.fallbackBasePath);
}

/** Removes `stripLength` characters of a prefix, puts `basePath` in front, appends the query. */
export function rewritePath(path: string, query: string, stripLength: number, basePath: string): string {
  let rest = stripLength === 0 ? path : path.slice(stripLength);
  if (rest === '' || rest.charCodeAt(0) !== 0x2f) rest = '/' + rest;
  if (basePath !== '') rest = rest === '/' ? basePath + '/' : basePath + rest;
  return query === '' ? rest : rest + query;
}

/** Host header value in matching form: lower-case, without port. */
export function hostForMatching(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  let h = hostHeader;
  if (h.charCodeAt(0) === 0x5b /* [ IPv6 */) {
    const end = h.indexOf(']');
    return end === -1 ? '' : h.slice(0, end + 1).toLowerCase();
  }
  const colon = h.indexOf(':');
  if (colon !== -1) h = h.slice(0, colon);
  // `example.com.` is the same host as `example.com` (a fully qualified name).
  if (h.charCodeAt(h.length - 1) === 0x2e) h = h.slice(0, -1);
  return h.toLowerCase();
}

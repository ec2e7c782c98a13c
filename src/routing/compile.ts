import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderEdits, RedirectConfig, RespondConfig, RouteConfig, RouteTableConfig } from '../config/schema';
import { fill, isTemplate, matchTemplate, parseCondition, parseTemplate, parseValueTemplate, type Condition, type PathTemplate, type ValueTemplate } from './template';

export type { Condition } from './template';

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
  /** `proxy` (to `upstream`), or the gateway answers itself. */
  readonly action: 'proxy' | 'redirect' | 'respond';
  /** A template path (`/users/{id}`), matched whole; null for prefix and exact paths. */
  readonly template: PathTemplate | null;
  /** Header and query conditions (`match`), null for none. */
  readonly conditions: readonly Condition[] | null;
  /** How specific the route's conditions are: methods, host, each header and query condition. */
  readonly conditionCount: number;
  /** `rewrite`, parsed. */
  readonly rewrite: ValueTemplate | null;
  readonly queryEdits: QueryEdits | null;
  /** The route's own timeoutMs and maxBodyBytes (null: the upstream's / none). */
  readonly timeoutMs: number | null;
  readonly maxBodyBytes: number | null;
  /** The upstream's header edits, then the route's, prepared (null: none). */
  readonly requestHeaderEdits: PreparedHeaderEdits | null;
  readonly responseHeaderEdits: PreparedHeaderEdits | null;
  readonly redirect: (RedirectConfig & { target: ValueTemplate }) | null;
  readonly respond: RespondConfig | null;
  /** Position in the table: the last tie-break. */
  readonly index: number;
  readonly config: RouteConfig;
}

export interface QueryEdits {
  readonly set: ReadonlyArray<readonly [string, ValueTemplate]>;
  readonly remove: ReadonlySet<string>;
}

/** Header edits with their values parsed: `{param}` and `{requestId}` filled per request. */
export interface PreparedHeaderEdits {
  readonly set: ReadonlyArray<readonly [string, ValueTemplate]>;
  readonly remove: readonly string[];
}

/** Where a request's captured parameters go (path template, header and query conditions). */
export interface MatchOut {
  params: Map<string, string> | null;
}

export interface RouteMatch {
  route: CompiledRoute;
  /** The path (and query) the upstream sees. */
  upstreamPath: string;
}

/**
 * The route table as a lookup structure. Matching is a handful of hash lookups
 * (one per path segment of the request), whatever the number of routes: exact
 * paths first, then templates (a walk of a segment tree: literal segments
 * before parameters), then prefixes from the longest to `/`. Among templates
 * the one with more literal segments wins. Within one path, routes with more
 * conditions come first: a host (named before wildcard), methods, header and
 * query conditions. A route whose conditions do not hold is skipped and
 * matching goes on.
 */
export class RouteMatcher {
  private readonly exact = new Map<string, CompiledRoute[]>();
  private readonly prefix = new Map<string, CompiledRoute[]>();
  /** The template routes' segment tree; null when the table has none (no work per request). */
  private readonly templates: TemplateNode | null;
  /** Only parse the Host header when some route needs it. */
  readonly usesHost: boolean;
  private readonly hasConditions: boolean;
  readonly routes: readonly CompiledRoute[];

  /** `compiled`: the table's routes already compiled, in order (see `build`). */
  constructor(table: RouteTableConfig, compiled?: CompiledRoute[]) {
    if (compiled === undefined) {
      const bases = upstreamBases(table);
      compiled = table.routes.map((r, i) => compileRoute(r, table, bases, i));
    }
    this.routes = compiled;
    this.usesHost = compiled.some((r) => r.host !== null);
    this.hasConditions = compiled.some((r) => r.conditions !== null);
    let templates: TemplateNode | null = null;
    for (const r of compiled) {
      if (r.template !== null) {
        templates ??= newNode();
        insertTemplate(templates, r);
        continue;
      }
      const map = r.exact ? this.exact : this.prefix;
      const list = map.get(r.path);
      if (list) list.push(r);
      else map.set(r.path, [r]);
    }
    for (const list of [...this.exact.values(), ...this.prefix.values()]) list.sort(bySpecificity);
    if (templates !== null) sortTree(templates);
    this.templates = templates;
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
      compiled.push(compileRoute(routes[i]!, table, bases, i));
    }
    return new RouteMatcher(table, compiled);
  }

  /**
   * `path` must be normalised and `host` lower-case without port (or '' when
   * unknown). `headers` and `query` (with its `?`) are read only by routes
   * with conditions; captured parameters go to `out`.
   */
  match(method: string, host: string, path: string, headers: IncomingHttpHeaders = {}, query = '', out?: MatchOut): CompiledRoute | undefined {
    // Only a table with header or query conditions reads them: the others allocate nothing here.
    const q: QueryCache = this.hasConditions ? { raw: query, parsed: undefined } : NO_QUERY;
    if (out !== undefined) out.params = null;
    const exact = this.exact.get(path);
    if (exact) {
      const r = pick(exact, method, host, headers, q, out);
      if (r) return r;
    }
    if (this.templates !== null) {
      const r = this.matchTemplates(method, host, path, headers, q, out);
      if (r) return r;
    }
    let key = path.length > 1 && path.charCodeAt(path.length - 1) === 0x2f ? path.slice(0, -1) : path;
    for (;;) {
      const list = this.prefix.get(key);
      if (list) {
        const r = pick(list, method, host, headers, q, out);
        if (r) return r;
      }
      if (key === '/') return undefined;
      const cut = key.lastIndexOf('/');
      key = cut === 0 ? '/' : key.slice(0, cut);
    }
  }

  private matchTemplates(method: string, host: string, path: string, headers: IncomingHttpHeaders, q: QueryCache, out: MatchOut | undefined): CompiledRoute | undefined {
    const segments = path.slice(1).split('/');
    const found: { route: CompiledRoute | undefined; params: Map<string, string> | null } = { route: undefined, params: null };
    walk(this.templates!, segments, 0, (list) => {
      for (const r of list) {
        // Lists are sorted best first, and a worse route than the one found cannot win.
        if (found.route !== undefined && compareTemplates(r, found.route) >= 0) return;
        const params = new Map<string, string>();
        if (!matchTemplate(r.template!, segments, params)) continue;
        if (!fits(r, method, host) || (r.conditions !== null && !conditionsHold(r.conditions, headers, q, params))) continue;
        found.route = r;
        found.params = params;
        return;
      }
    });
    if (found.route !== undefined && out !== undefined) out.params = found.params;
    return found.route;
  }
}

/** The query string, parsed the first time a condition reads it. */
interface QueryCache {
  raw: string;
  parsed: Map<string, string> | undefined;
}

/** Shared by tables without conditions (never read). */
const NO_QUERY: QueryCache = Object.freeze({ raw: '', parsed: undefined }) as QueryCache;

/** First value of each query parameter, as sent (still percent-encoded); keys decoded. */
function parseQuery(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw.length <= 1) return out;
  for (const pair of raw.slice(1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = safeDecode(eq === -1 ? pair : pair.slice(0, eq));
    if (!out.has(key)) out.set(key, eq === -1 ? '' : pair.slice(eq + 1));
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function fits(r: CompiledRoute, method: string, host: string): boolean {
  if (r.methods !== null && !r.methods.has(method)) return false;
  if (r.host !== null && (r.hostWildcard ? !host.endsWith(r.host) : host !== r.host)) return false;
  return true;
}

/**
 * Whether every condition holds; constrained values are captured into
 * `params`: header values URL-encoded (they go into paths), query values as sent.
 */
function conditionsHold(conditions: readonly Condition[], headers: IncomingHttpHeaders, q: QueryCache, params: Map<string, string>): boolean {
  for (const c of conditions) {
    let value: string | undefined;
    if (c.kind === 'header') {
      const h = headers[c.name];
      value = h === undefined ? undefined : Array.isArray(h) ? h.join(', ') : h;
    } else {
      q.parsed ??= parseQuery(q.raw);
      value = q.parsed.get(c.name);
    }
    if (value === undefined) return false;
    const t = c.test;
    if ('present' in t) continue;
    if ('exact' in t) {
      if (value !== t.exact) return false;
      continue;
    }
    const plain = c.kind === 'query' ? safeDecode(value) : value;
    if (plain === '' || (t.check !== null && !t.check(plain))) return false;
    // Captured values go into paths and queries: encoded once, whatever the client sent (`../`, `?`, `&` stay data).
    params.set(t.param, encodeURIComponent(plain));
  }
  return true;
}

function pick(list: CompiledRoute[], method: string, host: string, headers: IncomingHttpHeaders, q: QueryCache, out: MatchOut | undefined): CompiledRoute | undefined {
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (!fits(r, method, host)) continue;
    if (r.conditions !== null) {
      const params = new Map<string, string>();
      if (!conditionsHold(r.conditions, headers, q, params)) continue;
      if (out !== undefined && params.size > 0) out.params = params;
    }
    return r;
  }
  return undefined;
}

/** A node of the template tree: literal children, parameter children, and the routes whose template ends here. */
interface TemplateNode {
  literal: Map<string, TemplateNode>;
  param: TemplateNode | null;
  /** Routes ending at this node, and routes whose `{rest*}` starts here. */
  end: CompiledRoute[];
  rest: CompiledRoute[];
}

function newNode(): TemplateNode {
  return { literal: new Map(), param: null, end: [], rest: [] };
}

function insertTemplate(root: TemplateNode, r: CompiledRoute): void {
  let node = root;
  for (const seg of r.template!.segments) {
    if ('literal' in seg) {
      let next = node.literal.get(seg.literal);
      if (next === undefined) {
        next = newNode();
        node.literal.set(seg.literal, next);
      }
      node = next;
    } else if (seg.rest) {
      node.rest.push(r);
      return;
    } else {
      node.param ??= newNode();
      node = node.param;
    }
  }
  node.end.push(r);
}

function sortTree(node: TemplateNode): void {
  node.end.sort(compareTemplates);
  node.rest.sort(compareTemplates);
  for (const child of node.literal.values()) sortTree(child);
  if (node.param !== null) sortTree(node.param);
}

/** Visits, in the tree, every list of routes whose template shape fits the segments. */
function walk(node: TemplateNode, segments: readonly string[], i: number, visit: (list: CompiledRoute[]) => void): void {
  if (node.rest.length > 0) visit(node.rest);
  if (i === segments.length) {
    if (node.end.length > 0) visit(node.end);
    return;
  }
  const seg = segments[i]!;
  const lit = node.literal.get(seg);
  if (lit !== undefined) walk(lit, segments, i + 1, visit);
  if (node.param !== null && seg !== '') walk(node.param, segments, i + 1, visit);
}

/** Template precedence: more literal segments, then whole-length over `{rest*}`, then more conditions, then table order. */
function compareTemplates(a: CompiledRoute, b: CompiledRoute): number {
  const ta = a.template!;
  const tb = b.template!;
  return tb.literalCount - ta.literalCount || (ta.rest ? 1 : 0) - (tb.rest ? 1 : 0) || bySpecificity(a, b) || a.index - b.index;
}

function hostRank(r: CompiledRoute): number {
  return r.host === null ? 0 : r.hostWildcard ? r.host.length : 1000 + r.host.length;
}

function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  return hostRank(b) - hostRank(a) || b.conditionCount - a.conditionCount || (b.methods ? 1 : 0) - (a.methods ? 1 : 0) || a.index - b.index;
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

function valueTemplate(text: string): ValueTemplate {
  const t = parseValueTemplate(text);
  // Validation refused anything unparsable; a literal is the safe reading.
  return typeof t === 'string' ? [text] : t;
}

/** The upstream's edits then the route's (a route's `set` wins over its upstream's for the same header). */
function prepareEdits(...edits: Array<HeaderEdits | undefined>): PreparedHeaderEdits | null {
  const given = edits.filter((e): e is HeaderEdits => e !== undefined);
  if (given.length === 0) return null;
  const set = new Map<string, ValueTemplate>();
  const remove: string[] = [];
  for (const e of given) {
    for (const name of e.remove) {
      remove.push(name.toLowerCase());
      set.delete(name.toLowerCase());
    }
    for (const [name, value] of Object.entries(e.set)) set.set(name.toLowerCase(), valueTemplate(value));
  }
  return { set: [...set], remove };
}

function compileRoute(r: RouteConfig, table: RouteTableConfig, bases: ReadonlyMap<string, string>, index: number): CompiledRoute {
  const upstream = r.upstream ?? '';
  const basePath = bases.get(upstream) ?? '';
  const strip = stripOf(r.stripPrefix);
  const canaryStrip = stripOf(r.canary?.stripPrefix);
  const stripped = strip !== '' || canaryStrip !== '';
  const rewriteLocation = r.rewriteLocation ?? stripped;
  const rewriteCookiePath = r.rewriteCookiePath ?? stripped;
  const rewriteAny = rewriteLocation || rewriteCookiePath;
  const host = r.host?.toLowerCase() ?? null;
  const hostWildcard = host !== null && host.startsWith('*.');
  const parsed = isTemplate(r.path) ? parseTemplate(r.path) : null;
  const template = parsed === null || typeof parsed === 'string' ? null : parsed;
  const conditions: Condition[] = [];
  for (const [name, value] of Object.entries(r.match?.headers ?? {})) {
    const c = parseCondition('header', name, value);
    if (typeof c !== 'string') conditions.push(c);
  }
  for (const [name, value] of Object.entries(r.match?.query ?? {})) {
    const c = parseCondition('query', name, value);
    if (typeof c !== 'string') conditions.push(c);
  }
  const up = r.upstream === undefined ? undefined : table.upstreams[r.upstream];
  return Object.freeze({
    name: r.name,
    path: r.path,
    exact: r.exact,
    // A route that answers GET answers HEAD too, as every HTTP server does.
    methods: r.methods ? new Set(r.methods.includes('GET') ? [...r.methods, 'HEAD'] : r.methods) : null,
    host: hostWildcard ? host!.slice(1) : host,
    hostWildcard,
    upstream,
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
    action: r.redirect !== undefined ? 'redirect' : r.respond !== undefined ? 'respond' : 'proxy',
    template,
    conditions: conditions.length === 0 ? null : conditions,
    conditionCount: (r.methods ? 1 : 0) + conditions.length,
    rewrite: r.rewrite === undefined ? null : valueTemplate(r.rewrite),
    queryEdits:
      r.query === undefined ? null : { set: Object.entries(r.query.set).map(([k, v]) => [k, valueTemplate(v)] as const), remove: new Set([...r.query.remove, ...Object.keys(r.query.set)]) },
    timeoutMs: r.timeoutMs ?? null,
    maxBodyBytes: r.maxBodyBytes ?? null,
    requestHeaderEdits: prepareEdits(up?.requestHeaders, r.requestHeaders),
    responseHeaderEdits: prepareEdits(up?.responseHeaders, r.responseHeaders),
    redirect: r.redirect === undefined ? null : { ...r.redirect, target: valueTemplate(r.redirect.to) },
    respond: r.respond ?? null,
    index,
    config: r,
  });
}

const NO_PARAMS: ReadonlyMap<string, string> = new Map();

/** The path and query the upstream sees for a request that matched `route` (`params`: what it captured). */
export function upstreamPathFor(route: CompiledRoute, path: string, query: string, params: ReadonlyMap<string, string> | null = null): string {
  if (route.rewrite === null && route.queryEdits === null) return rewritePath(path, query, route.stripLength, route.basePath);
  return rewritten(route, path, query, params, route.stripLength, route.basePath);
}

/**
 * A route with `rewrite` or `query`: the path built from the parameters (the
 * values as they arrived, already normalised: nothing decoded or encoded
 * again), then the query edited in place, order and repeated keys kept.
 */
function rewritten(route: CompiledRoute, path: string, query: string, params: ReadonlyMap<string, string> | null, stripLength: number, basePath: string): string {
  const p = params ?? NO_PARAMS;
  const q = route.queryEdits === null ? query : editQuery(query, route.queryEdits, p);
  if (route.rewrite === null) return rewritePath(path, q, stripLength, basePath);
  return rewritePath(fill(route.rewrite, p), q, 0, basePath);
}

/** A rewritten route's path and query before any side's base path (what its shadow copy is sent). */
export function routedTarget(route: CompiledRoute, path: string, query: string, params: ReadonlyMap<string, string> | null): string {
  return rewritten(route, path, query, params, 0, '');
}

/** Removes and sets query parameters; a set one takes the place of its first occurrence, or goes last. */
export function editQuery(query: string, edits: QueryEdits, params: ReadonlyMap<string, string>): string {
  const pairs = query.length > 1 ? query.slice(1).split('&') : [];
  const out: string[] = [];
  const placed = new Set<string>();
  // A filled value is data: characters that would end it or start another parameter are encoded (`%` is left, values are already encoded).
  const setValue = new Map(edits.set.map(([k, v]) => [k, fill(v, params).replace(/[&=+# ]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)]));
  for (const pair of pairs) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    // A malformed escape is compared as written.
    const name = safeDecode(eq === -1 ? pair : pair.slice(0, eq));
    if (!edits.remove.has(name)) {
      out.push(pair);
      continue;
    }
    const value = setValue.get(name);
    if (value !== undefined && !placed.has(name)) {
      out.push(`${encodeURIComponent(name)}=${value}`);
      placed.add(name);
    }
  }
  for (const [name, value] of setValue) if (!placed.has(name)) out.push(`${encodeURIComponent(name)}=${value}`);
  return out.length === 0 ? '' : `?${out.join('&')}`;
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

/** The path and query the canary side sees (the route's rewrite, or canary.stripPrefix; the canary upstream's base path). */
export function canaryPathFor(route: CompiledRoute, path: string, query: string, params: ReadonlyMap<string, string> | null = null): string {
  if (route.rewrite === null && route.queryEdits === null) return rewritePath(path, query, route.canaryStripLength, route.canaryBasePath);
  return rewritten(route, path, query, params, route.canaryStripLength, route.canaryBasePath);
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

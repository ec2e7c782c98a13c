import { normalizePath, pathForMatching, splitTarget } from '../core/path';
import type { RouteTableConfig } from '../config/schema';
import { CanaryState } from '../canary/state';
import { hasRequestBody } from '../core/requestShape';
import { basePathOf, canaryPathFor, fallbackPathFor, forwardedPath, hostForMatching, rewritePath, routedTarget, RouteMatcher, stripOf, upstreamPathFor, type MatchOut } from './compile';
import { fill } from './template';

export interface Explanation {
  request: { method: string; target: string; host: string | null };
  outcome: 'proxy' | 'redirect' | 'respond' | 'health' | 'bad-path' | 'no-route';
  status?: number;
  normalizedPath?: string;
  route?: { name: string; path: string; exact: boolean; methods: string[] | 'any'; host: string | null; kind: 'exact' | 'template' | 'prefix'; conditions: string[] };
  /** What the path template and the header and query conditions captured. */
  params?: Record<string, string>;
  /** The route's rate limit (its own or the table's default). */
  rateLimit?: { key: string; limit: number; windowMs: number; burst: number };
  /** Redirect routes: where to; fixed-answer routes: what. */
  redirect?: { status: number; location: string };
  respond?: { status: number; contentType: string; bodyBytes: number };
  upstream?: { name: string; urls: string[] };
  /** Where the request goes when the upstream's circuit is open or unreachable. */
  fallback?: { name: string; upstreamPath: string };
  /** Path and query as the upstream sees them. */
  upstreamPath?: string;
  upstreamUrl?: string;
  /** Canary routes: the side this user/cookie/header lands on (with the table's share; live rollback and ramp state are in GET /canaries). */
  canary?: { side: 'primary' | 'canary'; reason: string; bucket: number | null; percent: number; upstream: string; upstreamPath: string; newCookie: boolean };
  /** Routes with a shadow: whether this request would be copied (eligibility; `percent` is a random draw per request), where, and what is compared. */
  shadow?: { copied: boolean; reason: string | null; percent: number; upstream: string; upstreamPath: string; compares: { status: true; headers: string[] | '*'; ignoreHeaders: string[]; ignore: string[]; unordered: string[] } };
}

/**
 * What the gateway would do with a request, computed by the same functions the
 * request path runs (normalise, match, rewrite), so ops can check an edit first.
 */
export function explain(config: RouteTableConfig, method: string, target: string, headers: Record<string, string>, matcher = new RouteMatcher(config), userId?: string): Explanation {
  const m = method.toUpperCase();
  const host = headers['host'] ?? null;
  const [rawPath, query] = splitTarget(target);
  const out = { request: { method: m, target, host } };
  if (rawPath === config.server.healthPath) return { ...out, outcome: 'health', status: 200 };
  const path = normalizePath(rawPath, config.server.encodedSlashes === 'decode');
  if (path === null) return { ...out, outcome: 'bad-path', status: 400 };
  const matchPath = pathForMatching(path);
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const captured: MatchOut = { params: null };
  const route = matcher.match(m, matcher.usesHost ? hostForMatching(host ?? undefined) : '', matchPath, lower, query, captured);
  if (!route) return { ...out, outcome: 'no-route', status: 404, normalizedPath: path };
  const params = captured.params;
  const routeInfo = {
    name: route.name,
    path: route.path,
    exact: route.exact,
    methods: route.methods ? [...route.methods] : ('any' as const),
    host: route.config.host ?? null,
    kind: route.template !== null ? ('template' as const) : route.exact ? ('exact' as const) : ('prefix' as const),
    // The conditions that held and decided between routes of the same path.
    conditions: [
      ...(route.config.host ? [`host ${route.config.host}`] : []),
      ...(route.config.methods ? [`method ${m} in [${route.config.methods.join(', ')}]`] : []),
      ...Object.entries(route.config.match?.headers ?? {}).map(([k, v]) => `header ${k}: ${v}`),
      ...Object.entries(route.config.match?.query ?? {}).map(([k, v]) => `query ${k}=${v}`),
    ],
  };
  const shown = params === null ? {} : { params: Object.fromEntries(params) };
  if (route.action === 'redirect') {
    const r = route.redirect!;
    return { ...out, outcome: 'redirect', status: r.status, normalizedPath: path, route: routeInfo, ...shown, redirect: { status: r.status, location: fill(r.target, params ?? new Map()) + (r.dropQuery ? '' : query) } };
  }
  if (route.action === 'respond') {
    const r = route.respond!;
    return { ...out, outcome: 'respond', status: r.status, normalizedPath: path, route: routeInfo, ...shown, respond: { status: r.status, contentType: r.contentType, bodyBytes: Buffer.byteLength(r.body) } };
  }
  const upstream = config.upstreams[route.upstream]!;
  const sent = forwardedPath(route, path, matchPath);
  const upstreamPath = upstreamPathFor(route, sent, query, params);
  const origin = new URL(upstream.urls[0]!).origin;
  let canary: Explanation['canary'];
  const c = route.config.canary;
  if (c !== undefined) {
    const state = new CanaryState(route.name, route.upstream, c, { rolledBack: () => undefined, stepped: () => undefined });
    const d = state.decide(headers, userId, undefined);
    const onCanary = d.side === 'canary';
    canary = {
      side: d.side,
      reason: d.reason,
      bucket: d.bucket ?? null,
      percent: state.effectivePercent(),
      upstream: onCanary ? c.upstream : route.upstream,
      upstreamPath: onCanary ? canaryPathFor(route, sent, query, params) : upstreamPath,
      newCookie: d.setCookie !== undefined,
    };
  }
  let shadow: Explanation['shadow'];
  const sh = route.config.shadow;
  if (sh !== undefined) {
    const hasBody = hasRequestBody(headers);
    const length = headers['content-length'];
    const reason =
      canary?.side === 'canary' ? 'canary side' : !sh.methods.includes(m as never) ? 'method' : hasBody && length === undefined ? 'body-unknown-length' : hasBody && Number(length) > sh.maxBodyBytes ? 'too-large' : null;
    shadow = {
      copied: reason === null,
      reason,
      percent: sh.percent,
      upstream: sh.upstream,
      upstreamPath:
        route.rewrite !== null || route.queryEdits !== null
          ? rewritePath(routedTarget(route, sent, query, params), '', 0, basePathOf(config.upstreams[sh.upstream]!.urls[0]!))
          : rewritePath(sent, query, stripOf(sh.stripPrefix).length, basePathOf(config.upstreams[sh.upstream]!.urls[0]!)),
      compares: { status: true, headers: sh.compare.headers, ignoreHeaders: sh.compare.ignoreHeaders, ignore: sh.compare.ignore, unordered: sh.compare.unordered },
    };
  }
  return {
    ...out,
    ...(canary ? { canary } : {}),
    ...(shadow ? { shadow } : {}),
    outcome: 'proxy',
    normalizedPath: path,
    route: routeInfo,
    ...shown,
    ...(route.config.rateLimit !== false && (route.config.rateLimit ?? config.rateLimit) !== undefined ? { rateLimit: (route.config.rateLimit || config.rateLimit)! } : {}),
    upstream: { name: route.upstream, urls: upstream.urls },
    ...(route.config.fallback ? { fallback: { name: route.config.fallback, upstreamPath: fallbackPathFor(route, sent, query) } } : {}),
    upstreamPath,
    upstreamUrl: origin + upstreamPath,
  };
}

import type { LoadedTable } from './config/load';
import type { RouteTableConfig, UpstreamConfig } from './config/schema';
import type { Logger } from './observability/logger';
import { forwardingPolicy, type ForwardingPolicy } from './proxy/headers';
import type { ResponseHandler } from './proxy/upstream';
import { RouteMatcher } from './routing/compile';
import { Authenticator, type AuthBreaker } from './auth';
import { CanaryState, type CanaryEvents } from './canary/state';
import { ShadowRoute, type ShadowEvents } from './shadow/route';
import { RouteLimiter, type SharedLimiter } from './ratelimit/route';
import { Upstream, type UpstreamEvents } from './upstream';
import type { Counts } from './state/peers';
import { upstreamTlsFingerprint } from './tls/certificates';

/**
 * A route table ready to serve: the matcher, the forwarding policy and one
 * Upstream (connections, breaker, instance health) per upstream, all built
 * when the table loads. A request reads the current ActiveTable once and uses
 * only it, start to end.
 */
export interface ActiveTable {
  readonly version: string;
  readonly loadedAt: Date;
  readonly source: string;
  readonly config: RouteTableConfig;
  readonly matcher: RouteMatcher;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly policy: ForwardingPolicy;
  readonly healthPath: string;
  readonly decodeSlashes: boolean;
  readonly auth: Authenticator | undefined;
  /** Live canary state per route name. */
  readonly canaries: ReadonlyMap<string, CanaryState>;
  /** Parallel runs per route name (routes with a `shadow`). */
  readonly shadows: ReadonlyMap<string, ShadowRoute>;
  /** Upstreams that count as the old system in the migration report. */
  readonly legacy: readonly string[];
  /** Rate limits per route name (routes with one, or the table's default). */
  readonly rateLimits: ReadonlyMap<string, RouteLimiter>;
}

/** `migration.legacy`, or by default the upstream of the route whose path is `/` (the catch-all is the monolith). */
export function legacyUpstreams(config: RouteTableConfig): string[] {
  if (config.migration.legacy !== undefined) return [...config.migration.legacy];
  const root = config.routes.find((r) => r.path === '/' && r.host === undefined) ?? config.routes.find((r) => r.path === '/');
  return root?.upstream === undefined ? [] : [root.upstream];
}

export interface TableDeps {
  log: Logger;
  events: UpstreamEvents;
  onResponse: ResponseHandler;
  /** Makes the breaker that protects a forward-auth endpoint. */
  canaryEvents: CanaryEvents;
  shadowEvents: ShadowEvents;
  /** Other processes' counts by key (`canary:<route>`, `shadow:<route>`), summed: replicas through Redis, workers through their primary. */
  sharedCounts?: ((key: string) => Counts | undefined) | undefined;
  /** Rate-limit decisions shared between replicas (Redis), when configured. */
  sharedLimiter?: SharedLimiter | undefined;
  authBreaker(config: NonNullable<RouteTableConfig['auth']>): AuthBreaker | undefined;
}

/** `matcher`: the table's matcher when it was built beforehand (in slices, on reload). */
export function activate(loaded: LoadedTable, deps: TableDeps, previous?: ActiveTable, matcher?: RouteMatcher): ActiveTable {
  const { config } = loaded;
  const upstreams = new Map<string, Upstream>();
  for (const [name, cfg] of Object.entries(config.upstreams)) {
    // Kept across reloads while its settings are unchanged: pools stay warm, breaker state survives.
    const kept = previous?.upstreams.get(name);
    // An upstream with TLS files is also rebuilt when their contents changed (a renewed client certificate).
    const same = kept && sameUpstream(kept.config, cfg) && (cfg.tls === undefined || kept.tlsFingerprint === upstreamTlsFingerprint(cfg.tls, name));
    upstreams.set(name, same ? kept : new Upstream(name, cfg, deps.log, deps.events, deps.onResponse));
  }
  let auth: Authenticator | undefined;
  if (config.auth) {
    const kept = previous?.auth;
    if (kept && JSON.stringify(kept.config) === JSON.stringify(config.auth)) auth = kept;
    else {
      auth = new Authenticator(config.auth, deps.authBreaker(config.auth), (message, haveKeys) =>
        deps.log[haveKeys ? 'warn' : 'error']({ jwksUrl: config.auth?.jwt?.jwksUrl, cause: message, keptKeys: haveKeys }, haveKeys ? 'JWKS refresh failed; the keys already fetched keep working' : 'JWKS fetch failed; tokens cannot be checked (503)'),
      );
      auth.start();
    }
  }
  const shadows = new Map<string, ShadowRoute>();
  for (const r of config.routes) {
    // Only proxying routes can have a shadow or a canary (validation refuses them on redirect and respond routes).
    if (!r.shadow || r.upstream === undefined) continue;
    const target = config.upstreams[r.shadow.upstream]!;
    // Kept (counts, pool) while the shadow's settings and its upstream's address are unchanged.
    const kept = previous?.shadows.get(r.name);
    const same =
      kept &&
      JSON.stringify(kept.config) === JSON.stringify(r.shadow) &&
      JSON.stringify(previous!.config.upstreams[r.shadow.upstream]) === JSON.stringify(target) &&
      JSON.stringify(previous!.config.upstreams[r.upstream]) === JSON.stringify(config.upstreams[r.upstream]);
    const primary = config.upstreams[r.upstream]!;
    const shadow = same ? kept : new ShadowRoute(r.name, r.shadow, target.urls[0]!, target.preserveHost, deps.shadowEvents, primary.urls[0]!, primary.preserveHost);
    if (r.canary?.gate !== undefined) shadow.gateWindow(r.canary.gate.windowMs);
    // The noise learnt by other processes counts here too.
    const sharedNoise = deps.sharedCounts;
    if (sharedNoise !== undefined && r.shadow.noise !== undefined) shadow.remoteLearnt = () => sharedNoise(`shadow:${r.name}`);
    shadows.set(r.name, shadow);
  }
  const canaries = new Map<string, CanaryState>();
  for (const r of config.routes) {
    if (!r.canary || r.upstream === undefined) continue;
    // Kept while the canary's settings (and primary) are unchanged: a rollback stays until reset or edited.
    const kept = previous?.canaries.get(r.name);
    const shadow = shadows.get(r.name);
    // The canary and the parallel run meet here: the gate reads the shadow's agreement.
    const agreement = shadow === undefined ? undefined : () => shadow.agreement();
    const same = kept && kept.primary === r.upstream && JSON.stringify(kept.config) === JSON.stringify(r.canary) && (r.canary.gate === undefined || previous?.shadows.get(r.name) === shadow);
    const state = same ? kept : new CanaryState(r.name, r.upstream, r.canary, deps.canaryEvents, Date.now, agreement);
    // Processes sharing state judge a rollback, and a ramp step, on the fleet's counts.
    const shared = deps.sharedCounts;
    if (shared !== undefined) state.remoteCounts = () => shared(`canary:${r.name}`);
    canaries.set(r.name, state);
  }
  return Object.freeze({
    version: loaded.version,
    loadedAt: new Date(),
    source: loaded.source,
    config,
    matcher: matcher ?? new RouteMatcher(config),
    upstreams,
    policy: forwardingPolicy(config.server.trustProxy, auth?.ownedHeaders() ?? DEFAULT_IDENTITY_HEADERS),
    healthPath: config.server.healthPath,
    decodeSlashes: config.server.encodedSlashes === 'decode',
    auth,
    canaries,
    shadows,
    legacy: legacyUpstreams(config),
    rateLimits: rateLimitsOf(config, deps, previous),
  });
}

/** Parallel runs of `previous` that `next` does not keep: their pools are closed. */
export function retiredShadows(previous: ActiveTable, next: ActiveTable): ShadowRoute[] {
  const kept = new Set(next.shadows.values());
  return [...previous.shadows.values()].filter((s) => !kept.has(s));
}

/** Upstreams of `previous` that `next` no longer uses (removed, or settings changed). */
export function retiredUpstreams(previous: ActiveTable, next: ActiveTable): Upstream[] {
  const inUse = new Set(next.upstreams.values());
  return [...previous.upstreams.values()].filter((u) => !inUse.has(u));
}

/** Without an auth block the default identity headers are still never believed from a client. */
const DEFAULT_IDENTITY_HEADERS = ['X-User-Id', 'X-User-Email', 'X-User-Roles', 'X-Strangler-Identity'];

function sameUpstream(a: UpstreamConfig, b: UpstreamConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Each proxied route's limiter (its own `rateLimit`, else the table's); kept across reloads while its settings are unchanged. */
function rateLimitsOf(config: RouteTableConfig, deps: TableDeps, previous: ActiveTable | undefined): Map<string, RouteLimiter> {
  const out = new Map<string, RouteLimiter>();
  for (const r of config.routes) {
    if (r.upstream === undefined || r.rateLimit === false) continue;
    const rl = r.rateLimit ?? config.rateLimit;
    if (rl === undefined) continue;
    const kept = previous?.rateLimits.get(r.name);
    out.set(r.name, kept && JSON.stringify(kept.config) === JSON.stringify(rl) ? kept : new RouteLimiter(r.name, rl, deps.sharedLimiter));
  }
  return out;
}

import type { LoadedTable } from './config/load';
import type { RouteTableConfig, UpstreamConfig } from './config/schema';
import type { Logger } from './observability/logger';
import { forwardingPolicy, type ForwardingPolicy } from './proxy/headers';
import { UpstreamPool } from './proxy/upstream';
import { RouteMatcher } from './routing/compile';

/**
 * A route table ready to serve: the matcher, the forwarding policy and one
 * pool per upstream, all built when the table loads. A request reads the
 * current ActiveTable once and uses only it, start to end.
 */
export interface ActiveTable {
  readonly version: string;
  readonly loadedAt: Date;
  readonly source: string;
  readonly config: RouteTableConfig;
  readonly matcher: RouteMatcher;
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  readonly policy: ForwardingPolicy;
  readonly healthPath: string;
  readonly decodeSlashes: boolean;
}

export function activate(loaded: LoadedTable, log: Logger, previous?: ActiveTable): ActiveTable {
  const { config } = loaded;
  const pools = new Map<string, UpstreamPool>();
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    const kept = previous?.pools.get(name);
    pools.set(name, kept && sameUpstream(kept.config, upstream) ? kept : new UpstreamPool(name, upstream, log));
  }
  return Object.freeze({
    version: loaded.version,
    loadedAt: new Date(),
    source: loaded.source,
    config,
    matcher: new RouteMatcher(config),
    pools,
    policy: forwardingPolicy(config.server.trustProxy),
    healthPath: config.server.healthPath,
    decodeSlashes: config.server.encodedSlashes === 'decode',
  });
}

/** Pools of `previous` that `next` no longer uses (removed upstreams, changed settings). */
export function retiredPools(previous: ActiveTable, next: ActiveTable): UpstreamPool[] {
  const inUse = new Set(next.pools.values());
  return [...previous.pools.values()].filter((p) => !inUse.has(p));
}

function sameUpstream(a: UpstreamConfig, b: UpstreamConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { StateConfig } from '../config/schema';

export type RedisConfig = NonNullable<StateConfig['redis']>;

/** Client options every connection takes; `retryStrategy` and the like are per use. */
export type ClientOptions = Pick<RedisOptions, 'connectTimeout' | 'enableOfflineQueue' | 'maxRetriesPerRequest' | 'commandTimeout' | 'enableAutoPipelining' | 'retryStrategy' | 'lazyConnect'>;

function hostPort(url: string): { host: string; port: number; username?: string; password?: string; tls: boolean } {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || (u.protocol === 'redis-sentinel:' ? 26379 : 6379)),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === 'rediss:',
  };
}

/**
 * A client for `state.redis.url`: one server (`redis://`, `rediss://`), a
 * Sentinel set (a list of `redis-sentinel://` addresses and `sentinelName`;
 * the client follows the master through failovers), or a Redis Cluster (a
 * list of `redis://` or `rediss://` nodes; the client follows the slots).
 * Every key the gateway uses in one script shares a hash tag, so the
 * scripts run in a cluster too.
 */
export function redisClient(config: RedisConfig, options: ClientOptions): RedisClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Redis, Cluster } = require('ioredis') as typeof import('ioredis');
  if (typeof config.url === 'string') return new Redis(config.url, options);
  const nodes = config.url.map(hostPort);
  const first = nodes[0]!;
  const auth = { ...(first.username ? { username: first.username } : {}), ...(first.password ? { password: first.password } : {}) };
  if (config.url[0]!.startsWith('redis-sentinel:')) {
    // The addresses are the sentinels'; the credentials in them are the master's (sentinels rarely have their own).
    return new Redis({ ...options, ...auth, sentinels: nodes.map(({ host, port }) => ({ host, port })), name: config.sentinelName, sentinelRetryStrategy: (n: number) => Math.min(2_000, 100 * n) });
  }
  // The cluster client keeps its own queue: it needs it for its ready check (CLUSTER INFO while connecting).
  // Callers do not send while the client is not ready (the shared state checks first), and each node's
  // connection keeps the settings asked for (no queue, a command timeout).
  const { enableAutoPipelining, retryStrategy, lazyConnect, ...perNode } = options;
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    {
      ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: (n: number) => retryStrategy?.(n) ?? null }),
      redisOptions: { ...perNode, ...auth, ...(first.tls ? { tls: {} } : {}) },
    },
  ) as unknown as RedisClient;
}

/** Where the state is kept, for messages: the URL, or the list, without credentials. */
export function describeRedis(config: RedisConfig): string {
  const list = typeof config.url === 'string' ? [config.url] : config.url;
  return list.map((u) => u.replace(/\/\/[^@/]*@/, '//')).join(',');
}

/**
 * A Redis call that gives up after `ms`: a cluster client queues commands
 * while it has no slot map (its per-node command timeout does not apply
 * then), and nothing the gateway asks Redis may wait longer than this.
 */
export function within<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([call, expired]).finally(() => clearTimeout(timer));
}

import type { Redis as RedisClient } from 'ioredis';
import type { StateConfig } from '../config/schema';
import { versionOf } from '../config/version';
import { redisClient, within } from './connect';

/** No call waits longer: a reload (or a pull or push) whose Redis does not answer fails instead of hanging. */
const CALL_MS = 3_000;

/**
 * The route table kept in Redis (`source: redis`), for fleets without a
 * shared file: a hash with the text and its version (a content hash), the
 * last versions' texts (to say what changed since one of them), and a
 * channel announcing each new version. Publishing is compare-and-set on the
 * version it was based on, in one Lua script: two operators cannot
 * overwrite each other's edit.
 */

/** Versions whose texts are kept, to summarise what changed since a stale push's base. */
const HISTORY = 20;

const PUSH_LUA = `
local cur = redis.call('HGET', KEYS[1], 'version') or ''
if cur ~= ARGV[1] then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'text', ARGV[3], 'at', ARGV[4], 'by', ARGV[5])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('LREM', KEYS[3], 0, ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
local keep = tonumber(ARGV[7])
for _, v in ipairs(redis.call('LRANGE', KEYS[3], keep, -1)) do
  redis.call('HDEL', KEYS[2], v)
end
redis.call('LTRIM', KEYS[3], 0, keep - 1)
redis.call('PUBLISH', ARGV[6], ARGV[2])
return {1, ARGV[2]}
`;

export type PushOutcome = { ok: true; version: string } | { ok: false; current: string; currentText: string | undefined; baseText: string | undefined };

type PushClient = RedisClient & { pushTable(table: string, history: string, versions: string, base: string, version: string, text: string, at: string, by: string, channel: string, keep: number): Promise<[number, string]> };

export class RedisTableStore {
  private readonly client: PushClient;
  private subscriber: RedisClient | undefined;
  private readonly key: string;
  private readonly channel: string;
  readonly where: string;

  constructor(private readonly config: NonNullable<StateConfig['redis']>) {
    this.client = redisClient(config, { connectTimeout: config.connectTimeoutMs, maxRetriesPerRequest: 1, commandTimeout: 2_000, retryStrategy: (n: number) => Math.min(2_000, 100 * n) }) as PushClient;
    this.client.on('error', () => undefined);
    this.client.defineCommand('pushTable', { numberOfKeys: 3, lua: PUSH_LUA });
    // {table}: the three keys of the publishing script hash to one slot (Redis Cluster).
    this.key = `${config.keyPrefix}{table}`;
    this.channel = `${config.keyPrefix}table:events`;
    this.where = `redis:${this.key}`;
  }

  /** The published table, or undefined when none was published yet. */
  async get(): Promise<{ version: string; text: string } | undefined> {
    const [version, text] = await within(this.client.hmget(this.key, 'version', 'text'), CALL_MS);
    return version && text !== null ? { version, text } : undefined;
  }

  async version(): Promise<string | undefined> {
    return (await within(this.client.hget(this.key, 'version'), CALL_MS)) ?? undefined;
  }

  /** Publishes `text` if the live version is still `base` ('' when nothing was published yet). */
  async push(text: string, base: string, by: string): Promise<PushOutcome> {
    const version = versionOf(text);
    const [ok, current] = await within(this.client.pushTable(this.key, `${this.key}:history`, `${this.key}:versions`, base, version, text, new Date().toISOString(), by, this.channel, HISTORY), CALL_MS);
    if (ok === 1) return { ok: true, version };
    const [currentText, baseText] = await within(Promise.all([this.client.hget(this.key, 'text'), base === '' ? null : this.client.hget(`${this.key}:history`, base)]), CALL_MS);
    return { ok: false, current, currentText: currentText ?? undefined, baseText: baseText ?? undefined };
  }

  /** Calls `changed` with each version announced; the caller also checks now and then (a message can be missed). */
  subscribe(changed: (version: string) => void): void {
    const sub = redisClient(this.config, { connectTimeout: this.config.connectTimeoutMs, retryStrategy: (n: number) => Math.min(2_000, 100 * n) });
    sub.on('error', () => undefined);
    sub.on('ready', () => void sub.subscribe(this.channel).catch(() => undefined));
    sub.on('message', (_channel: string, version: string) => changed(version));
    this.subscriber = sub;
  }

  close(): void {
    this.client.disconnect();
    this.subscriber?.disconnect();
  }
}

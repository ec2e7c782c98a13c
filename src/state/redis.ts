import { hostname } from 'node:os';
import type { Redis as RedisClient } from 'ioredis';
import type { StateConfig } from '../config/schema';
import type { Policy } from '../ratelimit/gcra';
import { redisClient, within } from './connect';
import { NewestEvents, slot, sumFresh, type CanaryEvent, type Counts, type Peers, type SharedCounts } from './peers';

/** The longest a request waits on Redis (a lease), and the longest background exchanges wait. */
const REQUEST_MS = 250;
const SLOW_MS = 1_000;

export type { CanaryEvent };

/**
 * What replicas share through Redis (the only module that imports the
 * client, loaded only when `state.redis` is set): canary rollbacks and
 * resets, and rate-limit counters. Redis being away never fails a request:
 * every call has a local answer, the outage is logged once and reported,
 * and the shared state is resynchronised when Redis returns.
 */

export interface SharedStateEvents {
  /** Another replica rolled a canary back or reset it (or the poll found it so). */
  canary(event: CanaryEvent): void;
  /** Redis became reachable or unreachable. */
  availability(up: boolean, detail: string): void;
}

/**
 * GCRA in one round trip, for up to ARGV[3] requests at once (a lease): as
 * many as fit are granted and the TAT moves by that many intervals. The TAT
 * lives in Redis and the clock is Redis's own (replicas' clocks may differ).
 * Returns {granted, remaining after, ms until the next one is allowed}.
 */
const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local fit = math.floor((tolerance + interval - (tat - now)) / interval)
if fit < 1 then
  return {0, 0, math.ceil(tat - tolerance - now)}
end
local granted = math.min(want, fit)
local nxt = tat + granted * interval
redis.call('SET', KEYS[1], tostring(nxt), 'PX', math.ceil(nxt - now) + 1000)
return {granted, fit - granted, math.ceil(nxt - now)}
`;

/** Canary events are checked this often besides pub/sub: a missed message is caught within 2 s. */
const POLL_MS = 1_000;

type GcraClient = RedisClient & { gcra(key: string, interval: number, tolerance: number, want: number): Promise<[number, number, number]> };

export class SharedState implements Peers {
  private readonly client: GcraClient;
  private readonly subscriber: RedisClient;
  private readonly prefix: string;
  private readonly channel: string;
  private readonly canaryKey: string;
  private up = false;
  private detail = 'connecting';
  private readonly timer: NodeJS.Timeout;
  /** This replica's id in the shared counts. */
  private readonly replica = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  /** Other replicas' counts per key, as last read (with when each was written). */
  private remote = new Map<string, Array<{ counts: Counts; at: number }>>();
  /** The newest canary event seen per route (local or remote). */
  private readonly seen = new NewestEvents();
  /** Local events Redis has not taken yet (it was away): sent when it returns. */
  private readonly unsent = new Map<string, CanaryEvent>();

  constructor(
    config: NonNullable<StateConfig['redis']>,
    private readonly events: SharedStateEvents,
  ) {
    const options = {
      connectTimeout: config.connectTimeoutMs,
      // No queue while Redis is away: a call fails at once and the caller answers locally.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A Redis that accepts but does not answer must not hold requests: past this the caller decides locally.
      commandTimeout: REQUEST_MS,
      enableAutoPipelining: true,
      retryStrategy: (attempt: number) => Math.min(2_000, 100 * attempt),
      lazyConnect: false,
    };
    this.client = redisClient(config, options) as GcraClient;
    this.client.defineCommand('gcra', { numberOfKeys: 1, lua: GCRA_LUA });
    this.subscriber = redisClient(config, { ...options, enableAutoPipelining: false });
    this.prefix = config.keyPrefix;
    this.channel = `${this.prefix}events`;
    this.canaryKey = `${this.prefix}canary`;
    this.client.on('ready', () => this.available(true, 'connected'));
    this.client.on('error', (err: Error) => this.available(false, err.message));
    this.client.on('end', () => this.available(false, 'connection closed'));
    this.client.on('close', () => this.available(false, 'connection closed'));
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('ready', () => void this.subscriber.subscribe(this.channel).catch(() => undefined));
    this.subscriber.on('message', (_channel: string, message: string) => this.received(message));
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** For /readyz and /metrics. */
  status(): { redis: 'connected' | 'unavailable'; detail: string } {
    return { redis: this.up ? 'connected' : 'unavailable', detail: this.detail };
  }

  private available(up: boolean, detail: string): void {
    if (up === this.up) return;
    this.up = up;
    this.detail = detail;
    this.events.availability(up, detail);
    if (up) {
      // Back: what happened here meanwhile goes out, what happened elsewhere comes in.
      for (const e of this.unsent.values()) void this.publish(e);
      this.unsent.clear();
      void this.poll();
    }
  }

  /** A canary event decided here: stored (newest wins) and announced to the other replicas. */
  canaryEvent(e: CanaryEvent): void {
    this.seen.take(e);
    if (!this.up) {
      this.unsent.set(slot(e), e);
      return;
    }
    void this.publish(e);
  }

  private async publish(e: CanaryEvent): Promise<void> {
    try {
      await within(this.client.hset(this.canaryKey, slot(e), JSON.stringify(e)), SLOW_MS);
      await within(this.client.publish(this.channel, JSON.stringify(e)), SLOW_MS);
    } catch {
      this.unsent.set(slot(e), e);
    }
  }

  private received(message: string): void {
    let e: CanaryEvent;
    try {
      e = JSON.parse(message) as CanaryEvent;
    } catch {
      return;
    }
    this.adopt(e);
  }

  /** Applies a remote event if it is newer than what this replica knows. */
  private adopt(e: CanaryEvent): void {
    if (this.seen.take(e)) this.events.canary(e);
  }

  private async poll(): Promise<void> {
    if (!this.up) return;
    try {
      const all = await within(this.client.hgetall(this.canaryKey), SLOW_MS);
      for (const value of Object.values(all)) this.received(value);
      await this.exchangeCounts();
    } catch {
      // The error event reports it.
    }
  }

  /** Canary routes whose counts this replica shares, and where it reads them (set by the gateway). */
  countsSource: (() => SharedCounts[]) | undefined = undefined;

  /**
   * Once a second: this replica's counts (the canary windows the rollback and
   * ramp rules judge, the shadow noise learnt) go to Redis, one hash per key
   * with a field per replica, expiring; the others' are read back. The rules
   * judge the fleet's counts, not one replica's share of them.
   */
  private async exchangeCounts(): Promise<void> {
    const mine = this.countsSource?.() ?? [];
    const next = new Map<string, Array<{ counts: Counts; at: number }>>();
    const now = Date.now();
    for (const c of mine) {
      const key = `${this.prefix}counts:${c.key}`;
      await within(this.client.hset(key, this.replica, JSON.stringify({ counts: c.counts, at: now })), SLOW_MS);
      await within(this.client.pexpire(key, 10_000), SLOW_MS);
      const all = await within(this.client.hgetall(key), SLOW_MS);
      const others: Array<{ counts: Counts; at: number }> = [];
      for (const [replica, value] of Object.entries(all)) {
        if (replica === this.replica) continue;
        try {
          const v = JSON.parse(value) as { counts?: Counts; at?: number };
          if (v.counts !== undefined && typeof v.at === 'number') others.push({ counts: v.counts, at: v.at });
        } catch {
          // Not ours.
        }
      }
      next.set(c.key, others);
    }
    this.remote = next;
  }

  /** The other replicas' counts under a key, summed (undefined without them, or while Redis is away). */
  remoteCounts(key: string): Counts | undefined {
    if (!this.up) return undefined;
    // A replica that stopped writing (gone) stops counting after 3 s.
    return sumFresh(this.remote.get(key) ?? [], Date.now());
  }

  /**
   * Up to `want` requests of a key's shared allowance, granted at once (a
   * lease the caller spends locally); undefined when Redis is away (the
   * caller decides locally). `granted: 0` is a refusal.
   */
  async lease(key: string, p: Policy, want: number): Promise<{ granted: number; remaining: number; resetSeconds: number } | undefined> {
    if (!this.up) return undefined;
    const interval = p.windowMs / p.limit;
    const tolerance = interval * (p.limit + p.burst - 1);
    try {
      // On a request's path: past this the request is decided locally.
      const [granted, remaining, ms] = await within(this.client.gcra(`${this.prefix}rl:${key}`, interval, tolerance, want), REQUEST_MS);
      return { granted, remaining, resetSeconds: Math.max(granted > 0 ? 0 : 1, Math.ceil(ms / 1000)) };
    } catch {
      return undefined;
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.client.disconnect();
    this.subscriber.disconnect();
  }
}

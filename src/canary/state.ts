import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CanaryConfig } from '../config/schema';
import { cookieValue } from '../core/cookies';
import type { Counts } from '../state/peers';
import { RollingWindow, type WindowStats, type WindowSums } from './window';

export type Side = 'primary' | 'canary';

export interface CanaryDecision {
  side: Side;
  /** Why: the user's bucket, a tester's override, a rollback, or no sticky key. */
  reason: 'bucket' | 'override' | 'rolled-back' | 'no-key';
  bucket: number | undefined;
  /** Set-Cookie value when this response assigns the user a new sticky key. */
  setCookie: string | undefined;
}

export interface CanaryEvents {
  rolledBack(route: string, details: Record<string, unknown>): void;
  /** The ramp went up a step (`step`: its index; `nextStepAt`: when the next one may come, ms since the epoch). */
  stepped(route: string, percent: number, step: number, nextStepAt: number): void;
}

export const BUCKETS = 10_000;

/** FNV-1a 32-bit: fast, well spread, and the same on every replica. */
export function bucketOf(salt: string, key: string): number {
  let h = 0x811c9dc5;
  const s = salt + '\u0000' + key;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % BUCKETS;
}

/**
 * One canary route's live state: sticky weighted assignment, per-side health
 * in a rolling window, automatic rollback and the progressive ramp. Kept
 * across reloads while the canary's settings are unchanged; the route table
 * stays the source of truth for the target share.
 */
export class CanaryState {
  readonly salt: string;
  private readonly primaryWindow: RollingWindow;
  private readonly canaryWindow: RollingWindow;
  private readonly stickyHeader: string | undefined;
  private readonly overrideHeader: string;
  rolledBack: { reason: string; at: string; errorPercent: number; requests: number } | undefined = undefined;
  private step = 0;
  private nextStepAt: number;
  private paused: string | undefined = undefined;

  constructor(
    readonly route: string,
    readonly primary: string,
    readonly config: CanaryConfig,
    private readonly events: CanaryEvents,
    private readonly now: () => number = Date.now,
    /** The route's parallel-run counts over the gate's window (routes with canary.gate). */
    private readonly agreement?: () => { compared: number; mismatch: number },
  ) {
    this.salt = config.cohort ?? route;
    const windowMs = config.rollback?.windowMs ?? 60_000;
    this.primaryWindow = new RollingWindow(windowMs, now);
    this.canaryWindow = new RollingWindow(windowMs, now);
    this.stickyHeader = config.sticky.startsWith('header:') ? config.sticky.slice(7).toLowerCase() : undefined;
    this.overrideHeader = config.overrideHeader.toLowerCase();
    this.nextStepAt = now() + config.stepEveryMs;
  }

  /** The share of users sent to the canary now: 0 after a rollback, the ramp's step, or the target. */
  effectivePercent(): number {
    if (this.rolledBack) return 0;
    const steps = this.config.steps;
    if (steps === undefined) return this.config.percent;
    this.advanceRamp();
    return Math.min(steps[this.step]!, this.config.percent);
  }

  decide(headers: IncomingHttpHeaders, userId: string | undefined, roles: readonly string[] | undefined): CanaryDecision {
    const c = this.config;
    if (c.allowOverride) {
      const o = headers[this.overrideHeader];
      if ((o === 'always' || o === 'never') && (c.overrideRoles === undefined || (roles !== undefined && c.overrideRoles.some((r) => roles.includes(r))))) {
        return { side: o === 'always' ? 'canary' : 'primary', reason: 'override', bucket: undefined, setCookie: undefined };
      }
    }
    const percent = this.effectivePercent();
    if (this.rolledBack) return { side: 'primary', reason: 'rolled-back', bucket: undefined, setCookie: undefined };
    let key: string | undefined;
    let setCookie: string | undefined;
    if (this.stickyHeader !== undefined) {
      const v = headers[this.stickyHeader];
      key = Array.isArray(v) ? v[0] : v;
    } else {
      if (c.sticky === 'user' && userId) key = userId;
      else {
        key = cookieValue(headers.cookie, c.cookieName);
        if (key === undefined) {
          key = randomUUID();
          setCookie = `${c.cookieName}=${key}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax`;
        }
      }
    }
    if (key === undefined || key === '') return { side: 'primary', reason: 'no-key', bucket: undefined, setCookie };
    const bucket = bucketOf(this.salt, key);
    return { side: bucket < percent * 100 ? 'canary' : 'primary', reason: 'bucket', bucket, setCookie };
  }

  /** Records one finished request of a side; may roll the canary back. */
  record(side: Side, failed: boolean, ms: number): void {
    if (side === 'primary') {
      this.primaryWindow.record(failed, ms);
      return;
    }
    this.canaryWindow.record(failed, ms);
    const rb = this.config.rollback;
    if (rb === undefined || this.rolledBack || !failed) return;
    const s = this.judged();
    if (s.requests >= rb.minRequests && s.errorPercent > rb.maxErrorPercent) {
      this.rolledBack = { reason: `canary error rate ${s.errorPercent}% over ${s.requests} requests exceeds ${rb.maxErrorPercent}%`, at: new Date(this.now()).toISOString(), errorPercent: s.errorPercent, requests: s.requests };
      this.events.rolledBack(this.route, { ...this.rolledBack, canary: this.config.upstream, windowMs: rb.windowMs });
    }
  }

  /**
   * Operator reset: the canary gets its configured share again; the ramp starts over.
   * Its health window starts empty: the failures that rolled it back would otherwise
   * roll it back again at its next failure, and hold the ramp, until they age out.
   */
  reset(): void {
    this.rolledBack = undefined;
    this.canaryWindow.clear();
    this.step = 0;
    this.paused = undefined;
    this.nextStepAt = this.now() + this.config.stepEveryMs;
  }

  /** The other processes' windows (replicas through Redis, workers through their primary), summed; set by the gateway. */
  remoteCounts: (() => Counts | undefined) | undefined = undefined;

  /** The canary side's window here plus the others' (when shared): what the rollback rule and the ramp judge. */
  private judged(remote = this.remoteCounts?.()): WindowStats {
    return this.canaryWindow.stats(remote as Partial<WindowSums> | undefined);
  }

  /**
   * Both sides' windows, for the other processes: the rollback rule judges the
   * canary side's requests and failures, the ramp's health check both sides' latency too.
   */
  localCounts(): Counts {
    const c = this.canaryWindow.sums();
    const p = this.primaryWindow.sums();
    return { requests: c.requests, failures: c.failures, latency: c.latency, primaryRequests: p.requests, primaryFailures: p.failures, primaryLatency: p.latency };
  }

  /** The others' primary-side window as a window's sums. */
  private remotePrimary(remote: Counts | undefined): Partial<WindowSums> | undefined {
    if (remote === undefined) return undefined;
    return { requests: remote.primaryRequests as number | undefined, failures: remote.primaryFailures as number | undefined, latency: remote.primaryLatency as number[] | undefined };
  }

  /**
   * Another replica's decision (shared state): a rollback is honoured here
   * without being announced again; a reset clears this replica's window too.
   */
  adopt(e: { kind: 'rolled-back' | 'reset' | 'ramp'; at: number; reason?: string; errorPercent?: number; requests?: number; step?: number; nextStepAt?: number }): void {
    if (e.kind === 'reset') return this.reset();
    if (e.kind === 'ramp') {
      // A ramp only goes up (a reset takes it back to the start): another replica's step is taken when it is ahead.
      const steps = this.config.steps;
      if (steps === undefined || e.step === undefined || e.step <= this.step || e.step >= steps.length) return;
      this.step = e.step;
      if (e.nextStepAt !== undefined) this.nextStepAt = e.nextStepAt;
      this.paused = undefined;
      return;
    }
    if (this.rolledBack !== undefined) return;
    this.rolledBack = { reason: `${e.reason ?? 'rolled back'} (decided by another gateway process)`, at: new Date(e.at).toISOString(), errorPercent: e.errorPercent ?? 0, requests: e.requests ?? 0 };
  }

  private healthy(): string | undefined {
    const rb = this.config.rollback;
    // Judged on every process's windows when they are shared: a step is taken (or held) for the whole fleet.
    const remote = this.remoteCounts?.();
    const canary = this.judged(remote);
    const max = rb?.maxErrorPercent ?? 5;
    // Pausing is the safe side: any volume over the error limit holds the ramp (rollback needs minRequests).
    if (canary.requests > 0 && canary.errorPercent > max) return `canary error rate ${canary.errorPercent}% above ${max}%`;
    const primary = this.primaryWindow.stats(this.remotePrimary(remote));
    if (canary.p95Ms !== null && primary.p95Ms !== null && canary.p95Ms > primary.p95Ms * this.config.maxLatencyFactor) {
      return `canary p95 ${canary.p95Ms} ms is over ${this.config.maxLatencyFactor}x the primary's ${primary.p95Ms} ms`;
    }
    const gate = this.config.gate;
    if (gate !== undefined && this.agreement !== undefined) {
      const { compared, mismatch } = this.agreement();
      if (compared < gate.minCompared) return `gate: ${compared} of ${gate.minCompared} comparisons in the window`;
      const pct = Math.round((mismatch / compared) * 10_000) / 100;
      if (pct > gate.maxMismatchPercent) return `gate: ${pct}% of ${compared} comparisons mismatch, above ${gate.maxMismatchPercent}%`;
    }
    return undefined;
  }

  private advanceRamp(): void {
    const steps = this.config.steps!;
    const now = this.now();
    while (this.step < steps.length - 1 && now >= this.nextStepAt) {
      const problem = this.healthy();
      this.nextStepAt += this.config.stepEveryMs;
      if (problem !== undefined) {
        this.paused = problem;
        continue;
      }
      this.paused = undefined;
      this.step++;
      this.events.stepped(this.route, Math.min(steps[this.step]!, this.config.percent), this.step, this.nextStepAt);
    }
  }

  describe(): Record<string, unknown> {
    const effective = this.effectivePercent();
    const steps = this.config.steps;
    return {
      route: this.route,
      primary: this.primary,
      canary: this.config.upstream,
      percent: this.config.percent,
      effectivePercent: effective,
      sticky: this.config.sticky,
      cohort: this.config.cohort ?? null,
      rolledBack: this.rolledBack ?? null,
      ramp: steps
        ? { steps, step: this.step, current: Math.min(steps[this.step]!, this.config.percent), nextStepAt: this.step < steps.length - 1 ? new Date(this.nextStepAt).toISOString() : null, paused: this.paused ?? null }
        : null,
      health: { primary: this.primaryWindow.stats(), canary: this.canaryWindow.stats() } satisfies Record<Side, WindowStats>,
    };
  }
}

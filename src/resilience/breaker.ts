import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../config/schema';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** An upstream failure as the breaker sees it; `counts: false` records a success (4xx, client abort). */
export class AttemptError extends Error {
  constructor(
    readonly kind: string,
    readonly counts: boolean,
    /** Safe to send again: nothing reached the upstream's application (refused, or a reused keep-alive socket reset). */
    readonly retriable = false,
  ) {
    super(kind);
  }
}

type Executor = (resolve: () => void, reject: (e: AttemptError) => void) => void;

function run(executor: Executor): Promise<void> {
  return new Promise<void>(executor);
}

export interface BreakerEvents {
  stateChanged(from: BreakerState, to: BreakerState, counts: { requests: number; failures: number }): void;
}

/**
 * One circuit breaker per upstream (opossum is imported here only). It judges
 * "did the upstream answer with headers in time": the action resolves when
 * headers arrive, so a long streamed body never holds it. opossum's own
 * timeout is off: the proxy's per-request timer is the one that aborts.
 */
export class UpstreamBreaker {
  private readonly cb: CircuitBreaker<[Executor], void> | undefined;
  private openedAt = 0;
  private current: BreakerState = 'closed';
  /** opossum lets every request through while half-open until one settles; we allow exactly one trial. */
  private trialInFlight = false;
  /** Requests failed fast (the gateway checks before firing, so opossum never sees them). */
  private refused = 0;

  constructor(
    readonly config: BreakerConfig,
    events: BreakerEvents,
  ) {
    if (!config.enabled) return;
    const cb = new CircuitBreaker<[Executor], void>(run, {
      timeout: false,
      // opossum opens when the share is strictly above the threshold; ours is "at least".
      errorThresholdPercentage: Math.max(0, config.errorPercent - 1e-9),
      volumeThreshold: config.minRequests,
      rollingCountTimeout: config.windowMs,
      rollingCountBuckets: 10,
      resetTimeout: config.openMs,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      errorFilter: (err: unknown) => err instanceof AttemptError && !err.counts,
    } as CircuitBreaker.Options);
    const change = (to: BreakerState) => () => {
      const from = this.current;
      this.current = to;
      if (to === 'open') this.openedAt = Date.now();
      if (to !== 'half-open') this.trialInFlight = false;
      const s = cb.stats;
      events.stateChanged(from, to, { requests: s.fires, failures: s.failures });
    };
    cb.on('open', change('open'));
    cb.on('halfOpen', change('half-open'));
    cb.on('close', change('closed'));
    this.cb = cb;
  }

  get state(): BreakerState {
    return this.current;
  }

  /**
   * A half-open trial that proved nothing about the upstream (its client was
   * too slow to send the body): the next request becomes the trial instead,
   * and the circuit neither opens nor closes on it.
   */
  abandonTrial(): void {
    if (this.current !== 'half-open' || this.cb === undefined) return;
    this.trialInFlight = false;
    // opossum lets one call through while half-open and refuses the rest until it settles; this one
    // never will, so its "pending close" flag is set again for the next trial. opossum 9 keeps it
    // under a symbol of its own (checked by the half-open tests).
    const cb = this.cb as unknown as Record<symbol, unknown>;
    const pendingClose = Object.getOwnPropertySymbols(cb).find((s) => s.description === 'pending-close');
    if (pendingClose !== undefined) cb[pendingClose] = true;
  }

  /** Whether a request may be sent now (false: fail fast or fall back). */
  allows(): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'half-open' && !this.trialInFlight) return true;
    this.refused++;
    return false;
  }

  /**
   * Runs one attempt under the breaker. `executor` starts the request and
   * calls resolve when headers arrive or reject with an AttemptError.
   * Rejections are returned, never thrown: the caller reads the AttemptError.
   */
  run(executor: Executor): Promise<AttemptError | undefined> {
    return new Promise((resolve) => this.attempt(executor, resolve));
  }

  /**
   * The same, with a callback: the request path's form. While the circuit is
   * closed an attempt runs outside opossum's promise machinery, and its outcome
   * is recorded through the events opossum's own statistics listen to (`fire`
   * and `success`); a counted failure goes through `fire()` itself, so the
   * threshold check and the opening are opossum's. Half-open trials always use
   * `fire()`.
   */
  attempt(executor: Executor, done: (err: AttemptError | undefined) => void): void {
    const cb = this.cb;
    if (cb === undefined) {
      executor(() => done(undefined), done);
      return;
    }
    if (this.current !== 'closed') {
      if (this.current === 'half-open') this.trialInFlight = true;
      cb.fire(executor).then(ok, asAttemptError).then(done);
      return;
    }
    let settled = false;
    executor(
      () => {
        if (settled) return;
        settled = true;
        cb.emit('fire', []);
        cb.emit('success', undefined, 0);
        done(undefined);
      },
      (err: AttemptError) => {
        if (settled) return;
        settled = true;
        if (!err.counts) {
          // opossum counts a filtered error as a success.
          cb.emit('fire', []);
          cb.emit('success', err, 0);
          done(err);
          return;
        }
        // A counted failure (rare) goes through fire(): opossum counts it and decides whether to open.
        cb.fire((_resolve, reject) => reject(err)).then(
          () => done(err),
          () => done(err),
        );
      },
    );
  }

  /** Seconds until the circuit tries again, for Retry-After. */
  retryAfterSeconds(): number {
    if (this.current !== 'open') return 1;
    return Math.max(1, Math.ceil((this.openedAt + this.config.openMs - Date.now()) / 1000));
  }

  counts(): { requests: number; failures: number; rejected: number } {
    if (!this.cb) return { requests: 0, failures: 0, rejected: 0 };
    const s = this.cb.stats;
    return { requests: s.fires, failures: s.failures, rejected: s.rejects + this.refused };
  }

  shutdown(): void {
    this.cb?.shutdown();
  }
}

function ok(): undefined {
  return undefined;
}

function asAttemptError(err: unknown): AttemptError {
  if (err instanceof AttemptError) return err;
  const code = (err as { code?: string }).code;
  return new AttemptError(code === 'EOPENBREAKER' ? 'CIRCUIT_OPEN' : 'UPSTREAM_ERROR', true);
}

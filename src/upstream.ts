import type { UpstreamConfig } from './config/schema';
import type { Logger } from './observability/logger';
import { UpstreamTransport, type ResponseHandler } from './proxy/upstream';
import { UpstreamBreaker, type BreakerState } from './resilience/breaker';
import { RetryBudget } from './resilience/budget';
import { InstanceSet } from './resilience/instances';
import { readUpstreamTls, type CertificateInfo, type UpstreamTlsMaterial } from './tls/certificates';

export interface UpstreamEvents {
  breakerChanged(upstream: string, from: BreakerState, to: BreakerState): void;
}

/**
 * Everything tied to one upstream, made once when it appears in the table and
 * kept across reloads while its settings are unchanged: connections
 * (transport), circuit breaker, instance health, retry budget, bulkhead count.
 */
export class Upstream {
  readonly transport: UpstreamTransport;
  readonly breaker: UpstreamBreaker;
  readonly instances: InstanceSet;
  readonly budget: RetryBudget;
  /** Requests in flight to this upstream (the bulkhead's count). */
  inFlight = 0;
  /** Its instances' origins (`http://10.0.0.5:8080`), for recognising its own absolute redirects. */
  readonly origins: readonly string[];
  /** A hash of its TLS files' contents when built: a change rebuilds it. */
  readonly tlsFingerprint: string;
  /** Its client certificate (mTLS), for the expiry in the admin API and metrics. */
  readonly clientCertificate: CertificateInfo | undefined;

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    log: Logger,
    events: UpstreamEvents,
    onResponse: ResponseHandler,
  ) {
    // upstreams.<name>.tls: read when the upstream is built (validation checked the files; if one went
    // missing since, the upstream is built without it, and its requests fail visibly).
    let tls: UpstreamTlsMaterial | undefined;
    if (config.tls !== undefined) {
      try {
        tls = readUpstreamTls(config.tls, name);
      } catch (err) {
        log.error({ upstream: name, err: (err as Error).message }, `upstream ${name}: TLS files unreadable`);
      }
    }
    this.tlsFingerprint = config.tls === undefined ? '' : (tls?.fingerprint ?? 'unreadable');
    this.clientCertificate = tls?.certificate;
    this.transport = new UpstreamTransport(name, config, onResponse, tls?.options);
    this.origins = config.urls.map((u) => new URL(u).origin);
    this.instances = new InstanceSet(config.urls, config.balance, config.outlier);
    this.budget = new RetryBudget(config.retryBudget.percent, config.retryBudget.burst);
    this.breaker = new UpstreamBreaker(config.breaker, {
      stateChanged: (from, to, counts) => {
        const level = to === 'open' ? 'warn' : 'info';
        log[level]({ upstream: name, from, to, ...counts }, `circuit ${to} for upstream ${name}`);
        events.breakerChanged(name, from, to);
      },
    });
  }

  /** Live state for the admin API. */
  describe(): Record<string, unknown> {
    const now = Date.now();
    return {
      name: this.name,
      urls: this.config.urls,
      timeoutMs: this.config.timeoutMs,
      inFlight: this.inFlight,
      maxConcurrent: this.config.maxConcurrent ?? null,
      openConnections: this.transport.openConnections(),
      busyConnections: this.transport.busyConnections(),
      breaker: { enabled: this.config.breaker.enabled, state: this.breaker.state, ...this.breaker.counts() },
      ...(this.config.tls === undefined
        ? {}
        : { tls: { insecureSkipVerify: this.config.tls.insecureSkipVerify, clientCertificate: this.clientCertificate === undefined ? null : { subject: this.clientCertificate.subject, notAfter: this.clientCertificate.notAfter.toISOString() } } }),
      instances: this.instances.instances.map((i) => ({
        url: i.url,
        inFlight: i.inFlight,
        ejected: i.ejected(now),
        ejectedForMs: i.ejected(now) ? i.ejectedUntil - now : 0,
        consecutiveFailures: i.consecutiveFailures,
      })),
    };
  }

  retire(): void {
    this.transport.retire();
    this.breaker.shutdown();
  }

  close(): void {
    this.transport.close();
    this.breaker.shutdown();
  }
}

import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { sendError, type ErrorCode } from './core/errors';
import { editResponseHeaders } from './routing/actions';
import { hasRequestBody } from './core/requestShape';
import { deadlines, type Deadline } from './core/deadlines';
import { stateOf, type RequestState } from './core/state';
import type { Logger } from './observability/logger';
import type { TraceSpan } from './observability/tracing';
import { responseHeaders, restorePrefix } from './proxy/headers';
import { relay } from './proxy/relay';
import { bufferedBody, classifyError } from './proxy/upstream';
import { AttemptError } from './resilience/breaker';
import type { Instance } from './resilience/instances';
import type { CompiledRoute } from './routing/compile';
import type { Upstream } from './upstream';

/** What a request's dispatch reports to the rest of the gateway. */
export interface DispatchEvents {
  readonly log: Logger;
  fallback(route: string, from: string, to: string, reason: string): void;
  retry(upstream: string): void;
  ejected(upstream: string): void;
}

/**
 * One request's way to an upstream: the resilience step of the pipeline.
 * Attempts run under the upstream's circuit breaker, on an instance picked by
 * the balancer; a connect failure (or a reset reused keep-alive socket) of an
 * idempotent request is retried once on another instance within the deadline
 * and the retry budget; an open circuit, a full bulkhead or a failed connect
 * falls back to the route's fallback upstream, replaying the original request.
 * Nothing is retried once the response has started.
 */
export class Exchange implements Deadline {
  // Intrusive links of the deadline sweeper (no timer object per request).
  dlPrev: Deadline | null = null;
  dlNext: Deadline | null = null;
  dlAt = 0;
  dlList: Deadline['dlList'] = null;
  private attempt = 0;
  private retries = 0;
  private upstream: Upstream;
  private instance: Instance | undefined = undefined;
  /** The upstream whose counters `instance` holds (may differ from `upstream` after a fallback). */
  private held: Upstream | undefined = undefined;
  private isFallback = false;
  /** The request body kept for replay, when it was small enough. */
  private body: Buffer | undefined = undefined;
  /** A streamed body was handed to an attempt: it cannot be sent again. */
  private bodyStarted = false;
  private readonly hasBody: boolean;
  /** When the current attempt times out; counted from when the client's request has been received. */
  private deadline: number;
  /** A streamed body is still arriving from the client: the upstream's deadline has not started. */
  private awaitingBody = false;
  private resolveAttempt: (() => void) | undefined = undefined;
  private rejectAttempt: ((e: AttemptError) => void) | undefined = undefined;
  private responded = false;
  private finished = false;
  /** A chunked body is counted against the route's maxBodyBytes; it passed it. */
  private countingBody = false;
  private tooLarge = false;
  /** With tracing, a recorded request: the current attempt's span. */
  private span: TraceSpan | undefined = undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly state: RequestState,
    private readonly route: CompiledRoute,
    private readonly upstreamPath: string,
    private readonly fallbackPath: string,
    primary: Upstream,
    private readonly fallback: Upstream | undefined,
    readonly events: DispatchEvents,
    /** The stripped prefix to put back in Location and Set-Cookie paths ('' for none), for the first upstream and the fallback. */
    private readonly restore = '',
    private readonly fallbackRestore = '',
  ) {
    this.upstream = primary;
    this.hasBody = hasRequestBody(req.headers);
    this.deadline = state.startedAt + this.timeoutOf(primary);
  }

  /** The route's own timeoutMs, or the upstream's; a fallback keeps its own. */
  private timeoutOf(up: Upstream): number {
    return this.route.timeoutMs !== null && up !== this.fallback ? this.route.timeoutMs : up.config.timeoutMs;
  }

  start(): void {
    this.upstream.budget.request();
    const mayReplay = this.fallback !== undefined || this.route.retryMethods?.has(this.state.method) === true;
    const length = Number(this.req.headers['content-length']);
    if (this.hasBody && mayReplay && length <= this.route.config.replayBodyBytes) {
      this.bufferBody();
      return;
    }
    this.tryUpstream(this.upstream, undefined);
  }

  /** Keeps a small body in memory so a retry or the fallback can send it again. */
  private bufferBody(): void {
    const chunks: Buffer[] = [];
    this.req.on('data', (c: Buffer) => chunks.push(c));
    this.req.once('end', () => {
      if (this.finished) return;
      this.body = Buffer.concat(chunks);
      // The client's upload time is the client's: the upstream's deadline starts now.
      this.deadline = performanceNow() + this.timeoutOf(this.upstream);
      this.tryUpstream(this.upstream, undefined);
    });
  }

  private replayable(): boolean {
    return !this.hasBody || this.body !== undefined || !this.bodyStarted;
  }

  private tryUpstream(up: Upstream, avoid: Instance | undefined): void {
    this.upstream = up;
    if (!up.breaker.allows()) return this.unavailable('CIRCUIT_OPEN');
    const max = up.config.maxConcurrent;
    if (max !== undefined && up.inFlight >= max) return this.unavailable('UPSTREAM_SATURATED');
    const inst = up.instances.pick(avoid);
    if (inst === undefined) return this.unavailable('NO_HEALTHY_INSTANCE');
    this.launch(up, inst);
  }

  private launch(up: Upstream, inst: Instance): void {
    const n = ++this.attempt;
    this.release();
    this.instance = inst;
    this.held = up;
    up.inFlight++;
    inst.inFlight++;
    const state = this.state;
    state.upstream = up.name;
    state.proxyReq = undefined;
    state.timedOut = false;
    this.req.url = this.isFallback ? this.fallbackPath : this.upstreamPath;
    state.upstreamPath = this.req.url;
    if (state.trace !== undefined) this.traceAttempt(up, inst, n);
    let body: Parameters<Upstream['transport']['send']>[3];
    if (this.body !== undefined) body = bufferedBody(this.body);
    else if (!this.hasBody) body = 'none';
    else {
      body = 'stream';
      this.bodyStarted = true;
      // Streamed while the client still sends: a slow client must not time the upstream out (nor open
      // its circuit). The deadline starts once the body is in; until then the client's own limit
      // (server.requestTimeoutMs) applies.
      if (this.route.maxBodyBytes !== null && !this.countingBody) this.countBody(this.route.maxBodyBytes);
      if (!this.req.complete) {
        this.awaitingBody = true;
        // `on`: the request ends once, and `once` would allocate a wrapper per upload.
        this.req.on('end', onClientBodyEnd);
      }
    }
    const remaining = this.isFallback ? this.timeoutOf(up) : Math.min(this.timeoutOf(up), this.deadline - performanceNow());
    up.breaker.attempt(
      (resolve, reject) => {
        this.resolveAttempt = resolve;
        this.rejectAttempt = reject;
        deadlines.arm(this, Math.max(1, Math.round(remaining)));
        up.transport.send(inst.index, this.req, this.res, body, (err) => this.onError(n, err));
      },
      (err) => this.afterAttempt(n, up, inst, err),
    );
  }

  /**
   * A streamed body of unknown length (chunked) under a route's maxBodyBytes:
   * once it passes the limit the upstream request is cut, the client gets
   * `413` (the connection closed: the rest of its body is not read), and the
   * upstream is not blamed for it.
   */
  private countBody(max: number): void {
    this.countingBody = true;
    let seen = 0;
    this.req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > max && !this.finished) this.bodyTooLarge();
    });
  }

  private bodyTooLarge(): void {
    if (this.tooLarge) return;
    this.tooLarge = true;
    const state = this.state;
    const proxyReq = state.proxyReq;
    if (proxyReq !== undefined && !proxyReq.destroyed) proxyReq.destroy();
    this.settleAttempt(new AttemptError('CLIENT_ABORT', false));
    if (this.responded || state.settled) {
      // The upstream answered already: the rest of the body must not reach it.
      this.res.destroy();
      return;
    }
    state.settled = true;
    deadlines.disarm(this);
    state.errorCode = 'PAYLOAD_TOO_LARGE';
    state.shadow?.failed();
    this.res.shouldKeepAlive = false;
    sendError(this.res, 'PAYLOAD_TOO_LARGE', state.id);
  }

  /** The client's streamed body has been read and passed on: the upstream's deadline starts now. */
  bodyReceived(): void {
    if (!this.awaitingBody) return;
    this.awaitingBody = false;
    if (this.responded || this.finished || this.resolveAttempt === undefined) return;
    // Re-armed: the upstream's time starts now.
    this.deadline = performanceNow() + this.timeoutOf(this.upstream);
    deadlines.arm(this, this.timeoutOf(this.upstream));
  }

  /**
   * The attempt's upstream request closed. Node closes it without an error or
   * a response in a few cases (an upstream answering `101` to a plain
   * request): the attempt must still end, or the client would wait for ever.
   */
  upstreamClosed(proxyReq: ClientRequest): void {
    if (proxyReq !== this.state.proxyReq || this.responded || this.finished || this.resolveAttempt === undefined) return;
    // An error, when there is one, comes with the close: let it be the attempt's outcome.
    const n = this.attempt;
    setImmediate(() => {
      if (n === this.attempt && this.resolveAttempt !== undefined) this.onError(n, Object.assign(new Error('the upstream closed the request without an answer'), { code: 'UPSTREAM_NO_ANSWER' }));
    });
  }

  /** The upstream's response head arrived for the current attempt: stream it to the client. */
  onHeaders(proxyRes: IncomingMessage): void {
    const state = this.state;
    deadlines.disarm(this);
    if (state.settled || this.res.destroyed) {
      proxyRes.destroy();
      this.settleAttempt(new AttemptError('CLIENT_ABORT', false));
      return;
    }
    const status = proxyRes.statusCode ?? 502;
    const headers = responseHeaders(proxyRes.rawHeaders, state.id);
    const prefix = this.isFallback ? this.fallbackRestore : this.restore;
    if (prefix !== '') restorePrefix(headers, prefix, this.route.rewriteLocation, this.route.rewriteCookiePath, this.upstream.origins);
    if (this.isFallback) headers.push('X-Strangler-Fallback', this.upstream.name);
    if (state.extraResponseHeaders !== undefined) headers.push(...state.extraResponseHeaders);
    if (this.route.responseHeaderEdits !== null) editResponseHeaders(headers, this.route.responseHeaderEdits, state);
    try {
      this.res.writeHead(status, proxyRes.statusMessage, headers);
    } catch (err) {
      // A head Node will not write (a control character in the status line or a header): the upstream's fault, answered 502.
      proxyRes.destroy();
      // writeHead keeps the reason phrase it refused: the gateway's own answer must not reuse it.
      this.res.statusMessage = '';
      this.events.log.warn({ reqId: state.id, upstream: this.upstream.name, err: (err as NodeJS.ErrnoException).code }, 'upstream response head refused');
      this.settleAttempt(new AttemptError('UPSTREAM_ERROR', true));
      return;
    }
    state.settled = true;
    this.responded = true;
    state.proxyRes = proxyRes;
    const tap = state.shadow;
    if (tap !== undefined) {
      // Compared only with the primary's own answer, not a fallback's.
      if (this.isFallback) {
        tap.failed();
        state.shadow = undefined;
      } else tap.head(status, proxyRes.headers);
    }
    relay(proxyRes, this.res, state.shadow);
    // The breaker judges the head only: a failure status counts, and the response still reaches the client.
    this.settleAttempt(this.upstream.config.breaker.failureStatuses.includes(status) ? new AttemptError('UPSTREAM_STATUS', true) : undefined);
  }

  private onError(n: number, err: NodeJS.ErrnoException): void {
    if (n !== this.attempt || this.responded) return;
    deadlines.disarm(this);
    if (this.finished || this.res.destroyed) {
      this.settleAttempt(this.abortError());
      return;
    }
    if (this.state.timedOut) {
      this.settleAttempt(new AttemptError('UPSTREAM_TIMEOUT', true));
      return;
    }
    const kind = classifyError(err);
    const reused = this.state.proxyReq?.reusedSocket === true;
    // Headers over the gateway's limit are the gateway's refusal, not the upstream failing.
    const counts = kind !== 'UPSTREAM_HEADERS_TOO_LARGE';
    this.settleAttempt(new AttemptError(kind, counts, kind === 'UPSTREAM_CONNECT_FAILED' || (kind === 'UPSTREAM_RESET' && reused)));
  }

  /** The attempt's deadline passed before the response head arrived. */
  onDeadline(): void {
    if (this.responded) return;
    const state = this.state;
    if (this.awaitingBody) {
      // The body is still arriving. While the upstream takes what the client sends, the client's own
      // limit (requestTimeoutMs) applies: wait another round. An upstream that stopped reading (its
      // socket is full) or never got a socket is the upstream's delay: it times out as usual.
      const pr = state.proxyReq;
      if (pr !== undefined && pr.socket !== null && !pr.writableNeedDrain) {
        deadlines.arm(this, this.timeoutOf(this.upstream));
        return;
      }
    }
    state.timedOut = true;
    // Destroying surfaces as the attempt's error, answered 504 because timedOut is set;
    // with no socket yet (pool saturated), or a request already closed without an error, answer now.
    if (state.proxyReq !== undefined && !state.proxyReq.destroyed) state.proxyReq.destroy();
    else this.settleAttempt(new AttemptError('UPSTREAM_TIMEOUT', true));
  }

  /**
   * A client that leaves says nothing about the upstream, so it normally does
   * not count; but a half-open trial must not close the circuit on it: it
   * counts as a failure then, and the circuit tries again after openMs.
   */
  private abortError(): AttemptError {
    return new AttemptError('CLIENT_ABORT', this.upstream.breaker.state === 'half-open');
  }

  private settleAttempt(err: AttemptError | undefined): void {
    const resolve = this.resolveAttempt;
    const reject = this.rejectAttempt;
    this.resolveAttempt = this.rejectAttempt = undefined;
    if (err === undefined) resolve?.();
    else reject?.(err);
  }

  /** A span for the attempt; the upstream gets its id in `traceparent`. */
  private traceAttempt(up: Upstream, inst: Instance, n: number): void {
    this.span?.end('SUPERSEDED');
    this.span = this.state.trace!.child(`${this.isFallback ? 'fallback' : 'attempt'} ${up.name}`, {
      'http.request.method': this.state.method,
      'strangler.upstream': up.name,
      // (Upstream URLs carry no credentials: validation refuses a user name in them.)
      'strangler.instance': inst.url,
      // Attempts after the first are resends (a retry, or the fallback).
      'http.request.resend_count': n > 1 ? n - 1 : undefined,
      'strangler.fallback': this.isFallback ? true : undefined,
    });
    this.req.headers.traceparent = this.span.traceparent;
  }

  private endSpan(error: string | undefined): void {
    const span = this.span;
    if (span === undefined) return;
    this.span = undefined;
    const res = this.state.proxyRes;
    if (res !== undefined) span.set('http.response.status_code', res.statusCode);
    span.end(error);
  }

  private afterAttempt(n: number, up: Upstream, inst: Instance, err: AttemptError | undefined): void {
    // A failed attempt's span ends here; a successful one when its response has been relayed (closed()).
    if (err !== undefined && n === this.attempt) this.endSpan(err.kind);
    if (err === undefined) {
      up.instances.success(inst);
      return;
    }
    if (err.kind === 'CLIENT_ABORT') return;
    // The breaker refused the call itself (opened between the check and the call): answered like an open circuit.
    if (err.kind === 'CIRCUIT_OPEN') {
      if (!this.responded && !this.finished && n === this.attempt) this.unavailable('CIRCUIT_OPEN');
      return;
    }
    if (err.counts && err.kind !== 'UPSTREAM_ERROR' && up.instances.failure(inst, err.kind === 'UPSTREAM_CONNECT_FAILED') > 0) {
      this.events.ejected(up.name);
      this.events.log.warn({ upstream: up.name, instance: inst.url, reqId: this.state.id }, 'instance ejected');
    }
    if (this.responded || this.finished || n !== this.attempt) return;
    if (err.retriable && this.canRetry(up)) {
      this.retries++;
      this.events.retry(up.name);
      this.events.log.info({ reqId: this.state.id, upstream: up.name, instance: inst.url, cause: err.kind }, up.instances.instances.length > 1 ? 'retrying on another instance' : 'retrying');
      this.tryUpstream(up, inst);
      return;
    }
    if (err.kind === 'UPSTREAM_CONNECT_FAILED' && this.canFallBack()) return this.fallBack(err.kind);
    this.fail(err.kind as ErrorCode);
  }

  private canRetry(up: Upstream): boolean {
    const methods = this.route.retryMethods;
    return (
      methods !== null && methods.has(this.state.method) && this.retries === 0 && !this.isFallback && performanceNow() < this.deadline && this.replayable() && up.budget.tryRetry()
    );
  }

  private canFallBack(): boolean {
    return this.fallback !== undefined && !this.isFallback && this.replayable();
  }

  private fallBack(reason: string): void {
    const from = this.upstream.name;
    this.isFallback = true;
    this.state.fellBack = true;
    this.events.fallback(this.route.name, from, this.fallback!.name, reason);
    this.events.log.info({ reqId: this.state.id, route: this.route.name, from, to: this.fallback!.name, reason }, 'falling back');
    this.tryUpstream(this.fallback!, undefined);
  }

  /** The upstream cannot take the request now (open circuit, full bulkhead, every instance ejected). */
  private unavailable(reason: 'CIRCUIT_OPEN' | 'UPSTREAM_SATURATED' | 'NO_HEALTHY_INSTANCE'): void {
    if (this.canFallBack()) return this.fallBack(reason);
    const up = this.upstream;
    const code: ErrorCode = reason === 'UPSTREAM_SATURATED' ? 'UPSTREAM_SATURATED' : 'CIRCUIT_OPEN';
    const retryAfter = reason === 'NO_HEALTHY_INSTANCE' ? nextInstanceSeconds(up) : up.breaker.retryAfterSeconds();
    this.fail(code, { 'retry-after': String(retryAfter) });
  }

  private fail(code: ErrorCode, headers?: Record<string, string>): void {
    const state = this.state;
    if (state.settled) return;
    state.settled = true;
    deadlines.disarm(this);
    state.errorCode = code;
    state.shadow?.failed();
    this.events.log.warn({ reqId: state.id, route: this.route.name, upstream: this.upstream.name, code }, 'upstream request failed');
    sendError(this.res, code, state.id, undefined, headers);
  }

  private release(): void {
    if (this.instance !== undefined) {
      this.held!.inFlight--;
      this.instance.inFlight--;
      this.instance = undefined;
      this.held = undefined;
    }
  }

  /** The client's response closed (finished or aborted): stop upstream work and release counters. */
  closed(aborted: boolean): void {
    this.finished = true;
    deadlines.disarm(this);
    // Aborted, or answered by the gateway itself while an attempt was still under way (a 408 for a
    // client too slow to send its body): the upstream request must not stay open, nor its attempt pending.
    if (aborted) this.state.shadow?.failed();
    if (this.state.errorCode === 'REQUEST_TIMEOUT' && !this.responded && this.held !== undefined && this.held.breaker.state === 'half-open') {
      // A trial whose client was too slow says nothing about the upstream: give the trial to the next request.
      this.held.breaker.abandonTrial();
      this.resolveAttempt = this.rejectAttempt = undefined;
    }
    if (aborted || !this.responded) {
      const { proxyReq, proxyRes } = this.state;
      // Not ended: still being received, or received but not all relayed (the client stopped reading). Either way the upstream socket must not stay busy.
      if (proxyRes && !proxyRes.readableEnded) proxyRes.destroy();
      if (proxyReq && !proxyReq.destroyed && !(proxyRes && proxyRes.complete)) proxyReq.destroy();
      this.settleAttempt(this.abortError());
    }
    this.state.settled = true;
    this.release();
    if (this.span !== undefined) this.endSpan(aborted ? 'CLIENT_ABORT' : undefined);
  }
}

function nextInstanceSeconds(up: Upstream): number {
  const soonest = Math.min(...up.instances.instances.map((i) => i.ejectedUntil));
  return Math.max(1, Math.ceil((soonest - Date.now()) / 1000));
}

function onClientBodyEnd(this: IncomingMessage): void {
  (stateOf(this)?.exchange as Exchange | undefined)?.bodyReceived();
}

function performanceNow(): number {
  return performance.now();
}


/** The transports' shared response handler: hands the head to the request's exchange. */
export function onUpstreamResponse(proxyRes: IncomingMessage, req: IncomingMessage): void {
  const state = stateOf(req);
  const ex = state?.exchange as Exchange | undefined;
  if (ex === undefined) return void proxyRes.destroy();
  try {
    ex.onHeaders(proxyRes);
  } catch (err) {
    // Never a hang: a 502 while nothing was sent, a closed connection once the response has started.
    proxyRes.destroy();
    if (state!.res !== undefined) sendError(state!.res, 'UPSTREAM_ERROR', state!.id);
    state!.settled = true;
    ex.events.log.error({ reqId: state!.id, err }, 'relaying the upstream response failed');
  }
}

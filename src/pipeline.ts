import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { AuthResult, Identity } from './auth';
import { errorBody, rawErrorResponse, rawResponse, sendError, type ErrorCode } from './core/errors';
import { normalizePath, pathForMatching, splitTarget } from './core/path';
import { hasRequestBody, malformedRequest } from './core/requestShape';
import { attachState, RequestState, stateOf } from './core/state';
import { Exchange, type DispatchEvents } from './dispatch';
import type { AccessLog } from './observability/accessLog';
import type { Logger } from './observability/logger';
import type { GatewayMetrics } from './observability/metrics';
import type { MigrationInsight } from './migration/insight';
import { isValidTraceparent, newSpanId, newTraceparent, requestIdFrom, traceIdFor } from './observability/requestId';
import { authenticating, type Tracer } from './observability/tracing';
import { prepareUpstreamHeaders } from './proxy/headers';
import { classifyError } from './proxy/upstream';
import { canaryPathFor, fallbackPathFor, forwardedPath, hostForMatching, routedTarget, upstreamPathFor, type CompiledRoute } from './routing/compile';
import { answerByRoute, editRequestHeaders } from './routing/actions';
import type { CanaryState } from './canary/state';
import type { ActiveTable } from './table';
import type { RouteLimiter } from './ratelimit/route';
import type { Decision } from './ratelimit/gcra';

/** What the request path needs from the running gateway. */
export interface PipelineHost {
  /** The table serving now; read once per request. */
  readonly table: ActiveTable;
  /** Strict-Transport-Security for answers over TLS (server.hsts); undefined without it. */
  readonly hstsHeader: string | undefined;
  readonly log: Logger;
  readonly accessLog: AccessLog | null;
  readonly draining: boolean;
  readonly metrics: GatewayMetrics | undefined;
  readonly dispatchEvents: DispatchEvents;
  /** The migration's counts (legacy vs new, the legacy inventory); undefined when not counting. */
  readonly migration: MigrationInsight | undefined;
  /** OpenTelemetry tracing (the table's `tracing`); undefined without it. */
  readonly tracer: Tracer | undefined;
  requestStarted(): void;
  requestFinished(): void;
  /** An upgrade request's socket: Node's server no longer tracks it, so the gateway closes it at shutdown. */
  socketUpgraded(socket: Duplex): void;
}

export interface Pipeline {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Node's parser or timers refused what the client sent. */
  onClientError(err: NodeJS.ErrnoException, socket: Duplex): void;
}

const HEALTH_BODY = '{"status":"ok"}';

/** The responses of a connection that have not finished (more than one only when the client pipelines). */
const kOpen = Symbol('strangler.openResponses');
/** A parse error's answer, held until the earlier pipelined responses of the connection are out. */
const kPendingError = Symbol('strangler.pendingError');
type SocketWithRequests = Socket & { [kOpen]?: ServerResponse[]; [kPendingError]?: string };

const OPTIONS_ALLOW = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';

/** A response the gateway gives instead of proxying (auth refusals). */
interface Refusal {
  status: number;
  code: ErrorCode | undefined;
  headers: string[];
  body: Buffer | string;
}

/**
 * The one place that decides the order of steps for a request:
 * request id -> access log and metrics (on close) -> health/keys -> normalise -> route
 * -> auth (verify, then strip and set identity headers) -> forwarding headers
 * -> resilience (dispatch: breaker, instance, retry, fallback) -> proxy.
 * Each step is a prepared function; per request only the state (and, on the
 * proxy path, its Exchange) is allocated.
 */
export function createPipeline(host: PipelineHost): Pipeline {
  function onResponseClose(this: ServerResponse): void {
    finish(this);
  }

  /**
   * Pipelined requests queued behind a response never see their own `close`
   * when the connection dies: the socket's close finishes them, so no
   * in-flight count (gateway, bulkhead, instance) leaks.
   */
  function onSocketClose(this: Socket): void {
    const open = (this as SocketWithRequests)[kOpen];
    if (open === undefined) return;
    for (const res of [...open]) finish(res);
  }

  /** Runs once per request, on the response's close or its socket's, whichever comes first. */
  function finish(res: ServerResponse): void {
    const state = stateOf(res.req);
    if (!state || state.finished) return;
    state.finished = true;
    const socket = res.req.socket as SocketWithRequests;
    const open = socket[kOpen];
    if (open !== undefined) {
      const i = open.indexOf(res);
      if (i !== -1) open.splice(i, 1);
      const pending = socket[kPendingError];
      if (pending !== undefined && open.length === 0) {
        socket[kPendingError] = undefined;
        // A response that closes the connection itself (rejectAndClose) has destroyed it by now.
        if (socket.writable) socket.end(pending);
        else socket.destroy();
      }
    }
    host.requestFinished();
    const aborted = !res.writableFinished;
    state.exchange?.closed(aborted);
    const ms = performance.now() - state.startedAt;
    if (state.canarySide !== undefined) {
      // A canary that failed over to the primary still failed.
      const failed = res.statusCode >= 500 || (state.canarySide === 'canary' && state.fellBack);
      state.canary!.record(state.canarySide, failed, ms);
      host.metrics?.canary(state.route!, state.canarySide, failed, ms / 1000);
    }
    const metrics = host.metrics;
    if (metrics !== undefined) {
      metrics.request(state.route, state.upstream, res.statusCode, ms / 1000);
      if (state.errorCode !== undefined && state.upstream !== undefined) metrics.upstreamError(state.upstream, state.errorCode);
    }
    // Proxied requests only, on the side that answered (a canary, the primary, or a fallback).
    const migration = host.migration;
    if (migration !== undefined && state.exchange !== undefined && state.upstream !== undefined) {
      migration.record(state.route!, state.upstream, state.method, state.matchPath === '' ? state.path : state.matchPath, res.statusCode, ms, state.userId);
    }
    if (state.trace !== undefined) endTrace(state, res, socket, aborted);
    const access = host.accessLog;
    if (access === null) return;
    access.request(state, { status: res.statusCode, durationMs: ms, bytes: socket.bytesWritten - state.socketBytesAtStart, aborted, client: socket.remoteAddress, http2: (socket as { http2?: boolean }).http2 });
  }

  function reject(res: ServerResponse, state: RequestState, code: ErrorCode): void {
    state.errorCode = code;
    state.settled = true;
    sendError(res, code, state.id);
  }

  /** Refuses a request whose framing cannot be trusted: nothing after it on the connection is read. */
  function rejectAndClose(res: ServerResponse, state: RequestState, code: ErrorCode): void {
    res.shouldKeepAlive = false;
    res.once('finish', closeConnection);
    reject(res, state, code);
  }

  /** Normalise and match; an error code when the request cannot be routed. */
  function route(req: IncomingMessage, state: RequestState, table: ActiveTable, query: string): CompiledRoute | ErrorCode {
    const path = normalizePath(state.path, table.decodeSlashes);
    if (path === null) return 'BAD_PATH';
    state.path = path;
    const matchPath = pathForMatching(path);
    state.matchPath = matchPath;
    const matcher = table.matcher;
    const r = matcher.match(state.method, matcher.usesHost ? hostForMatching(req.headers.host) : '', matchPath, req.headers, query, state);
    if (r === undefined) return 'ROUTE_NOT_FOUND';
    state.route = r.name;
    state.routePath = r.config.path;
    if (r.action === 'proxy') state.upstream = r.upstream;
    return r;
  }

  /** Turns an authentication result into an identity (or none), or a refusal, by the route's policy. */
  function decide(req: IncomingMessage, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, result: AuthResult): Identity | undefined | Refusal {
    if (result.ok) {
      const identity = result.identity;
      if (r.roles !== null && !r.roles.some((role) => identity.roles.includes(role))) {
        state.authFailure = 'role';
        return jsonRefusal('FORBIDDEN', state.id);
      }
      return identity;
    }
    state.authFailure = result.reason;
    if (r.authPolicy === 'optional' && r.roles === null) return undefined;
    host.log.info({ reqId: state.id, route: r.name, reason: result.reason, detail: result.detail }, 'authentication refused');
    if (result.reason === 'unavailable') return jsonRefusal('AUTH_UNAVAILABLE', state.id);
    if (result.reason === 'denied' && result.deny) {
      return { status: result.deny.status, code: undefined, headers: [...result.deny.headers, 'X-Request-Id', state.id], body: result.deny.body };
    }
    if ((state.method === 'GET' || state.method === 'HEAD') && prefersHtml(req.headers.accept)) {
      const login = table.auth!.config.loginUrl;
      const next = encodeURIComponent(state.path + query);
      return { status: 302, code: undefined, headers: ['Location', `${login}${login.includes('?') ? '&' : '?'}next=${next}`, 'X-Request-Id', state.id, 'Cache-Control', 'no-store'], body: '' };
    }
    const challenge = result.reason === 'missing' ? 'Bearer realm="strangler"' : 'Bearer realm="strangler", error="invalid_token"';
    const refusal = jsonRefusal('UNAUTHORIZED', state.id);
    refusal.headers.push('WWW-Authenticate', challenge);
    return refusal;
  }

  /** Gateway headers, then the verified identity; the client's identity headers never pass. */
  function prepareHeaders(req: IncomingMessage, state: RequestState, r: CompiledRoute, table: ActiveTable, identity: Identity | undefined, upgrade: boolean): boolean {
    // With tracing, startTrace has set a valid one already.
    const keep = state.traceId !== undefined || isValidTraceparent(req.headers.traceparent);
    if (!prepareUpstreamHeaders(req, table.policy, state.id, keep ? undefined : newTraceparent(state.id), upgrade)) return false;
    if (!r.forwardCredentials) {
      delete req.headers.authorization;
      delete req.headers.cookie;
    }
    if (identity !== undefined) {
      state.userId = identity.userId;
      table.auth!.applyIdentity(req.headers, identity);
    }
    // The route's (and its upstream's) own edits; validation keeps them off the headers set above.
    if (r.requestHeaderEdits !== null) editRequestHeaders(req.headers, r.requestHeaderEdits, state);
    return true;
  }

  function proxy(req: IncomingMessage, res: ServerResponse, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, identity: Identity | undefined): void {
    if (r.action !== 'proxy') return answerByRoute(res, state, r, query);
    // A body larger than the route takes, by its declared length: refused before anything is sent upstream.
    if (r.maxBodyBytes !== null && Number(req.headers['content-length'] ?? 0) > r.maxBodyBytes) return rejectAndClose(res, state, 'PAYLOAD_TOO_LARGE');
    const limiter = table.rateLimits.get(r.name);
    const headerKey = limiter?.headerKeyOf(req);
    if (!prepareHeaders(req, state, r, table, identity, false)) return reject(res, state, 'UNSUPPORTED_TRANSFER_CODING');
    if (limiter !== undefined) {
      const d = limiter.decide(limiter.keyOf(req, state.userId, headerKey));
      if (!(d instanceof Promise)) {
        if (!d.allowed) return rateLimited(res, state, limiter, d);
      } else {
        // A shared decision: the body waits unread meanwhile.
        d.then(
          (x) => {
            if (state.settled || res.destroyed) return;
            if (!x.allowed) return rateLimited(res, state, limiter, x);
            forward(req, res, state, r, table, query, identity);
          },
          () => forward(req, res, state, r, table, query, identity),
        );
        return;
      }
    }
    forward(req, res, state, r, table, query, identity);
  }

  function rateLimited(res: ServerResponse, state: RequestState, limiter: RouteLimiter, d: Decision): void {
    host.metrics?.rateLimited(state.route!);
    state.errorCode = 'RATE_LIMITED';
    state.settled = true;
    sendError(res, 'RATE_LIMITED', state.id, undefined, {
      'retry-after': String(d.resetSeconds),
      'ratelimit-policy': limiter.policyHeader,
      ratelimit: `${limiter.policyHeader.slice(0, limiter.policyHeader.indexOf(';'))};r=0;t=${d.resetSeconds}`,
    });
  }

  /** The proxying itself: the canary's side or the primary (with its shadow copy), through dispatch. */
  function forward(req: IncomingMessage, res: ServerResponse, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, identity: Identity | undefined): void {
    const canary = table.canaries.get(r.name);
    let exchange: Exchange;
    if (canary !== undefined && canaryChosen(req, state, canary, identity)) {
      // The canary side; if it cannot be reached (or its circuit is open) the primary answers instead.
      exchange = new Exchange(
        req,
        res,
        state,
        r,
        canaryPathFor(r, forwardPath(r, state), query, state.params),
        upstreamPathFor(r, forwardPath(r, state), query, state.params),
        table.upstreams.get(canary.config.upstream)!,
        table.upstreams.get(r.upstream)!,
        host.dispatchEvents,
        r.canaryRestorePrefix,
        r.restorePrefix,
      );
    } else {
      // The parallel run's copy leaves at the same moment as the request (routes without a shadow skip this).
      if (r.config.shadow !== undefined) copyToShadow(req, state, r, table, query, upstreamPathFor(r, forwardPath(r, state), query, state.params));
      const fallback = r.fallback === null ? undefined : table.upstreams.get(r.fallback);
      exchange = new Exchange(
        req,
        res,
        state,
        r,
        upstreamPathFor(r, forwardPath(r, state), query, state.params),
        fallback === undefined ? '' : fallbackPathFor(r, forwardPath(r, state), query),
        table.upstreams.get(r.upstream)!,
        fallback,
        host.dispatchEvents,
        r.restorePrefix,
      );
    }
    state.exchange = exchange;
    exchange.start();
  }

  function afterAuth(req: IncomingMessage, res: ServerResponse, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, result: AuthResult): void {
    if (state.settled || res.destroyed) return;
    const decision = decide(req, state, r, table, query, result);
    if (isRefusal(decision)) {
      state.settled = true;
      state.errorCode = decision.code;
      try {
        res.writeHead(decision.status, decision.headers);
      } catch {
        // A head the client's protocol cannot carry (over HTTP/2, a forward-auth refusal repeating Content-Type).
        state.errorCode = 'AUTH_UNAVAILABLE';
        return sendError(res, 'AUTH_UNAVAILABLE', state.id);
      }
      res.end(decision.body);
      return;
    }
    proxy(req, res, state, r, table, query, decision);
  }

  function handle(req: IncomingMessage, res: ServerResponse, state: RequestState, query: string): void {
    const table = host.table;
    if (state.path === '*') {
      // The asterisk form asks the server itself (RFC 9112 §3.2.4): OPTIONS only, answered by the gateway.
      if (state.method !== 'OPTIONS') return reject(res, state, 'BAD_REQUEST');
      state.settled = true;
      res.writeHead(204, { allow: OPTIONS_ALLOW, 'x-request-id': state.id });
      res.end();
      return;
    }
    if (state.path === table.healthPath) {
      state.settled = true;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': HEALTH_BODY.length, 'x-request-id': state.id, 'cache-control': 'no-store' });
      res.end(HEALTH_BODY);
      return;
    }
    const internal = table.auth?.internal;
    if (internal !== undefined && state.path === table.auth!.config.internalToken.jwksPath) {
      state.settled = true;
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': state.id, 'cache-control': 'public, max-age=300' });
      res.end(internal.jwks);
      return;
    }
    const r = route(req, state, table, query);
    if (typeof r === 'string') return reject(res, state, r);
    if (r.authPolicy === 'none' || table.auth === undefined) return proxy(req, res, state, r, table, query, undefined);
    // A JWKS fetch this starts is traced under the request.
    if (state.trace !== undefined) authenticating.trace = state.trace;
    let result: ReturnType<NonNullable<ActiveTable['auth']>['authenticate']>;
    try {
      result = table.auth.authenticate(req, state.id, state.path + query);
    } finally {
      authenticating.trace = undefined;
    }
    if (result instanceof Promise) {
      result.then(
        (v) => afterAuth(req, res, state, r, table, query, v),
        (err: unknown) => {
          host.log.error({ reqId: state.id, err }, 'authentication failed unexpectedly');
          if (!state.settled) reject(res, state, 'INTERNAL');
        },
      );
    } else afterAuth(req, res, state, r, table, query, result);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    host.requestStarted();
    const [rawPath, query] = splitTarget(req.url ?? '/');
    const state = new RequestState(requestIdFrom(req.headers['x-request-id']), performance.now(), req.method ?? 'GET', rawPath, res, host.accessLog === null ? 0 : req.socket.bytesWritten);
    attachState(req, state);
    // Health checks (probes every few seconds) are not traced.
    if (host.tracer !== undefined && rawPath !== host.table.healthPath) startTrace(req, state, host.tracer);
    res.on('close', onResponseClose);
    const socket = req.socket as SocketWithRequests;
    const open = socket[kOpen];
    if (open === undefined) {
      socket[kOpen] = [res];
      socket.once('close', onSocketClose);
    } else open.push(res);
    // A pipelined request parsed after its connection died: nobody can receive the answer, and the
    // socket's close has already run, so finish it here instead of starting upstream work.
    if (socket.destroyed) return finish(res);
    if (host.draining) res.shouldKeepAlive = false;
    try {
      const malformed = malformedRequest(req);
      if (malformed !== undefined) return rejectAndClose(res, state, malformed);
      handle(req, res, state, query);
    } catch (err) {
      host.log.error({ reqId: state.id, err }, 'request handling failed');
      reject(res, state, 'INTERNAL');
    }
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, identity: Identity | undefined): void {
    if (!prepareHeaders(req, state, r, table, identity, true)) return refuseSocket(socket, state, 'UNSUPPORTED_TRANSFER_CODING');
    const upstream = table.upstreams.get(r.upstream)!;
    const instance = upstream.breaker.allows() ? upstream.instances.pick() : undefined;
    if (instance === undefined) return refuseSocket(socket, state, 'CIRCUIT_OPEN');
    req.url = state.upstreamPath = upstreamPathFor(r, forwardPath(r, state), query, state.params);
    host.log.debug({ reqId: state.id, route: r.name, upstream: r.upstream }, 'websocket upgrade');
    upstream.transport.upgrade(instance.index, req, socket, head, (err) => {
      if (state.upgraded || !socket.writable) return void socket.destroy();
      const code = classifyError(err);
      state.errorCode = code;
      host.log.warn({ reqId: state.id, upstream: upstream.name, code }, 'websocket upstream failed');
      socket.end(rawErrorResponse(code, state.id));
    });
  }

  function refuseSocket(socket: Duplex, state: RequestState, code: ErrorCode): void {
    state.errorCode = code;
    host.log.info({ reqId: state.id, path: state.path, code }, 'websocket upgrade refused');
    socket.end(rawErrorResponse(code, state.id));
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // After an upgrade the HTTP server no longer watches the socket: an unhandled error would crash the process.
    socket.on('error', swallow);
    // Tracked from here, not only once proxied: a refused upgrade is half-closed by `end()`, and a client
    // that keeps its half open would otherwise hold shutdown (server.close) forever.
    host.socketUpgraded(socket);
    const [rawPath, query] = splitTarget(req.url ?? '/');
    const state = new RequestState(requestIdFrom(req.headers['x-request-id']), performance.now(), req.method ?? 'GET', rawPath, undefined, 0);
    attachState(req, state);
    // Upgrades are not traced: with tracing on, a new trace's traceparent says so (not sampled).
    if (host.tracer !== undefined && !isValidTraceparent(req.headers.traceparent)) req.headers.traceparent = `00-${traceIdFor(state.id)}-${newSpanId()}-00`;
    try {
      const malformed = malformedRequest(req);
      if (malformed !== undefined) return refuseSocket(socket, state, malformed);
      const table = host.table;
      const r = route(req, state, table, query);
      if (typeof r === 'string') return refuseSocket(socket, state, r);
      // Redirect and fixed-answer routes take no WebSocket.
      if (!r.websocket || r.action !== 'proxy') return refuseSocket(socket, state, 'ROUTE_NOT_FOUND');
      if (r.authPolicy === 'none' || table.auth === undefined) return upgrade(req, socket, head, state, r, table, query, undefined);
      const settle = (result: AuthResult) => {
        if (socket.destroyed) return;
        const decision = decide(req, state, r, table, query, result);
        if (isRefusal(decision)) {
          socket.end(rawResponse(decision.status, decision.headers, typeof decision.body === 'string' ? decision.body : decision.body.toString('utf8')));
          return;
        }
        upgrade(req, socket, head, state, r, table, query, decision);
      };
      const result = table.auth.authenticate(req, state.id, state.path + query);
      if (result instanceof Promise) result.then(settle, () => refuseSocket(socket, state, 'INTERNAL'));
      else settle(result);
    } catch (err) {
      host.log.error({ reqId: state.id, err }, 'websocket upgrade failed');
      refuseSocket(socket, state, 'INTERNAL');
    }
  }

  /**
   * Malformed requests, oversized headers and clients too slow to send their
   * request: answered like Node would, but never crashing or logging the raw
   * bytes. A request that was already being handled (its body arriving too
   * slowly) gets a JSON 408 with its request id on its own response, unless
   * its response has started: then the connection is closed.
   */
  function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // A reset or a broken connection: nothing to answer; closing it ends (and aborts) what is open on it.
    const code = err.code ?? '';
    // So does a client that stopped sending mid-request (its side ended: HPE_INVALID_EOF_STATE).
    if (!socket.writable || socket.readableEnded || (!code.startsWith('HPE_') && code !== 'ERR_HTTP_REQUEST_TIMEOUT')) return void socket.destroy();
    const open = (socket as SocketWithRequests)[kOpen];
    // The request being received is the connection's latest.
    const res = open?.[open.length - 1];
    // A body too slow: that request's own 408. (A headers timeout of a later pipelined request is
    // reported with the same code while the last open request is complete: answered after it, below.)
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && res !== undefined && !res.req.complete) {
      const state = stateOf(res.req);
      if (res.headersSent || state === undefined) return void socket.destroy();
      state.errorCode = 'REQUEST_TIMEOUT';
      state.settled = true;
      res.shouldKeepAlive = false;
      sendError(res, 'REQUEST_TIMEOUT', state.id);
      // The rest of the body will never come: close once the answer is out.
      res.once('finish', () => socket.destroy());
      return;
    }
    if (res !== undefined && !res.req.complete) {
      // The body of the request being handled is malformed (a bad chunk size): that request cannot be
      // completed. A 400 while nothing was sent (its upstream attempt is cancelled), else the connection closes.
      const state = stateOf(res.req);
      if (res.headersSent || state === undefined || state.finished) return void socket.destroy();
      state.settled = false;
      return rejectAndClose(res, state, 'BAD_REQUEST');
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    // Over TLS with server.hsts, even this answer carries it (the server's own answers get it before the pipeline).
    const hsts = host.hstsHeader !== undefined && (socket as Duplex & { encrypted?: boolean }).encrypted === true ? `strict-transport-security: ${host.hstsHeader}\r\n` : '';
    const answer = `HTTP/1.1 ${status}\r\nconnection: close\r\n${hsts}content-length: 0\r\n\r\n`;
    // Earlier pipelined requests are still being answered: their responses go first, then this one.
    if (open !== undefined && open.length > 0) (socket as SocketWithRequests)[kPendingError] = answer;
    else socket.end(answer);
  }

  return { onRequest, onUpgrade, onClientError };
}

function copyToShadow(req: IncomingMessage, state: RequestState, r: CompiledRoute, table: ActiveTable, query: string, primaryPath: string): void {
  const shadow = table.shadows.get(r.name);
  if (shadow === undefined) return;
  // A rewritten route's copy gets the rewritten path and query too (its own stripPrefix is refused with a rewrite).
  const [path, q] = r.rewrite !== null || r.queryEdits !== null ? splitTarget(routedTarget(r, forwardPath(r, state), query, state.params)) : [forwardPath(r, state), query];
  state.shadow = shadow.copy(state.id, state.method, path, q, req.headers, hasRequestBody(req.headers) ? req : undefined, primaryPath, state.trace);
  if (state.shadow === undefined) state.shadowSkipped = true;
}

/**
 * Tracing (when configured): the request's trace id is the incoming
 * traceparent's, else the one derived from its request id; whether it is
 * recorded is decided here, once. A recorded request gets a server span, and
 * each upstream attempt a span whose id the upstream gets in `traceparent`;
 * one not recorded passes the decision on (flag 00) and costs no span.
 */
function startTrace(req: IncomingMessage, state: RequestState, tracer: Tracer): void {
  const tp = req.headers.traceparent;
  const incoming = isValidTraceparent(tp);
  const traceId = incoming ? tp.slice(3, 35) : traceIdFor(state.id);
  state.traceId = traceId;
  if (tracer.sampled(incoming ? tp.slice(53, 55) : undefined, traceId)) {
    state.trace = tracer.start(traceId, incoming ? tp.slice(36, 52) : undefined, state.startedAt);
    if (!incoming) req.headers.traceparent = `00-${traceId}-${newSpanId()}-01`;
  } else if (!incoming) req.headers.traceparent = `00-${traceId}-${newSpanId()}-00`;
}

/** The server span's name and attributes (never the raw path, the query or a credential). */
function endTrace(state: RequestState, res: ServerResponse, socket: { remoteAddress?: string; http2?: boolean }, aborted: boolean): void {
  const status = res.statusCode;
  state.trace!.end(
    state.routePath === undefined ? state.method : `${state.method} ${state.routePath}`,
    {
      'http.request.method': state.method,
      'http.response.status_code': aborted && !res.headersSent ? undefined : status,
      'http.route': state.routePath,
      'network.protocol.version': socket.http2 === true ? '2' : '1.1',
      'client.address': socket.remoteAddress,
      'strangler.request_id': state.id,
      'strangler.route': state.route,
      'strangler.upstream': state.upstream,
      'strangler.canary.side': state.canarySide,
      'strangler.fallback': state.fellBack ? true : undefined,
      'strangler.auth': state.authFailure ?? (state.userId !== undefined ? 'ok' : undefined),
      'strangler.error.code': state.errorCode,
      'strangler.aborted': aborted ? true : undefined,
    },
    aborted || status >= 500,
  );
}

function closeConnection(this: ServerResponse): void {
  this.req.socket.destroy();
}

function forwardPath(r: CompiledRoute, state: RequestState): string {
  return forwardedPath(r, state.path, state.matchPath);
}

/** Picks the canary side for this user; records the choice on the state. */
function canaryChosen(req: IncomingMessage, state: RequestState, canary: CanaryState, identity: Identity | undefined): boolean {
  const d = canary.decide(req.headers, identity?.userId, identity?.roles);
  state.canary = canary;
  state.canarySide = d.side;
  state.canaryReason = d.reason;
  if (d.setCookie !== undefined) state.extraResponseHeaders = ['Set-Cookie', d.setCookie];
  return d.side === 'canary';
}

function jsonRefusal(code: ErrorCode, requestId: string): Refusal {
  const body = errorBody(code, requestId);
  const status = code === 'FORBIDDEN' ? 403 : code === 'UNAUTHORIZED' ? 401 : 503;
  return { status, code, headers: ['Content-Type', 'application/json; charset=utf-8', 'Cache-Control', 'no-store', 'X-Request-Id', requestId], body };
}

function isRefusal(x: Identity | undefined | Refusal): x is Refusal {
  return x !== undefined && (x as Refusal).status !== undefined;
}

/** A browser navigation: Accept lists text/html before any JSON. */
function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const html = accept.indexOf('text/html');
  if (html === -1) return false;
  const json = accept.indexOf('application/json');
  return json === -1 || html < json;
}

function swallow(): void {
  // Socket errors after an upgrade are reported by the proxy's own handlers.
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { rawErrorResponse, sendError, type ErrorCode } from './core/errors';
import { splitTarget, normalizePath } from './core/path';
import { attachState, RequestState, stateOf } from './core/state';
import type { Logger } from './observability/logger';
import type { GatewayMetrics } from './observability/metrics';
import { isValidTraceparent, newTraceparent, requestIdFrom } from './observability/requestId';
import { prepareUpstreamHeaders } from './proxy/headers';
import { classifyError } from './proxy/upstream';
import { Exchange, type DispatchEvents } from './dispatch';
import { fallbackPathFor, hostForMatching, upstreamPathFor } from './routing/compile';
import type { ActiveTable } from './table';

/** What the request path needs from the running gateway. */
export interface PipelineHost {
  /** The table serving now; read once per request. */
  readonly table: ActiveTable;
  readonly log: Logger;
  readonly accessLog: Logger | null;
  readonly draining: boolean;
  readonly metrics: GatewayMetrics | undefined;
  readonly dispatchEvents: DispatchEvents;
  requestStarted(): void;
  requestFinished(): void;
  socketUpgraded(socket: Duplex): void;
}

export interface Pipeline {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

const HEALTH_BODY = '{"status":"ok"}';

/**
 * The one place that decides the order of steps for a request:
 * request id -> access log (on close) -> health -> normalise -> route -> headers -> proxy.
 * Every step is a prepared function; nothing here is allocated per request but the state.
 */
export function createPipeline(host: PipelineHost): Pipeline {
  function onResponseClose(this: ServerResponse): void {
    const state = stateOf(this.req);
    host.requestFinished();
    if (!state) return;
    const aborted = !this.writableFinished;
    state.exchange?.closed(aborted);
    const ms = performance.now() - state.startedAt;
    const metrics = host.metrics;
    if (metrics !== undefined) {
      metrics.request(state.route, state.upstream, this.statusCode, ms / 1000);
      if (state.errorCode !== undefined && state.upstream !== undefined) metrics.upstreamError(state.upstream, state.errorCode);
    }
    const access = host.accessLog;
    if (access === null) return;
    access.info(
      {
        reqId: state.id,
        method: state.method,
        path: state.path,
        route: state.route,
        upstream: state.upstream,
        status: this.statusCode,
        durationMs: Math.round(ms * 100) / 100,
        bytes: this.req.socket.bytesWritten - state.socketBytesAtStart,
        aborted,
        error: state.errorCode,
        client: this.req.socket.remoteAddress,
      },
      'request',
    );
  }

  function reject(res: ServerResponse, state: RequestState, code: ErrorCode): void {
    state.errorCode = code;
    state.settled = true;
    sendError(res, code, state.id);
  }

  function handle(req: IncomingMessage, res: ServerResponse, state: RequestState, query: string): void {
    const table = host.table;
    if (state.path === table.healthPath) {
      state.settled = true;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': HEALTH_BODY.length, 'x-request-id': state.id, 'cache-control': 'no-store' });
      res.end(HEALTH_BODY);
      return;
    }
    const path = normalizePath(state.path, table.decodeSlashes);
    if (path === null) return reject(res, state, 'BAD_PATH');
    state.path = path;
    const matcher = table.matcher;
    const route = matcher.match(state.method, matcher.usesHost ? hostForMatching(req.headers.host) : '', path);
    if (route === undefined) return reject(res, state, 'ROUTE_NOT_FOUND');
    state.route = route.name;
    state.upstream = route.upstream;
    const tp = req.headers.traceparent;
    if (!prepareUpstreamHeaders(req, table.policy, state.id, isValidTraceparent(tp) ? undefined : newTraceparent(state.id), false)) {
      return reject(res, state, 'UNSUPPORTED_TRANSFER_CODING');
    }
    const fallback = route.fallback === null ? undefined : table.upstreams.get(route.fallback);
    const exchange = new Exchange(
      req,
      res,
      state,
      route,
      upstreamPathFor(route, path, query),
      fallback === undefined ? '' : fallbackPathFor(route, path, query),
      table.upstreams.get(route.upstream)!,
      fallback,
      host.dispatchEvents,
    );
    state.exchange = exchange;
    exchange.start();
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    host.requestStarted();
    const [rawPath, query] = splitTarget(req.url ?? '/');
    const state = new RequestState(requestIdFrom(req.headers['x-request-id']), performance.now(), req.method ?? 'GET', rawPath, res, req.socket.bytesWritten);
    attachState(req, state);
    res.once('close', onResponseClose);
    if (host.draining) res.shouldKeepAlive = false;
    try {
      handle(req, res, state, query);
    } catch (err) {
      host.log.error({ reqId: state.id, err }, 'request handling failed');
      reject(res, state, 'INTERNAL');
    }
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // After an upgrade the HTTP server no longer watches the socket: an unhandled error would crash the process.
    socket.on('error', swallow);
    const [rawPath, query] = splitTarget(req.url ?? '/');
    const state = new RequestState(requestIdFrom(req.headers['x-request-id']), performance.now(), req.method ?? 'GET', rawPath, undefined, 0);
    attachState(req, state);
    const refuse = (code: ErrorCode) => {
      state.errorCode = code;
      host.log.info({ reqId: state.id, path: state.path, code }, 'websocket upgrade refused');
      socket.end(rawErrorResponse(code, state.id));
    };
    try {
      const table = host.table;
      const path = normalizePath(rawPath, table.decodeSlashes);
      if (path === null) return refuse('BAD_PATH');
      state.path = path;
      const route = table.matcher.match(state.method, table.matcher.usesHost ? hostForMatching(req.headers.host) : '', path);
      if (route === undefined || !route.websocket) return refuse('ROUTE_NOT_FOUND');
      state.route = route.name;
      state.upstream = route.upstream;
      const tp = req.headers.traceparent;
      if (!prepareUpstreamHeaders(req, table.policy, state.id, isValidTraceparent(tp) ? undefined : newTraceparent(state.id), true)) {
        return refuse('UNSUPPORTED_TRANSFER_CODING');
      }
      const upstream = table.upstreams.get(route.upstream)!;
      const instance = upstream.breaker.allows() ? upstream.instances.pick() : undefined;
      if (instance === undefined) return refuse('CIRCUIT_OPEN');
      req.url = state.upstreamPath = upstreamPathFor(route, path, query);
      host.socketUpgraded(socket);
      host.log.debug({ reqId: state.id, route: route.name, upstream: route.upstream }, 'websocket upgrade');
      upstream.transport.upgrade(instance.index, req, socket, head, (err) => {
        if (state.upgraded || !socket.writable) return void socket.destroy();
        const code = classifyError(err);
        state.errorCode = code;
        host.log.warn({ reqId: state.id, upstream: upstream.name, code }, 'websocket upstream failed');
        socket.end(rawErrorResponse(code, state.id));
      });
    } catch (err) {
      host.log.error({ reqId: state.id, err }, 'websocket upgrade failed');
      refuse('INTERNAL');
    }
  }

  return { onRequest, onUpgrade };
}

function swallow(): void {
  // Socket errors after an upgrade are reported by the proxy's own handlers.
}

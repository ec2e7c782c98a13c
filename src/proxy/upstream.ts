import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { UpstreamConfig } from '../config/schema';
import { rawErrorResponse, sendError, type ErrorCode } from '../core/errors';
import { stateOf, type RequestState } from '../core/state';
import type { Logger } from '../observability/logger';
import { responseHeaders } from './headers';

/**
 * One upstream service: its keep-alive connection pool and its http-proxy
 * instance, made once when the upstream appears in the table. This module is
 * the only one that knows http-proxy; it works around the library's known
 * gaps (see PITFALLS.md): no abort on client disconnect, timeouts reported as
 * resets, hop-by-hop headers relayed, url.parse-based path joining.
 */
export class UpstreamPool {
  readonly agent: Agent;
  private readonly proxy: httpProxy;
  private readonly target: { protocol: string; host: string; hostname: string; port: string; path: string };
  private readonly timeoutMs: number;
  retired = false;

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    private readonly log: Logger,
  ) {
    const url = new URL(config.url);
    const https = url.protocol === 'https:';
    const agentOptions = {
      keepAlive: true,
      maxSockets: config.maxSockets,
      maxFreeSockets: Math.min(config.maxSockets, 256),
      // Idle pooled sockets are closed before the upstream's own keep-alive timeout can race us.
      timeout: config.idleTimeoutMs,
      scheduling: 'lifo' as const,
    };
    this.agent = https ? new HttpsAgent(agentOptions) : new Agent(agentOptions);
    this.timeoutMs = config.timeoutMs;
    // A pre-parsed target: http-proxy would otherwise url.parse() a string per request.
    this.target = {
      protocol: url.protocol,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (https ? '443' : '80'),
      path: '',
    };
    this.proxy = httpProxy.createProxyServer({
      target: this.target as unknown as httpProxy.ServerOptions['target'],
      agent: this.agent,
      // The path is computed by the router and handed over ready (req.url): no url.parse, no re-joining.
      toProxy: true,
      prependPath: false,
      // Forwarding headers are set by the gateway from the socket, never appended to the client's.
      xfwd: false,
      changeOrigin: !config.preserveHost,
      // The response head is written by us, so hop-by-hop headers never reach the client.
      selfHandleResponse: true,
    });
    this.proxy.on('error', onProxyError);
    this.proxy.on('proxyReq', onProxyReq);
    this.proxy.on('proxyReqWs', onProxyReqWs);
    this.proxy.on('proxyRes', onProxyRes);
    this.proxy.on('econnreset', onClientGone);
    (this.proxy as unknown as { pool: UpstreamPool }).pool = this;
  }

  /** Sends the request upstream. `req.url` must already be the path the upstream sees. */
  web(req: IncomingMessage, res: ServerResponse, state: RequestState): void {
    state.timer = setTimeout(onUpstreamTimeout, this.timeoutMs, state, this);
    this.proxy.web(req, res);
  }

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, state: RequestState): void {
    state.timer = setTimeout(onUpstreamTimeout, this.timeoutMs, state, this);
    // Upgraded connections leave the pool for good: give them their own socket.
    this.proxy.ws(req, socket, head, { agent: false });
  }

  /** Open connections to this upstream (in use and idle). */
  openConnections(): number {
    let n = 0;
    for (const list of Object.values(this.agent.sockets)) n += list?.length ?? 0;
    for (const list of Object.values(this.agent.freeSockets)) n += list?.length ?? 0;
    return n;
  }

  /** Connections carrying a request now. */
  busyConnections(): number {
    let n = 0;
    for (const list of Object.values(this.agent.sockets)) n += list?.length ?? 0;
    return n;
  }

  /** Closes every connection now (shutdown, after draining). */
  close(): void {
    this.agent.destroy();
  }

  /**
   * The upstream left the route table (or its settings changed): idle
   * connections close now; busy ones finish their request first, so a reload
   * never cuts a request in flight.
   */
  retire(): void {
    this.retired = true;
    const sweep = () => {
      for (const list of Object.values(this.agent.freeSockets)) for (const s of list ?? []) s.destroy();
      if (this.busyConnections() === 0) {
        this.agent.destroy();
        return;
      }
      setTimeout(sweep, 500).unref();
    };
    sweep();
  }

  fail(state: RequestState, target: ServerResponse | Duplex, code: ErrorCode, err?: NodeJS.ErrnoException): void {
    if (state.settled) return;
    state.settled = true;
    clearTimer(state);
    state.errorCode = code;
    this.log.warn({ reqId: state.id, upstream: this.name, route: state.route, code, cause: err?.code ?? err?.message }, 'upstream request failed');
    if (isServerResponse(target)) {
      sendError(target, code, state.id);
    } else {
      if (!state.upgraded && target.writable) target.end(rawErrorResponse(code, state.id));
      else target.destroy();
    }
  }
}

function isServerResponse(x: ServerResponse | Duplex): x is ServerResponse {
  return typeof (x as ServerResponse).writeHead === 'function';
}

function clearTimer(state: RequestState): void {
  if (state.timer !== undefined) {
    clearTimeout(state.timer);
    state.timer = undefined;
  }
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT', 'EADDRNOTAVAIL']);

function classify(err: NodeJS.ErrnoException): ErrorCode {
  if (err.code && CONNECT_ERRORS.has(err.code)) return 'UPSTREAM_CONNECT_FAILED';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'UPSTREAM_RESET';
  return 'UPSTREAM_ERROR';
}

function poolOf(proxy: unknown): UpstreamPool {
  return (proxy as { pool: UpstreamPool }).pool;
}

// The handlers below are shared by every request (no per-request closures);
// they find the request's state on the request object.

function onUpstreamTimeout(state: RequestState, pool: UpstreamPool): void {
  state.timer = undefined;
  state.timedOut = true;
  if (state.proxyReq) {
    // Destroying surfaces as an error event, answered 504 below because timedOut is set.
    state.proxyReq.destroy();
  } else if (state.res) {
    // Still waiting for a pooled socket: answer now, the request is dropped when it gets one.
    pool.fail(state, state.res, 'UPSTREAM_TIMEOUT');
  }
}

function onProxyError(this: httpProxy, err: NodeJS.ErrnoException, req: IncomingMessage, target: ServerResponse | Duplex): void {
  const state = stateOf(req);
  if (!state) return;
  const pool = poolOf(this);
  if (state.settled) return;
  if (isServerResponse(target) ? target.destroyed : target.destroyed && !state.upgraded) {
    // The client is gone: nobody to answer. The access log records the abort.
    state.settled = true;
    clearTimer(state);
    return;
  }
  pool.fail(state, target, state.timedOut ? 'UPSTREAM_TIMEOUT' : classify(err), err);
}

function onProxyReq(this: httpProxy, proxyReq: ClientRequest, req: IncomingMessage): void {
  const state = stateOf(req);
  if (!state) return;
  state.proxyReq = proxyReq;
  if (state.settled) proxyReq.destroy();
}

function onProxyReqWs(this: httpProxy, proxyReq: ClientRequest, req: IncomingMessage): void {
  const state = stateOf(req);
  if (!state) return;
  state.proxyReq = proxyReq;
  // Registered before http-proxy's own listener, so the flag is set before any data flows.
  proxyReq.once('upgrade', () => {
    state.upgraded = true;
    clearTimer(state);
  });
  proxyReq.once('response', () => clearTimer(state));
}

function onProxyRes(this: httpProxy, proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
  const state = stateOf(req);
  if (!state) return;
  clearTimer(state);
  if (state.settled || res.destroyed) {
    proxyRes.destroy();
    return;
  }
  state.settled = true;
  state.proxyRes = proxyRes;
  res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, responseHeaders(proxyRes.rawHeaders, state.id));
  proxyRes.once('close', onProxyResClose);
  (proxyRes as IncomingMessage & { gatewayRes?: ServerResponse }).gatewayRes = res;
  proxyRes.pipe(res);
}

/** The upstream cut the body short: the client must see a truncated response, not a hang. */
function onProxyResClose(this: IncomingMessage): void {
  if (!this.complete) (this as IncomingMessage & { gatewayRes?: ServerResponse }).gatewayRes?.destroy();
}

function onClientGone(this: httpProxy, _err: Error, req: IncomingMessage): void {
  const state = stateOf(req);
  if (state) {
    state.settled = true;
    clearTimer(state);
  }
}

/** Called when the client's response closes: stop the upstream work if the client left early. */
export function abortUpstream(state: RequestState): void {
  clearTimer(state);
  state.settled = true;
  if (state.proxyRes && !state.proxyRes.complete) state.proxyRes.destroy();
  if (state.proxyReq && !state.proxyReq.destroyed && !(state.proxyRes && state.proxyRes.complete)) state.proxyReq.destroy();
}

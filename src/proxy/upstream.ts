import { Agent, STATUS_CODES, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { UpstreamConfig } from '../config/schema';
import { stateOf } from '../core/state';
import { responseHeaders } from './headers';
import { later } from './writeBatch';

/** Called with the upstream's response head for the request's current attempt. */
export type ResponseHandler = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void;
export type AttemptErrorHandler = (err: NodeJS.ErrnoException) => void;
type WebWithCallback = (req: IncomingMessage, res: ServerResponse, cb: AttemptErrorHandler) => void;

/**
 * What http-proxy sends as the request body: it only ever calls
 * `source.pipe(proxyReq)`, so a body can be any object with that method.
 */
interface BodySource {
  pipe(dest: ClientRequest): unknown;
}

/**
 * The body of a request that has none (no Content-Length, or 0, and no
 * Transfer-Encoding: RFC 9112 §6.3). Ending the upstream request directly skips
 * piping an empty stream through it: about a tenth of the CPU of a proxied GET.
 * The end (which writes the request head) joins the loop iteration's write
 * batch (writeBatch.ts).
 */
const NO_BODY: BodySource = { pipe: (dest) => later(endRequest, dest) };

function endRequest(dest: ClientRequest): void {
  // Aborted while queued (client gone, deadline): nothing to send.
  if (!dest.destroyed) dest.end();
}

/** A body held in memory (a replay for a retry or a fallback). */
export function bufferedBody(body: Buffer): BodySource {
  return { pipe: (dest) => dest.end(body) };
}

/**
 * Node's keep-alive agent with a lean path for the common case of a plain-HTTP
 * request finding an idle pooled connection. The stock `addRequest` first
 * copies the request options and the agent's options into a new
 * null-prototype object (a dictionary: about 3 µs per request, ~5% of a
 * proxied request's CPU) only to compute the pool key and reuse a socket;
 * here the key comes from the request options directly (the agent's own
 * options never change it for plain HTTP) and the socket is handed over as
 * the stock code does (`reuseSocket`, `onSocket`, moved to the busy list).
 * Anything else (no idle socket, a destroyed one, a new connection, a queue)
 * takes the stock path. The async-hooks id of a reused socket is not reset:
 * nothing in the gateway uses async hooks.
 */
class PoolAgent extends Agent {
  /** The upstream's `maxResponseHeaderBytes`. */
  responseHeaderLimit = 0;

  addRequest(req: ClientRequest, options: AgentRequestOptions): void {
    // Read when the request gets its socket (a tick later): Node's own default is 16 KiB.
    (req as ClientRequest & { maxHeaderSize?: number }).maxHeaderSize = this.responseHeaderLimit;
    const name = this.getName(options);
    const free = this.freeSockets[name];
    const busy = this.sockets[name];
    if (free !== undefined && busy !== undefined && free.length > 0) {
      const socket = free[free.length - 1]! as Socket;
      if (!socket.destroyed) {
        free.pop();
        if (free.length === 0) delete (this.freeSockets as Record<string, unknown>)[name];
        (this as unknown as AgentInternals).reuseSocket(socket, req);
        req.onSocket(socket);
        busy.push(socket);
        return;
      }
    }
    (Agent.prototype as unknown as AgentInternals).addRequest.call(this, req, options);
  }
}

/** The HTTPS pool: the stock agent, with the upstream's response head limit. */
class PoolHttpsAgent extends HttpsAgent {
  responseHeaderLimit = 0;

  addRequest(req: ClientRequest, options: AgentRequestOptions): void {
    (req as ClientRequest & { maxHeaderSize?: number }).maxHeaderSize = this.responseHeaderLimit;
    (HttpsAgent.prototype as unknown as AgentInternals).addRequest.call(this, req, options);
  }
}

type AgentRequestOptions = Parameters<Agent['getName']>[0] & object;
interface AgentInternals {
  reuseSocket(socket: Socket, req: ClientRequest): void;
  addRequest(req: ClientRequest, options: AgentRequestOptions): void;
}

/**
 * The connections to one upstream: a keep-alive pool shared by its
 * instances, and one http-proxy instance per instance URL, made once when the
 * upstream appears in the table. This module is the only one that knows
 * http-proxy; it works around the library's known gaps (see PITFALLS.md): no
 * abort on client disconnect, timeouts reported as resets, hop-by-hop headers
 * relayed, url.parse-based path joining.
 */
export class UpstreamTransport {
  readonly agent: Agent;
  /** Per instance: the proxy that streams the client's request body, and the one for requests without a body. */
  private readonly proxies: httpProxy[];
  private readonly bodiless: httpProxy[];
  retired = false;

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    onResponse: ResponseHandler,
    /** https:// upstreams with `tls`: CA, client certificate, SNI name, minimum version, verification. */
    tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string; minVersion: 'TLSv1.2' | 'TLSv1.3'; rejectUnauthorized: boolean },
  ) {
    // Parsed, not compared as text: a scheme may be written in capitals (HTTPS://).
    const https = new URL(config.urls[0]!).protocol === 'https:';
    const agentOptions = {
      keepAlive: true,
      // Small request heads must not wait for delayed ACKs (Nagle).
      noDelay: true,
      maxSockets: config.maxSockets,
      maxFreeSockets: Math.min(config.maxSockets, 256),
      // No agent `timeout`: it would arm a timer on the socket for every request and refresh it on
      // every read and write. Idle sockets are closed by the pool sweeper below instead.
      scheduling: 'lifo' as const,
    };
    // Plain HTTP has no SNI: an empty servername spares the agent working one out from the Host header per request.
    // Agent options win over each request's: every connection of this pool gets the upstream's TLS settings.
    const agent = https ? new PoolHttpsAgent({ ...agentOptions, ...tls }) : new PoolAgent({ ...agentOptions, servername: '' } as typeof agentOptions);
    agent.responseHeaderLimit = config.maxResponseHeaderBytes;
    this.agent = agent;
    registerPool(this);
    const make = (u: string, body: BodySource | undefined): httpProxy => {
      const url = new URL(u);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const options: httpProxy.ServerOptions & ProxyOptions = {
        // Pre-parsed: http-proxy would otherwise url.parse() a string target per request.
        target: { protocol: url.protocol, host, hostname: host, port: url.port || (https ? '443' : '80'), path: '' } as unknown as httpProxy.ServerOptions['target'],
        agent: this.agent,
        // The path is computed by the router and handed over ready (req.url): no url.parse, no re-joining.
        toProxy: true,
        prependPath: false,
        // Forwarding headers are set by the gateway from the socket, never appended to the client's.
        xfwd: false,
        changeOrigin: !config.preserveHost,
        // http-proxy sets rejectUnauthorized per request from this (the agent's setting would win anyway).
        secure: tls?.rejectUnauthorized ?? true,
        // The response head is written by the gateway, so hop-by-hop headers never reach the client.
        selfHandleResponse: true,
        // Read by onProxyReqWs from the options http-proxy hands its events (upgrades do not use the pool).
        maxResponseHeaderBytes: config.maxResponseHeaderBytes,
        // http-proxy's option for a body other than the request stream (typed as a stream, used only through pipe()).
        ...(body === undefined ? {} : { buffer: body as unknown as httpProxy.ServerOptions['buffer'] }),
      };
      const proxy = httpProxy.createProxyServer(options);
      // Errors are delivered to each attempt's callback; this listener only keeps a stray one from crashing the process.
      proxy.on('error', ignore);
      proxy.on('proxyReq', onProxyReq);
      proxy.on('proxyReqWs', onProxyReqWs as (proxyReq: ClientRequest, req: IncomingMessage) => void);
      proxy.on('proxyRes', onResponse);
      return proxy;
    };
    this.proxies = config.urls.map((u) => make(u, undefined));
    this.bodiless = config.urls.map((u) => make(u, NO_BODY));
  }

  /**
   * Sends one attempt to instance `i`. `req.url` must already be the path the
   * upstream sees. `body`: 'stream' pipes the client's request body, 'none' sends
   * no body, a BodySource sends that (a replay).
   */
  send(i: number, req: IncomingMessage, res: ServerResponse, body: 'stream' | 'none' | BodySource, onError: AttemptErrorHandler): void {
    // Without per-call options http-proxy skips copying its options object: the common cases stay cheap.
    if (body === 'none') (this.bodiless[i]!.web as unknown as WebWithCallback)(req, res, onError);
    else if (body === 'stream') (this.proxies[i]!.web as unknown as WebWithCallback)(req, res, onError);
    else this.proxies[i]!.web(req, res, { buffer: body as unknown as httpProxy.ServerOptions['buffer'] }, onError);
  }

  upgrade(i: number, req: IncomingMessage, socket: Duplex, head: Buffer, onError: AttemptErrorHandler): void {
    // Upgraded connections leave the pool for good: give them their own socket.
    this.proxies[i]!.ws(req, socket, head, { agent: false }, onError);
  }

  /** Open connections to this upstream (in use and idle). */
  openConnections(): number {
    return count(this.agent.sockets) + count(this.agent.freeSockets);
  }

  /** Connections carrying a request now. */
  busyConnections(): number {
    return count(this.agent.sockets);
  }

  /** Closes every connection now (shutdown, after draining). */
  close(): void {
    unregisterPool(this);
    this.agent.destroy();
  }

  /**
   * Closes pooled connections that may have been idle for `idleTimeoutMs` by
   * the next sweep, so the upstream's own keep-alive timeout never races a reuse.
   * Nothing is recorded per request: a sweep notes each pooled socket's
   * `bytesRead`, and a socket whose count has not moved since a sweep has been
   * idle at least since the sweep before it.
   */
  closeIdle(now: number, previousSweep: number, every: number): void {
    const free = this.agent.freeSockets;
    const limit = this.config.idleTimeoutMs;
    for (const key in free) {
      for (const s of free[key] ?? []) {
        const socket = s as IdleSocket;
        if (socket[kSeenBytes] !== socket.bytesRead) {
          socket[kSeenBytes] = socket.bytesRead;
          socket[kIdleSince] = previousSweep;
        }
        if (now + every - socket[kIdleSince]! >= limit) socket.destroy();
      }
    }
  }

  /**
   * The upstream left the route table (or its settings changed): idle
   * connections close now; busy ones finish their request first, so a reload
   * never cuts a request in flight.
   */
  retire(): void {
    this.retired = true;
    unregisterPool(this);
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
}

const kIdleSince = Symbol('strangler.idleSince');
const kSeenBytes = Symbol('strangler.seenBytes');
type IdleSocket = Duplex & { bytesRead: number; [kIdleSince]?: number; [kSeenBytes]?: number };

/**
 * One sweeper for every pool: every quarter of the shortest idle timeout (at
 * most 1 s), idle connections past their upstream's `idleTimeoutMs` are closed.
 */
const idlePools = new Set<UpstreamTransport>();
let sweeper: NodeJS.Timeout | undefined;
let sweepEveryMs = 0;
let lastSweep = 0;

function registerPool(p: UpstreamTransport): void {
  idlePools.add(p);
  scheduleSweeper();
}

function unregisterPool(p: UpstreamTransport): void {
  if (idlePools.delete(p)) scheduleSweeper();
}

function scheduleSweeper(): void {
  let shortest = Infinity;
  for (const p of idlePools) shortest = Math.min(shortest, p.config.idleTimeoutMs);
  const every = Number.isFinite(shortest) ? Math.max(25, Math.min(1000, Math.floor(shortest / 4))) : 0;
  if (every === sweepEveryMs) return;
  sweepEveryMs = every;
  if (every === 0) {
    if (sweeper !== undefined) clearInterval(sweeper);
    sweeper = undefined;
    return;
  }
  // A running sweeper keeps its last sweep time: resetting it would make sockets look idle for less than they have been.
  if (sweeper === undefined) lastSweep = performance.now();
  else clearInterval(sweeper);
  sweeper = setInterval(sweepIdle, every);
  sweeper.unref();
}

function sweepIdle(): void {
  // Monotonic: a wall-clock step must not keep idle sockets open.
  const now = performance.now();
  // A connection is closed up to a sweep early rather than late: never after its timeout.
  for (const p of idlePools) p.closeIdle(now, lastSweep, sweepEveryMs);
  lastSweep = now;
}

function count(groups: NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const key in groups) n += groups[key]?.length ?? 0;
  return n;
}

function ignore(): void {
  // see the constructor
}

/** Remembers the attempt's upstream request, so a timeout or a client abort can destroy it. */
function onProxyReq(proxyReq: ClientRequest, req: IncomingMessage): void {
  const state = stateOf(req);
  if (!state) return;
  state.proxyReq = proxyReq;
  (proxyReq as ClientRequest & { [kClientReq]?: IncomingMessage })[kClientReq] = req;
  // `on`, not `once`: the request object is used once, and `once` would allocate a wrapper per request.
  proxyReq.on('close', onProxyReqClose);
  proxyReq.on('information', onInformation);
  // The gateway already answered (timeout while waiting for a pooled socket): drop it.
  if (state.settled) proxyReq.destroy();
}

const kClientReq = Symbol('strangler.clientRequest');

function onProxyReqClose(this: ClientRequest & { [kClientReq]?: IncomingMessage }): void {
  const req = this[kClientReq];
  if (req !== undefined) stateOf(req)?.exchange?.upstreamClosed(this);
}

/**
 * An interim (1xx) answer of the upstream: 103 Early Hints (the browser can
 * start loading what they name) and 102 Processing are passed on, filtered
 * like a final head; 100 Continue is the gateway's own business, 101 the upgrade's.
 */
function onInformation(this: ClientRequest & { [kClientReq]?: IncomingMessage }, info: { statusCode: number; rawHeaders: string[] }): void {
  const req = this[kClientReq];
  const state = req === undefined ? undefined : stateOf(req);
  const res = state?.res;
  // No 1xx to an HTTP/1.0 client (RFC 9110 §15.2).
  if (state === undefined || res === undefined || res.headersSent || res.destroyed || (req!.httpVersionMajor === 1 && req!.httpVersionMinor === 0)) return;
  if (info.statusCode === 102) return void res.writeProcessing();
  if (info.statusCode !== 103) return;
  const hints: Record<string, string | string[]> = {};
  const pairs = responseHeaders(info.rawHeaders, state.id);
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i]!.toLowerCase();
    const prior = hints[name];
    hints[name] = prior === undefined ? pairs[i + 1]! : [...(Array.isArray(prior) ? prior : [prior]), pairs[i + 1]!];
  }
  if (hints.link === undefined) return;
  try {
    res.writeEarlyHints(hints);
  } catch {
    // Node refuses some legal Link values (a list, a quoted space): hints are optional, the answer is not.
  }
}

function onProxyReqWs(proxyReq: ClientRequest, req: IncomingMessage, socket: Duplex, options: ProxyOptions): void {
  // Emitted right after the request is made, before it has a socket: the limit still applies.
  (proxyReq as ClientRequest & { maxHeaderSize?: number }).maxHeaderSize = options.maxResponseHeaderBytes;
  const state = stateOf(req);
  if (!state) return;
  state.proxyReq = proxyReq;
  const requestId = state.id;
  // http-proxy relays a refused upgrade's head unfiltered, with its chunked framing while piping the
  // de-chunked body. Its listener is added after this event, so the `response` event is taken over
  // here (upgrades are rare: a closure per upgrade is fine) and answered like any proxied response.
  const emit = proxyReq.emit;
  proxyReq.emit = function (this: ClientRequest, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'response') {
      refusedUpgrade(args[0] as IncomingMessage, socket, requestId);
      return true;
    }
    return (emit as (event: string | symbol, ...args: unknown[]) => boolean).call(this, event, ...args);
  } as typeof proxyReq.emit;
  // The 101 head is written by http-proxy from these headers: it carries the request id too.
  proxyReq.prependListener('upgrade', (res: IncomingMessage) => (res.headers['x-request-id'] = requestId));
  // Registered before http-proxy's own listener: the flag is set before any frame flows, so a
  // later socket error is never answered with an HTTP status on an upgraded connection.
  proxyReq.once('upgrade', () => (state.upgraded = true));
}

/** An upstream that answered an upgrade with a plain response: filtered head, the body delimited by the close. */
function refusedUpgrade(res: IncomingMessage, socket: Duplex, requestId: string): void {
  if (!socket.writable) {
    res.destroy();
    return;
  }
  const status = res.statusCode ?? 502;
  const headers = responseHeaders(res.rawHeaders, requestId);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  socket.write(`${head}connection: close\r\n\r\n`);
  res.pipe(socket);
  // The body is delimited by the close: one cut short must close the client's connection too.
  res.on('close', () => {
    if (!res.complete) socket.destroy();
  });
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'ECONNABORTED']);

type ProxyOptions = { maxResponseHeaderBytes?: number };

export type FailureKind = 'UPSTREAM_CONNECT_FAILED' | 'UPSTREAM_RESET' | 'UPSTREAM_ERROR' | 'UPSTREAM_HEADERS_TOO_LARGE';

export function classifyError(err: NodeJS.ErrnoException): FailureKind {
  if (err.code && CONNECT_ERRORS.has(err.code)) return 'UPSTREAM_CONNECT_FAILED';
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'UPSTREAM_HEADERS_TOO_LARGE';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'UPSTREAM_RESET';
  return 'UPSTREAM_ERROR';
}

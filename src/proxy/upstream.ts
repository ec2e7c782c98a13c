import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { UpstreamConfig } from '../config/schema';
import { stateOf } from '../core/state';

/** Called with the upstream's response head for the request's current attempt. */
export type ResponseHandler = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void;
export type AttemptErrorHandler = (err: NodeJS.ErrnoException) => void;
type WebWithCallback = (req: IncomingMessage, res: ServerResponse, cb: AttemptErrorHandler) => void;

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
  private readonly proxies: httpProxy[];
  retired = false;

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    onResponse: ResponseHandler,
  ) {
    const https = config.urls[0]!.startsWith('https:');
    const agentOptions = {
      keepAlive: true,
      // Small request heads must not wait for delayed ACKs (Nagle).
      noDelay: true,
      maxSockets: config.maxSockets,
      maxFreeSockets: Math.min(config.maxSockets, 256),
      // Idle pooled sockets are closed before the upstream's own keep-alive timeout can race us.
      timeout: config.idleTimeoutMs,
      scheduling: 'lifo' as const,
    };
    this.agent = https ? new HttpsAgent(agentOptions) : new Agent(agentOptions);
    this.proxies = config.urls.map((u) => {
      const url = new URL(u);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const proxy = httpProxy.createProxyServer({
        // Pre-parsed: http-proxy would otherwise url.parse() a string target per request.
        target: { protocol: url.protocol, host, hostname: host, port: url.port || (https ? '443' : '80'), path: '' } as unknown as httpProxy.ServerOptions['target'],
        agent: this.agent,
        // The path is computed by the router and handed over ready (req.url): no url.parse, no re-joining.
        toProxy: true,
        prependPath: false,
        // Forwarding headers are set by the gateway from the socket, never appended to the client's.
        xfwd: false,
        changeOrigin: !config.preserveHost,
        // The response head is written by the gateway, so hop-by-hop headers never reach the client.
        selfHandleResponse: true,
      });
      // Errors are delivered to each attempt's callback; this listener only keeps a stray one from crashing the process.
      proxy.on('error', ignore);
      proxy.on('proxyReq', onProxyReq);
      proxy.on('proxyReqWs', onProxyReqWs);
      proxy.on('proxyRes', onResponse);
      return proxy;
    });
  }

  /** Sends one attempt to instance `i`. `req.url` must already be the path the upstream sees. */
  send(i: number, req: IncomingMessage, res: ServerResponse, body: Readable | undefined, onError: AttemptErrorHandler): void {
    // Without per-call options http-proxy skips copying its options object: the common case stays cheap.
    if (body === undefined) (this.proxies[i]!.web as unknown as WebWithCallback)(req, res, onError);
    else this.proxies[i]!.web(req, res, { buffer: body }, onError);
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
  // The gateway already answered (timeout while waiting for a pooled socket): drop it.
  if (state.settled) proxyReq.destroy();
}

function onProxyReqWs(proxyReq: ClientRequest, req: IncomingMessage): void {
  const state = stateOf(req);
  if (!state) return;
  state.proxyReq = proxyReq;
  // Registered before http-proxy's own listener: the flag is set before any frame flows, so a
  // later socket error is never answered with an HTTP status on an upgraded connection.
  proxyReq.once('upgrade', () => (state.upgraded = true));
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'ECONNABORTED']);

export type FailureKind = 'UPSTREAM_CONNECT_FAILED' | 'UPSTREAM_RESET' | 'UPSTREAM_ERROR';

export function classifyError(err: NodeJS.ErrnoException): FailureKind {
  if (err.code && CONNECT_ERRORS.has(err.code)) return 'UPSTREAM_CONNECT_FAILED';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'UPSTREAM_RESET';
  return 'UPSTREAM_ERROR';
}

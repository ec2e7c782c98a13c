import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Http2Bridge } from './h2bridge';
import type { ServerConfig, TlsServerConfig } from '../config/schema';
import { FileSetWatcher } from '../config/watch';
import { contextFor, loadContexts, type CertificateInfo, type ServerContexts } from './certificates';

/**
 * The listening port with TLS (server.tls): a TLS listener whose
 * certificates are swapped in place when their files change (renewals by
 * cert-manager or an ACME client), without dropping a connection. Each
 * connection goes, by the protocol it chose (ALPN), to the gateway's
 * HTTP/1.1 server as it is, or to the HTTP/2 bridge. Also: the plain
 * listener that only redirects to https (server.redirectHttp), and the
 * Strict-Transport-Security value (server.hsts).
 */
export class TlsListener {
  private contexts: ServerContexts;
  private files: FileSetWatcher | undefined;

  constructor(private readonly config: TlsServerConfig) {
    // Checked by the table's validation; read again here (a file may have changed since: then start fails, clearly).
    this.contexts = loadContexts(config);
  }

  private bridge: Http2Bridge | undefined;

  /**
   * The TLS front for `core` (the gateway's HTTP/1.1 server, which does not
   * listen itself): HTTP/1.1 connections are handed to it as they are (its
   * timeouts, limits and WebSocket upgrades apply unchanged), h2 ones to the bridge.
   */
  createFront(core: Server, maxHeaderBytes: number, requestTimeoutMs: number): TlsServer {
    // The core never listens: this starts its connection tracking and its header and request timeouts.
    core.emit('listening');
    const http2 = this.config.http2;
    if (http2) this.bridge = new Http2Bridge(core, { maxConcurrentStreams: this.config.maxConcurrentStreams, maxHeaderListSize: maxHeaderBytes, requestTimeoutMs });
    const front = createTlsServer({
      ...this.contexts.defaultOptions,
      ALPNProtocols: http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      // An SNI name with a certificate of its own gets it; any other name, or none, the default one.
      SNICallback: (servername, cb) => cb(null, contextFor(this.contexts, servername)),
    });
    front.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2' && this.bridge !== undefined) this.bridge.accept(socket);
      else core.emit('connection', socket);
    });
    // A failed handshake is the client's problem (a scanner, an old client): nothing to answer.
    front.on('tlsClientError', (_err, socket) => socket.destroy());
    return front;
  }

  /** Draining: HTTP/2 clients are told GOAWAY. */
  drain(): void {
    this.bridge?.close();
  }

  /** After the drain: HTTP/2 sessions still open are closed. */
  closeAll(): void {
    this.bridge?.destroy();
  }

  get certificates(): CertificateInfo[] {
    return this.contexts.certificates;
  }

  /**
   * Re-reads every certificate and key; swaps them in for new connections
   * (connections already open keep theirs). A pair that does not check keeps
   * the old ones: the error is returned.
   */
  reload(server: TlsServer): { ok: true; certificates: CertificateInfo[] } | { ok: false; error: string } {
    let next: ServerContexts;
    try {
      next = loadContexts(this.config);
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
    server.setSecureContext(next.defaultOptions);
    this.contexts = next;
    return { ok: true, certificates: next.certificates };
  }

  /** Calls `changed` (debounced) when any certificate or key file changes: in place, renamed over, or a symlink swapped. */
  watch(changed: () => void, debounceMs: number, pollIntervalMs: number): void {
    this.files = new FileSetWatcher(changed, debounceMs, pollIntervalMs);
    this.files.watch([this.config.certFile, this.config.keyFile, ...this.config.certificates.flatMap((c) => [c.certFile, c.keyFile])]);
  }

  stop(): void {
    this.files?.stop();
  }
}

/** The Strict-Transport-Security value for server.hsts, or undefined. */
export function hstsValue(server: ServerConfig): string | undefined {
  const h = server.hsts;
  if (h === undefined || server.tls === undefined) return undefined;
  return `max-age=${h.maxAgeSec}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * server.redirectHttp: every request gets 308 to the same host, path and
 * query over https (the TLS port named unless it is 443), except the health
 * path, answered here for load balancers that probe over plain HTTP.
 */
export function createRedirectServer(tlsPort: () => number, healthPath: () => string): Server {
  return createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    if (url === healthPath() || url.startsWith(`${healthPath()}?`)) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end('{"status":"ok"}');
      return;
    }
    const host = req.headers.host ?? '';
    if (!HOST.test(host) || !url.startsWith('/') || url.startsWith('//')) {
      res.writeHead(400, { 'content-type': 'application/json', connection: 'close' }).end('{"error":{"code":"BAD_REQUEST","message":"a redirect to https needs a valid Host header and a path"}}');
      return;
    }
    const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
    const port = tlsPort();
    res.writeHead(308, { location: `https://${name}${port === 443 ? '' : `:${port}`}${url}`, 'content-length': 0, 'cache-control': 'no-store' }).end();
  });
}

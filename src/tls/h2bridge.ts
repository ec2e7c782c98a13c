import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type Http2Session, type IncomingHttpHeaders as Http2Headers, type ServerHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

/**
 * HTTP/2 from clients on an HTTP/1.1 core. Each h2 stream becomes one
 * HTTP/1.1 request to the gateway's own server, over an in-memory connection
 * that carries the client's address and `encrypted`, so every step of the
 * pipeline (routing, single login, canary, shadow, fallback with body replay,
 * retries, request ids, logs, metrics, limits, draining) works the same over
 * h2 as over h1, by construction. Upstreams stay HTTP/1.1 with their pools.
 */

/** Response headers HTTP/2 forbids (RFC 9113 §8.2.2): dropped, never an error. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** One end of an in-memory connection: what one end writes, the other reads. */
class End extends Duplex {
  other: End | undefined;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: string | undefined;
  /** Read by the gateway (X-Forwarded-Proto, HSTS): the client's connection is TLS. */
  readonly encrypted = true;
  /** Read by the access log: the request came over HTTP/2. */
  readonly http2 = true;
  /** Bytes of the HTTP/1.1 answer written to this end (the access log's `bytes`). */
  bytesWritten = 0;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    this.other?.push(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.other?.push(null);
    cb();
  }

  override _read(): void {
    // Data arrives when the other end writes.
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const other = this.other;
    this.other = undefined;
    if (other !== undefined && !other.destroyed) other.destroy();
    cb(err);
  }

  // What the HTTP server and client call on a socket: nothing to do in memory.
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

function connectionPair(client: TLSSocket): [End, End] {
  const a = new End();
  const b = new End();
  a.other = b;
  b.other = a;
  b.remoteAddress = client.remoteAddress;
  b.remotePort = client.remotePort;
  b.remoteFamily = client.remoteFamily;
  return [a, b];
}

export interface Http2Limits {
  /** Streams a client may have open at once on one connection. */
  maxConcurrentStreams: number;
  /** Largest request header list (the same limit as HTTP/1.1's maxHeaderBytes). */
  maxHeaderListSize: number;
}

export class Http2Bridge {
  private readonly h2: Http2Server;
  private readonly sessions = new Set<Http2Session>();

  constructor(
    private readonly core: Server,
    limits: Http2Limits,
  ) {
    // Plain h2 on a socket that is already TLS (negotiated by ALPN on the gateway's own TLS listener).
    this.h2 = createHttp2Server({ settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListSize }, maxSessionMemory: 32 });
    this.h2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A misbehaving client's session errors are its own: they must not reach the process.
      session.on('error', () => undefined);
    });
    this.h2.on('stream', (stream, headers) => this.bridge(stream, headers));
  }

  /** A TLS connection that chose h2 by ALPN. */
  accept(socket: TLSSocket): void {
    this.h2.emit('connection', socket);
  }

  /** Draining: every session is told GOAWAY (open streams finish, no new ones). */
  close(): void {
    for (const s of this.sessions) s.close();
  }

  /** Closes what is left after the drain. */
  destroy(): void {
    for (const s of this.sessions) s.destroy();
  }

  private bridge(stream: ServerHttp2Stream, headers: Http2Headers): void {
    stream.on('error', () => undefined);
    const method = headers[':method'] ?? 'GET';
    const path = headers[':path'];
    if (method === 'CONNECT' || typeof path !== 'string' || path === '') {
      stream.respond({ ':status': 405, 'content-type': 'application/json' });
      stream.end('{"error":{"code":"METHOD_NOT_ALLOWED","message":"CONNECT and requests without a path are not served over HTTP/2"}}');
      return;
    }
    const socket = stream.session?.socket as TLSSocket | undefined;
    if (socket === undefined) return void stream.close();
    const [clientEnd, serverEnd] = connectionPair(socket);
    this.core.emit('connection', serverEnd);
    const out: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith(':') || value === undefined) continue;
      out[name] = value as string | string[];
    }
    // :authority is the request's host (RFC 9113 §8.3.1); a Host header, if sent, must agree and is kept.
    if (out.host === undefined && typeof headers[':authority'] === 'string') out.host = headers[':authority'];
    const req = request({ createConnection: () => clientEnd, method, path, headers: out as OutgoingHttpHeaders, setHost: false });
    req.on('response', (res) => {
      const answer: OutgoingHttpHeaders = { ':status': res.statusCode ?? 502 };
      for (const [name, value] of Object.entries(res.headers)) if (!CONNECTION_SPECIFIC.has(name) && value !== undefined) answer[name] = value;
      if (stream.destroyed) return void res.destroy();
      stream.respond(answer, { endStream: method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304 });
      if (method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) return void res.resume();
      res.pipe(stream);
    });
    req.on('error', () => {
      // The core closed the connection without an answer (it refused the request outright): the stream is reset.
      if (!stream.destroyed) stream.close(2 /* INTERNAL_ERROR */);
    });
    // The client reset the stream or left: the core sees its connection close, as with an HTTP/1.1 client that left.
    stream.once('close', () => {
      if (!req.destroyed && !(req as unknown as { res?: { complete: boolean } }).res?.complete) req.destroy();
      clientEnd.destroy();
    });
    stream.pipe(req);
  }
}

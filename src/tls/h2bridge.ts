import type { Server } from 'node:http';
import { constants, createServer as createHttp2Server, type Http2Server, type Http2Session, type IncomingHttpHeaders as Http2Headers, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { StreamConnection, StreamRequest, StreamResponse } from './h2messages';

/**
 * HTTP/2 from clients into the gateway's one pipeline. Each h2 stream is
 * handed to the HTTP/1.1 server's `request` listeners as a request and a
 * response object (`h2messages.ts`) carrying the client's address and
 * `encrypted`, so every step of the pipeline (routing, single login, canary,
 * shadow, fallback with body replay, retries, request ids, logs, metrics,
 * limits, draining) is the same code over h2 as over h1. Upstreams stay
 * HTTP/1.1 with their pools.
 */

const { NGHTTP2_FLAG_END_STREAM } = constants;
const kRequest = Symbol('strangler.h2request');
const kResponse = Symbol('strangler.h2response');
type BridgedStream = ServerHttp2Stream & { [kRequest]?: StreamRequest; [kResponse]?: StreamResponse };

export interface Http2Limits {
  /** Streams a client may have open at once on one connection. */
  maxConcurrentStreams: number;
  /** Largest request header list (the same limit as HTTP/1.1's maxHeaderBytes). */
  maxHeaderListSize: number;
  /** server.requestTimeoutMs: a request body not received by then is answered 408 (0: no limit). */
  requestTimeoutMs: number;
}

export class Http2Bridge {
  private readonly h2: Http2Server;
  private readonly sessions = new Set<Http2Session>();

  constructor(
    private readonly core: Server,
    private readonly limits: Http2Limits,
  ) {
    // Plain h2 on a socket that is already TLS (negotiated by ALPN on the gateway's own TLS listener).
    this.h2 = createHttp2Server({ settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListSize }, maxSessionMemory: 32 });
    this.h2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A misbehaving client's session errors are its own: they must not reach the process.
      session.on('error', () => undefined);
    });
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: Http2Headers, flags: number, rawHeaders: string[]) => this.bridge(stream, headers, flags, rawHeaders));
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

  private bridge(stream: BridgedStream, headers: Http2Headers, flags: number, raw: string[]): void {
    stream.on('error', ignore);
    const method = headers[':method'] ?? 'GET';
    const path = headers[':path'];
    if (method === 'CONNECT' || typeof path !== 'string' || path === '') {
      stream.respond({ ':status': 405, 'content-type': 'application/json' });
      stream.end('{"error":{"code":"METHOD_NOT_ALLOWED","message":"CONNECT and requests without a path are not served over HTTP/2"}}');
      return;
    }
    const socket = stream.session?.socket as TLSSocket | undefined;
    if (socket === undefined) return void stream.close();
    const conn = new StreamConnection(stream, socket);
    const req = new StreamRequest(stream, conn);
    req.method = method;
    req.url = path;
    // The header list as HTTP/1.1 would have it: pseudo-headers out, :authority as Host (RFC 9113 §8.3.1;
    // a Host header, if sent, must agree and is kept); Node derives req.headers from it by HTTP/1.1's rules.
    const rawHeaders: string[] = [];
    let host = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.charCodeAt(0) === 58 /* : */) continue;
      if (name === 'host') host = true;
      rawHeaders.push(name, raw[i + 1]!);
    }
    const authority = headers[':authority'];
    if (!host && typeof authority === 'string') rawHeaders.push('host', authority);
    const res = new StreamResponse(req, stream, conn);
    stream[kRequest] = req;
    stream[kResponse] = res;
    stream.once('close', onStreamClose);
    stream.on('drain', onStreamDrain);
    stream.once('finish', onStreamFinish);
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      req.setRawHeaders(rawHeaders);
      req.complete = true;
      req.push(null);
    } else {
      // A body of no stated length is framed by the stream: to the pipeline and the upstream it is chunked.
      if (headers['content-length'] === undefined) rawHeaders.push('transfer-encoding', 'chunked');
      req.setRawHeaders(rawHeaders);
      stream.on('data', onStreamData);
      stream.once('end', onStreamEnd);
      if (this.limits.requestTimeoutMs > 0) {
        const timer = setTimeout(() => {
          if (!req.complete && !conn.destroyed) this.core.emit('clientError', Object.assign(new Error('request body timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), conn);
        }, this.limits.requestTimeoutMs);
        stream.once('close', () => clearTimeout(timer));
        stream.once('end', () => clearTimeout(timer));
      }
    }
    if (headers.expect === '100-continue') res.writeContinue();
    this.core.emit('request', req, res);
  }
}

function onStreamData(this: BridgedStream, chunk: Buffer): void {
  if (!this[kRequest]!.push(chunk)) this.pause();
}

function onStreamEnd(this: BridgedStream): void {
  const req = this[kRequest]!;
  req.complete = true;
  req.push(null);
}

function onStreamDrain(this: BridgedStream): void {
  this[kResponse]!.emit('drain');
}

function onStreamFinish(this: BridgedStream): void {
  const res = this[kResponse]!;
  res.writableFinished = true;
  res.emit('finish');
  // Answered before the client finished its upload (a refusal, a 413): the rest is not wanted. The
  // stream is closed with NO_ERROR (RFC 9113 §8.1), as HTTP/1.1 would close the connection.
  if (!this[kRequest]!.complete) res.socket.destroy();
}

/** The stream closed (answered, reset by the client, or its connection gone): what HTTP/1.1 does on a socket's close. */
function onStreamClose(this: BridgedStream): void {
  const req = this[kRequest]!;
  const res = this[kResponse]!;
  if (!req.complete && !req.destroyed) req.destroy();
  res.destroyed = true;
  res.emit('close');
  const conn = res.socket;
  conn.destroyed = true;
  conn.emit('close');
}

function ignore(): void {
  // A client's stream errors (a reset) are seen as the stream's close.
}

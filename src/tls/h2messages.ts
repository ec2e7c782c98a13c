import { EventEmitter } from 'node:events';
import { IncomingMessage, validateHeaderName, validateHeaderValue, type OutgoingHttpHeaders } from 'node:http';
import { constants, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';

/**
 * One HTTP/2 stream as the request, response and connection objects the
 * gateway's pipeline works with: an `IncomingMessage` (Node's own class, so
 * headers are derived from the raw list by Node's HTTP/1.1 rules), a
 * response with the `ServerResponse` methods the pipeline, the relay and
 * http-proxy call, and a per-stream "connection" carrying the client's
 * address. The pipeline is the same code for both protocols; only these
 * objects differ (docs/design.md).
 */

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = constants;

/** Response headers HTTP/2 forbids (RFC 9113 §8.2.2): dropped, never an error. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'host']);

/**
 * Headers HTTP/2 (Node) accepts once only: an upstream head repeating one is
 * refused at writeHead, like a head HTTP/1.1 cannot write (the gateway answers 502).
 */
const SINGLE_VALUE = new Set(['access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range', 'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options']);

/**
 * What the pipeline calls a request's socket: one per stream (an HTTP/2
 * connection is shared by many requests, and the pipeline's per-connection
 * bookkeeping must see one request's life). Closing it resets the stream.
 */
export class StreamConnection extends EventEmitter {
  /** Bytes of the answer written (the access log's `bytes`: the body, over HTTP/2). */
  bytesWritten = 0;
  destroyed = false;
  /** The response finished: a close after it is not an error (RST_STREAM NO_ERROR stops an unread upload). */
  answered = false;

  constructor(
    readonly stream: ServerHttp2Stream,
    /** The client's connection, which all its streams share: what per-connection memos (the last verified token) hang on. */
    readonly tls: TLSSocket,
  ) {
    super();
  }

  get remoteAddress(): string | undefined {
    return this.tls.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.tls.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.tls.remoteFamily;
  }
  get writable(): boolean {
    return !this.destroyed && !this.stream.destroyed;
  }
  get readableEnded(): boolean {
    return false;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (!this.stream.destroyed) this.stream.close(this.answered ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    return this;
  }

  /** HTTP/1.1 code ends a connection with raw bytes; a stream has no such thing: it is closed. */
  end(): this {
    return this.destroy();
  }

  // What HTTP code calls on a socket: nothing to do for a stream.
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
StreamConnection.prototype.setMaxListeners(0);
Object.defineProperties(StreamConnection.prototype, {
  /** Read by the gateway (X-Forwarded-Proto, HSTS): the client's connection is TLS. */
  encrypted: { value: true },
  /** Read by the access log: the request came over HTTP/2. */
  http2: { value: true },
});

/** The request: Node's IncomingMessage, its body fed from the stream with backpressure. */
export class StreamRequest extends IncomingMessage {
  constructor(
    readonly stream: ServerHttp2Stream,
    conn: StreamConnection,
  ) {
    super(conn as never);
    this.httpVersionMajor = 2;
    this.httpVersionMinor = 0;
    this.httpVersion = '2.0';
  }

  /** The header list; `headers` is derived from it on first use, by the same code as for HTTP/1.1 (Node's). */
  setRawHeaders(raw: string[]): void {
    (this as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(raw, raw.length);
  }

  override _read(): void {
    if (this.stream.isPaused()) this.stream.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.readableEnded || !this.complete) {
      this.aborted = true;
      this.emit('aborted');
      (this.socket as unknown as StreamConnection).destroy();
    }
    cb(err);
  }
}

type Headers = OutgoingHttpHeaders;

/**
 * The response: `ServerResponse`'s methods as the gateway uses them, over a
 * stream. The head is kept at writeHead (and checked then, as HTTP/1.1 would)
 * and sent with the first body bytes or the end, so a small answer leaves as
 * HEADERS and one DATA frame; trailers are sent when the client asked for them.
 */
export class StreamResponse extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  sendDate = true;
  /** HTTP/1.1 keep-alive; a stream has none (draining sends GOAWAY instead). */
  shouldKeepAlive = true;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private headers: Headers | undefined = undefined;
  private head: Headers | undefined = undefined;
  private responded = false;
  private trailers: Headers | undefined = undefined;
  /** HEAD, 204 and 304 answers carry no body. */
  private bodiless: boolean;

  constructor(
    readonly req: StreamRequest,
    private readonly stream: ServerHttp2Stream,
    readonly socket: StreamConnection,
  ) {
    super();
    this.bodiless = req.method === 'HEAD';
  }

  get connection(): StreamConnection {
    return this.socket;
  }
  get finished(): boolean {
    return this.writableEnded;
  }

  setHeader(name: string, value: number | string | readonly string[]): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    (this.headers ??= {})[name.toLowerCase()] = value as string | string[];
    return this;
  }
  getHeader(name: string): number | string | string[] | undefined {
    return this.headers?.[name.toLowerCase()];
  }
  hasHeader(name: string): boolean {
    const key = name.toLowerCase();
    return this.head !== undefined ? this.head[key] !== undefined : this.headers?.[key] !== undefined;
  }
  removeHeader(name: string): void {
    if (this.headers !== undefined) delete this.headers[name.toLowerCase()];
  }
  getHeaders(): Headers {
    return { ...this.headers };
  }

  /** `writeHead(status, [reason], headers)`: headers as an object or a flat [name, value, …] list. */
  writeHead(status: number, reason?: string | Headers | readonly string[], headers?: Headers | readonly string[]): this {
    if (typeof reason !== 'string') headers = reason;
    else this.statusMessage = reason;
    if (!Number.isInteger(status) || status < 100 || status > 999) throw Object.assign(new RangeError(`Invalid status code: ${status}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    const head: Headers = { ':status': status };
    if (this.headers !== undefined) for (const name in this.headers) head[name] = this.headers[name];
    if (Array.isArray(headers)) {
      // Set by writeHead: an earlier setHeader of the same name is replaced, repeats in the list are kept.
      const fromList = new Set<string>();
      for (let i = 0; i < headers.length; i += 2) addHeader(head, headers[i] as string, headers[i + 1] as string, fromList);
    } else if (headers !== undefined) {
      for (const name in headers as Headers) {
        const value = (headers as Headers)[name];
        if (value !== undefined) addHeader(head, name, value as string | string[] | number, undefined);
      }
    }
    this.statusCode = status;
    this.head = head;
    this.headersSent = true;
    if (status === 204 || status === 304) this.bodiless = true;
    return this;
  }

  flushHeaders(): void {
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.respond(false);
  }

  write(chunk: Buffer | string, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (!this.respond(false) || this.bodiless) return true;
    this.socket.bytesWritten += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return this.stream.write(chunk, encoding as BufferEncoding, cb);
  }

  end(chunk?: Buffer | string | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (this.writableEnded) return this;
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') cb = encoding;
    if (cb !== undefined) this.once('finish', cb);
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.writableEnded = true;
    const body = this.bodiless ? undefined : chunk;
    if (!this.respond(body === undefined || body.length === 0)) return this;
    this.socket.answered = true;
    if (body !== undefined) this.socket.bytesWritten += typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    if (this.stream.writableEnded) return this;
    if (body === undefined) this.stream.end();
    else this.stream.end(body, encoding as BufferEncoding);
    return this;
  }

  /** Trailer fields, sent after the body (only to a client that sent `TE: trailers`). */
  addTrailers(pairs: Headers | readonly (readonly [string, string])[]): void {
    const t: Headers = (this.trailers ??= {});
    if (Array.isArray(pairs)) for (const [name, value] of pairs as [string, string][]) addHeader(t, name, value, undefined);
    else for (const name in pairs as Headers) addHeader(t, name, (pairs as Headers)[name] as string, undefined);
  }

  /** 103 Early Hints, as an interim HEADERS frame. */
  writeEarlyHints(hints: Record<string, string | string[]>): void {
    const h: Headers = { ':status': 103 };
    for (const name in hints) h[name.toLowerCase()] = hints[name];
    if (!this.stream.destroyed && !this.stream.headersSent) this.stream.additionalHeaders(h);
  }
  writeProcessing(): void {
    if (!this.stream.destroyed && !this.stream.headersSent) this.stream.additionalHeaders({ ':status': 102 });
  }
  writeContinue(): void {
    if (!this.stream.destroyed && !this.stream.headersSent) this.stream.additionalHeaders({ ':status': 100 });
  }

  /** Ends the exchange now: the stream is reset, the client sees it cut. */
  destroy(): this {
    this.destroyed = true;
    this.socket.destroy();
    return this;
  }

  private sendTrailers(): void {
    try {
      this.stream.sendTrailers(this.trailers ?? {});
    } catch {
      // Checked as they were added; a list the stream still refuses must not leave it waiting.
      if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  /** Sends the head once; false when the stream can no longer take it (the client reset it). */
  private respond(endStream: boolean): boolean {
    if (this.responded) return !this.stream.destroyed;
    if (this.stream.destroyed || this.stream.headersSent) return false;
    this.responded = true;
    const wantTrailers = !endStream && !this.bodiless && this.req.headers.te === 'trailers';
    try {
      this.stream.respond(this.head, { endStream: endStream || this.bodiless, waitForTrailers: wantTrailers });
    } catch {
      // Checked at writeHead: only a head the stream refuses for its own reasons gets here.
      this.stream.close(NGHTTP2_INTERNAL_ERROR);
      return false;
    }
    if (wantTrailers) this.stream.once('wantTrailers', () => this.sendTrailers());
    return true;
  }
}

/** Adds one header to an HTTP/2 head: lower-case, checked like HTTP/1.1 does, connection-specific ones dropped. */
function addHeader(head: Headers, rawName: string, value: string | string[] | number, fromList: Set<string> | undefined): void {
  const name = rawName.toLowerCase();
  if (CONNECTION_SPECIFIC.has(name)) return;
  validateHeaderName(name);
  validateHeaderValue(name, value as string);
  if (fromList === undefined) {
    head[name] = value;
    return;
  }
  if (!fromList.has(name)) {
    fromList.add(name);
    head[name] = value;
    return;
  }
  if (SINGLE_VALUE.has(name)) throw Object.assign(new TypeError(`"${name}" appears more than once`), { code: 'ERR_HTTP2_HEADER_SINGLE_VALUE' });
  const prior = head[name]!;
  head[name] = Array.isArray(prior) ? [...prior, String(value)] : [String(prior), String(value)];
}

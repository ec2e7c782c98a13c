/**
 * HTTP/2 from clients on the TLS port (server.tls.http2): ALPN chooses h2 or
 * HTTP/1.1; an h2 request goes through the same pipeline as an h1 one
 * (routing, single login, fallback with body replay, request ids, HSTS,
 * forwarding headers) and upstreams stay HTTP/1.1; connection-specific
 * headers never reach an h2 answer; many streams on one connection; a reset
 * stream cancels its upstream request; a rapid-reset flood does not harm
 * other clients; draining sends GOAWAY and lets open streams finish.
 */
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { SignJWT } from 'jose';
import { closedPort, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';
import { makeCert, type TestCert } from './helpers/tls';

jest.setTimeout(30_000);

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!';

interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function h2(session: ClientHttp2Session, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path, ':method': opts.method ?? 'GET', ...opts.headers });
    let headers: IncomingHttpHeaders = {};
    let body = '';
    s.on('response', (h) => (headers = h));
    s.on('data', (c: Buffer) => (body += c.toString()));
    s.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    s.on('error', reject);
    s.end(opts.body);
  });
}

describe('HTTP/2 from clients', () => {
  let cert: TestCert;
  let up: Upstream;
  let slow: Upstream;
  let gw: TestGateway;
  let session: ClientHttp2Session;
  let slowClosedEarly = 0;
  const open = () => h2connect(`https://127.0.0.1:${gw.port}`, { ca: cert.cert, servername: 'portal.test' });

  beforeAll(async () => {
    cert = makeCert(['portal.test']);
    up = await startUpstream((req, res, body) => {
      // An upstream that sends HTTP/1.1 connection headers: they must not reach an h2 answer.
      res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
      res.end(JSON.stringify({ url: req.url, method: req.method, body, xfp: req.headers['x-forwarded-proto'], xff: req.headers['x-forwarded-for'], host: req.headers.host, user: req.headers['x-user-id'] ?? null }));
    });
    slow = await startUpstream((req, res) => {
      req.socket.once('close', () => {
        if (!res.writableEnded) slowClosedEarly++;
      });
      setTimeout(() => res.writableEnded || res.destroyed || res.writeHead(200).end('slow'), 600);
    });
    const dead = await closedPort();
    gw = await startGateway(`
server: { tls: { certFile: ${cert.certFile}, keyFile: ${cert.keyFile} }, hsts: { maxAgeSec: 600 }, drainTimeoutMs: 5000 }
auth: { jwt: { secret: "${SECRET}", issuer: portal } }
upstreams:
  app: { url: ${up.url} }
  slow: { url: ${slow.url} }
  dead: { url: "http://127.0.0.1:${dead}", breaker: { minRequests: 100 } }
routes:
  - { name: app, path: /, upstream: app }
  - { name: slow, path: /slow, upstream: slow }
  - { name: private, path: /private, upstream: app, auth: required }
  - { name: users, path: /users, upstream: dead, fallback: app, replayBodyBytes: 1024 }
`);
    session = open();
  });
  afterAll(async () => {
    session?.close();
    await gw?.stop();
    await Promise.all([up?.close(), slow?.close()]);
  });

  test('ALPN chooses h2 for an h2 client and HTTP/1.1 for the others, on the same port', async () => {
    const r = await h2(session, '/hello?x=1');
    expect(r.status).toBe(200);
    expect(session.alpnProtocol).toBe('h2');
    const h1 = await new Promise<string | false | null>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: gw.port, path: '/', ca: cert.cert, servername: 'portal.test', ALPNProtocols: ['http/1.1'], agent: false } as import('node:https').RequestOptions, (res) => {
        res.resume();
        res.on('end', () => resolve((res.socket as TLSSocket).alpnProtocol));
      });
      req.on('error', reject);
      req.end();
    });
    expect(h1).toBe('http/1.1');
  });

  test('an h2 request goes through the same pipeline: forwarding headers, request id, HSTS; no connection-specific header in the answer', async () => {
    const r = await h2(session, '/orders/7?x=1', { headers: { 'x-request-id': 'h2-1', 'x-forwarded-for': '6.6.6.6' } });
    expect(JSON.parse(r.body)).toMatchObject({ url: '/orders/7?x=1', method: 'GET', xfp: 'https', xff: '127.0.0.1', host: `portal.test:${gw.port}` });
    expect(r.headers['x-request-id']).toBe('h2-1');
    expect(r.headers['strict-transport-security']).toBe('max-age=600');
    expect(r.headers.connection).toBeUndefined();
    expect(r.headers['keep-alive']).toBeUndefined();
    // The access line says it came over h2.
    await until(() => gw.logs.lines.some((l) => l.kind === 'access' && l.reqId === 'h2-1'), 2000);
    expect(gw.logs.lines.find((l) => l.reqId === 'h2-1' && l.kind === 'access')).toMatchObject({ protocol: 'h2', status: 200, client: '127.0.0.1' });
    // :authority is the Host the route and the upstream see.
    const named = await h2(session, '/', { headers: { ':authority': 'portal.test' } });
    expect(JSON.parse(named.body).host).toBe('portal.test');
    // The gateway's own answers too.
    const refused = await h2(session, '/a/../../etc');
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).error.code).toBe('BAD_PATH');
  });

  test('single login and a fallback with the POST body replayed work over h2', async () => {
    expect((await h2(session, '/private')).status).toBe(401);
    const token = await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('portal').setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
    const ok = await h2(session, '/private', { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).user).toBe('ada');
    const body = JSON.stringify({ name: 'Ada' });
    // (With its length, as browsers send it: a body of unknown length is not kept for a replay, over h1 or h2.)
    const r = await h2(session, '/users/7', { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
    expect(r.status).toBe(200);
    expect(r.headers['x-strangler-fallback']).toBe('app');
    expect(JSON.parse(r.body)).toMatchObject({ method: 'POST', body });
  });

  test('200 concurrent streams on one connection are all answered', async () => {
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => h2(session, `/many/${i}`)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => JSON.parse(r.body).url)).size).toBe(200);
  });

  test('a stream the client resets cancels its upstream request', async () => {
    const before = slowClosedEarly;
    const s = session.request({ ':path': '/slow' });
    s.on('error', () => undefined);
    await until(() => slow.received.length > 0, 2000);
    s.close(constants.NGHTTP2_CANCEL);
    await until(() => slowClosedEarly === before + 1, 3000);
  });

  test('a rapid-reset flood on one connection does not harm another client', async () => {
    const abuser = open();
    abuser.on('error', () => undefined);
    await new Promise<void>((r) => abuser.once('connect', () => r()));
    for (let i = 0; i < 1000 && !abuser.destroyed && !abuser.closed; i++) {
      try {
        const s = abuser.request({ ':path': `/flood/${i}` });
        s.on('error', () => undefined);
        s.close(constants.NGHTTP2_CANCEL);
      } catch {
        break;
      }
    }
    const other = open();
    try {
      const r = await h2(other, '/still-here');
      expect(r.status).toBe(200);
    } finally {
      other.close();
      abuser.destroy();
    }
  });

  test('draining tells h2 clients GOAWAY: a stream in flight finishes, the process stops', async () => {
    const client = open();
    client.on('error', () => undefined);
    const goaway = new Promise<void>((r) => client.once('goaway', () => r()));
    const inFlight = h2(client, '/slow');
    await until(() => slow.received.length >= 2, 2000);
    const stopped = gw.stop();
    await goaway;
    expect((await inFlight).body).toBe('slow');
    await stopped;
    client.close();
  });
});

describe('server.tls.http2: false', () => {
  test('only HTTP/1.1 is offered: an h2-only client is refused at the handshake', async () => {
    const cert = makeCert(['portal.test']);
    const up = await startUpstream();
    const gw = await startGateway(`
server: { tls: { certFile: ${cert.certFile}, keyFile: ${cert.keyFile}, http2: false } }
upstreams: { app: { url: ${up.url} } }
routes: [{ name: app, path: /, upstream: app }]
`);
    try {
      const session = h2connect(`https://127.0.0.1:${gw.port}`, { ca: cert.cert, servername: 'portal.test' });
      const failed = await new Promise<boolean>((resolve) => {
        session.on('error', () => resolve(true));
        session.on('connect', () => resolve(session.alpnProtocol !== 'h2'));
      });
      session.destroy();
      expect(failed).toBe(true);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

/** A raw h2 frame: 24-bit length, type, flags, stream id. */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), short strings only. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

describe('HTTP/2: canary, parallel run, trailers, bodies and floods', () => {
  let cert: TestCert;
  let monolith: Upstream;
  let orders: Upstream;
  let gw: TestGateway;
  let session: ClientHttp2Session;
  const open = () => h2connect(`https://127.0.0.1:${gw.port}`, { ca: cert.cert, servername: 'portal.test' });

  beforeAll(async () => {
    cert = makeCert(['portal.test']);
    const side = (name: string) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: string) => {
      if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('part one;');
        res.addTrailers({ 'x-checksum': 'abc123' });
        return void res.end('part two');
      }
      if (req.url === '/twice') {
        // Two Content-Types: no HTTP/2 head can carry them.
        res.setHeader('content-type', ['text/plain', 'text/html']);
        return void res.end('ambiguous');
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name });
      res.end(JSON.stringify({ side: name, url: req.url, length: body.length, shadow: req.headers['x-strangler-shadow'] ?? null, auth: req.headers.authorization ?? null, te: req.headers['transfer-encoding'] ?? null }));
    };
    monolith = await startUpstream(side('monolith'));
    orders = await startUpstream(side('orders'));
    gw = await startGateway(`
server: { tls: { certFile: ${cert.certFile}, keyFile: ${cert.keyFile} }, headersTimeoutMs: 600, requestTimeoutMs: 600 }
admin: { port: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url} }
routes:
  - { name: split, path: /api/orders, upstream: monolith, canary: { upstream: orders, percent: 50, sticky: cookie } }
  - { name: copied, path: /api/invoices, upstream: monolith, shadow: { upstream: orders } }
  - { name: gone, path: /gone, respond: { status: 410, body: retired } }
  - { name: legacy, path: /, upstream: monolith }
`);
    session = open();
  });
  afterAll(async () => {
    session?.close();
    await gw?.stop();
    await Promise.all([monolith?.close(), orders?.close()]);
  });

  test('a canary splits h2 users by their sticky cookie, set once and kept', async () => {
    const sides = new Set<string>();
    for (let i = 0; i < 40 && sides.size < 2; i++) {
      const r = await h2(session, '/api/orders/1');
      expect(r.status).toBe(200);
      expect(r.headers['set-cookie']?.[0]).toMatch(/^strangler_sticky=/);
      sides.add(String(r.headers['x-served-by']));
    }
    expect([...sides].sort()).toEqual(['monolith', 'orders']);
    const first = await h2(session, '/api/orders/1');
    const cookie = String(first.headers['set-cookie']![0]).split(';')[0]!;
    for (let i = 0; i < 10; i++) {
      const r = await h2(session, '/api/orders/1', { headers: { cookie } });
      expect(r.headers['set-cookie']).toBeUndefined();
      expect(r.headers['x-served-by']).toBe(first.headers['x-served-by']);
    }
  });

  test('a parallel run copies an h2 request to the shadow, without its credentials, and compares the answers', async () => {
    orders.received.length = 0;
    const r = await h2(session, '/api/invoices/9', { headers: { authorization: 'Bearer secret-token' } });
    expect(JSON.parse(r.body)).toMatchObject({ side: 'monolith', auth: 'Bearer secret-token' });
    await until(() => orders.received.length === 1);
    expect(orders.received[0]!.headers['x-strangler-shadow']).toBe('1');
    expect(orders.received[0]!.headers.authorization).toBeUndefined();
    await until(() => gw.gw.table.shadows.get('copied')!.inFlight === 0);
    const report = JSON.parse((await send(gw.gw.adminPort!, '/shadows')).body).shadows[0];
    // The two sides differ only in "side": compared, one mismatch.
    expect(report).toMatchObject({ route: 'copied', copied: 1, compared: 1 });
  });

  test('an upstream\'s trailers reach an h2 client that asked for them (TE: trailers)', async () => {
    const s = session.request({ ':path': '/trailers', te: 'trailers' });
    let body = '';
    s.on('data', (c: Buffer) => (body += c.toString()));
    const trailers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      s.on('trailers', resolve);
      s.on('error', reject);
      s.on('close', () => resolve({}));
    });
    expect(body).toBe('part one;part two');
    expect(trailers['x-checksum']).toBe('abc123');
  });

  test('an upstream head HTTP/2 cannot carry is answered 502 with the request id, the stream is not reset', async () => {
    const r = await h2(session, '/twice', { headers: { 'x-request-id': 'h2-twice' } });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'UPSTREAM_ERROR', requestId: 'h2-twice' });
  });

  test('a 1 MB upload of no stated length streams to the upstream (chunked) and back', async () => {
    const big = 'x'.repeat(1024 * 1024);
    const s = session.request({ ':path': '/upload', ':method': 'POST' });
    let body = '';
    s.on('data', (c: Buffer) => (body += c.toString()));
    const done = new Promise<void>((resolve, reject) => {
      s.on('end', resolve);
      s.on('error', reject);
    });
    for (let i = 0; i < 16; i++) s.write(big.slice(i * 65536, (i + 1) * 65536));
    s.end();
    await done;
    expect(JSON.parse(body)).toMatchObject({ length: big.length, te: 'chunked' });
  });

  test('an upload that stops arriving gets 408 with its request id after server.requestTimeoutMs; the connection serves on', async () => {
    const s = session.request({ ':path': '/upload', ':method': 'POST', 'x-request-id': 'h2-slow' });
    s.write('the start of a body that never ends');
    let body = '';
    const headers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      s.on('response', resolve);
      s.on('error', reject);
    });
    s.on('data', (c: Buffer) => (body += c.toString()));
    await new Promise((r) => s.on('close', r));
    expect(headers[':status']).toBe(408);
    expect(JSON.parse(body).error).toMatchObject({ code: 'REQUEST_TIMEOUT', requestId: 'h2-slow' });
    expect((await h2(session, '/still')).status).toBe(200);
  });

  test('an answer given before the upload is complete closes the stream: the request is finished, not held until the body timeout', async () => {
    const started = performance.now();
    const s = session.request({ ':path': '/gone', ':method': 'POST', 'x-request-id': 'h2-gone' });
    s.on('error', () => undefined);
    s.write('an upload the route does not want');
    s.resume();
    const status = await new Promise<unknown>((resolve) => s.on('response', (h) => resolve(h[':status'])));
    expect(status).toBe(410);
    await new Promise((r) => s.on('close', r));
    expect(s.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    // Well before server.requestTimeoutMs (600 ms here), which would otherwise end it.
    expect(performance.now() - started).toBeLessThan(400);
    await until(() => gw.logs.lines.some((l) => l.reqId === 'h2-gone' && l.kind === 'access'), 1000);
    expect(gw.gw.inFlightRequests).toBe(0);
  });

  test('a header list over server.maxHeaderBytes is refused; the connection and other clients are unharmed', async () => {
    const client = open();
    client.on('error', () => undefined);
    const refused = await new Promise<string>((resolve) => {
      const s = client.request({ ':path': '/', 'x-huge': 'y'.repeat(70_000) });
      s.on('response', (h) => resolve(String(h[':status'])));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('close', () => resolve(`closed ${s.rstCode}`));
      s.end();
    });
    expect(refused).not.toBe('200');
    const other = open();
    try {
      expect((await h2(other, '/after-huge')).status).toBe(200);
    } finally {
      other.close();
      client.destroy();
    }
  });

  test('a CONTINUATION flood (a header block that never ends) is cut off; other clients are served meanwhile', async () => {
    const { connect } = await import('node:tls');
    const socket = connect({ host: '127.0.0.1', port: gw.port, ca: cert.cert, servername: 'portal.test', ALPNProtocols: ['h2'] });
    socket.on('error', () => undefined);
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    expect(socket.alpnProtocol).toBe('h2');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let sent = 0;
    let alive = true;
    socket.once('close', () => (alive = false));
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0)]));
    // HEADERS without END_HEADERS, then CONTINUATION frames that never set it (CVE-2024-27316 style).
    const start = Buffer.concat([Buffer.from([0x82, 0x87, 0x84]), literal(':authority', 'portal.test')]);
    socket.write(frame(0x1, 0x1, 1, start));
    const fragment = frame(0x9, 0, 1, literal('x-flood', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'));
    const deadline = Date.now() + 5000;
    while (alive && sent < 200_000 && Date.now() < deadline) {
      const batch = Buffer.concat(Array.from({ length: 100 }, () => fragment));
      if (!socket.write(batch)) await new Promise((r) => setTimeout(r, 5));
      sent += 100;
      if (sent % 2000 === 0) await new Promise((r) => setImmediate(r));
    }
    // Meanwhile another client is served.
    const other = open();
    try {
      expect((await h2(other, '/during-flood')).status).toBe(200);
    } finally {
      other.close();
    }
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    expect(alive).toBe(false);
    socket.destroy();
  });
});

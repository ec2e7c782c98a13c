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
import { closedPort, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';
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

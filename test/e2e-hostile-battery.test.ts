/**
 * The hostile-input battery: raw bytes an attacker (or a broken client) sends,
 * each on its own connection, with the gateway's answer checked per case and
 * the invariants checked where it matters, on the upstream side:
 * - no smuggled request: the upstream receives exactly the requests the cases
 *   meant to deliver, to the paths they meant;
 * - no request on a route it does not match (the admin upstream, behind a
 *   role, receives nothing: no case has a valid token);
 * - no spoofed identity or forwarding header arrives;
 * - the gateway answers after every case, and its in-flight counts return to 0.
 */
import { connect } from 'node:net';
import { send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

interface Case {
  name: string;
  bytes: string;
  /** The status of the first response, or 'close' when the gateway may only close the connection. */
  status: number | 'close';
  /** Requests this case delivers to the public upstream (all under /public). */
  reaches: number;
  /** Statuses of every response on the connection, when more than one is expected. */
  all?: number[];
  /** The connection must be closed by the gateway after its answer. */
  closes?: boolean;
}

const HOST = 'Host: portal.example\r\n';
const get = (target: string, headers = '') => `GET ${target} HTTP/1.1\r\n${HOST}${headers}\r\n`;
const post = (target: string, headers: string, body: string) => `POST ${target} HTTP/1.1\r\n${HOST}${headers}\r\n${body}`;
const chunked = (...parts: string[]) => parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
const smuggled = 'GET /admin HTTP/1.1\r\nHost: portal.example\r\nX-User-Roles: admin\r\n\r\n';

const CASES: Case[] = [
  // Framing and smuggling
  { name: 'Content-Length and Transfer-Encoding together', bytes: post('/public/a', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', chunked('x') + smuggled), status: 400, reaches: 0 },
  { name: 'Transfer-Encoding before Content-Length', bytes: post('/public/a', 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', chunked('x')), status: 400, reaches: 0 },
  { name: 'two different Content-Lengths', bytes: post('/public/a', 'Content-Length: 3\r\nContent-Length: 40\r\n', 'abc'), status: 400, reaches: 0 },
  { name: 'a Content-Length list', bytes: post('/public/a', 'Content-Length: 3, 40\r\n', 'abc'), status: 400, reaches: 0 },
  { name: 'a negative Content-Length', bytes: post('/public/a', 'Content-Length: -1\r\n', 'abc'), status: 400, reaches: 0 },
  { name: 'a Content-Length with a plus sign', bytes: post('/public/a', 'Content-Length: +3\r\n', 'abc'), status: 400, reaches: 0 },
  { name: 'Transfer-Encoding: identity', bytes: post('/public/a', 'Transfer-Encoding: identity\r\n', 'abc' + smuggled), status: 400, reaches: 0, closes: true, all: [400] },
  { name: 'Transfer-Encoding: gzip, chunked', bytes: post('/public/a', 'Transfer-Encoding: gzip, chunked\r\n', chunked('x')), status: 501, reaches: 0, closes: true },
  { name: 'Transfer-Encoding: chunked, identity', bytes: post('/public/a', 'Transfer-Encoding: chunked, identity\r\n', chunked('x')), status: 400, reaches: 0, closes: true },
  { name: 'Transfer-Encoding: xchunked', bytes: post('/public/a', 'Transfer-Encoding: xchunked\r\n', chunked('x')), status: 400, reaches: 0 },
  { name: 'a space before the colon of Transfer-Encoding', bytes: post('/public/a', 'Transfer-Encoding : chunked\r\nContent-Length: 3\r\n', 'abc'), status: 400, reaches: 0 },
  { name: 'Transfer-Encoding folded onto a second line', bytes: post('/public/a', 'Transfer-Encoding:\r\n chunked\r\n', chunked('x')), status: 400, reaches: 0 },
  { name: 'a chunk size in hex with 0x', bytes: post('/public/a', 'Transfer-Encoding: chunked\r\n', '0x1\r\nx\r\n0\r\n\r\n'), status: 400, reaches: 0, closes: true },
  { name: 'a chunk size that overflows', bytes: post('/public/a', 'Transfer-Encoding: chunked\r\n', 'FFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n'), status: 400, reaches: 0, closes: true },
  { name: 'a chunked body, then a request smuggled behind it', bytes: post('/public/a', 'Transfer-Encoding: chunked\r\n', chunked('body') + smuggled), status: 200, reaches: 1, all: [200, 401] },
  { name: 'more body bytes than Content-Length (the rest read as a request)', bytes: post('/public/a', 'Content-Length: 3\r\n', 'abc' + smuggled), status: 200, reaches: 1, all: [200, 401] },
  { name: 'pipelined requests are answered in order', bytes: get('/public/1') + get('/public/2') + get('/public/3'), status: 200, reaches: 3, all: [200, 200, 200] },
  { name: 'a malformed request after a good one: the good answer comes first', bytes: get('/public/first') + 'GET /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', status: 200, reaches: 1, all: [200, 400] },
  { name: '2,000 header lines', bytes: get('/public/many', 'A: b\r\n'.repeat(2000)), status: 431, reaches: 0, closes: true },
  { name: 'headers over maxHeaderBytes', bytes: get('/public/big', `X-Big: ${'a'.repeat(20_000)}\r\n`), status: 431, reaches: 0 },
  // Request line
  { name: 'an HTTP/0.9 request line', bytes: 'GET /public/old\r\n\r\n', status: 400, reaches: 0 },
  { name: 'an HTTP/2 preface on HTTP/1.1', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, reaches: 0 },
  { name: 'HTTP/1.2', bytes: 'GET /public/v HTTP/1.2\r\nHost: a\r\n\r\n', status: 'close', reaches: 0 },
  { name: 'a lower-case method', bytes: 'get /public/a HTTP/1.1\r\nHost: a\r\n\r\n', status: 400, reaches: 0 },
  { name: 'an unknown method', bytes: 'FOO /public/a HTTP/1.1\r\nHost: a\r\n\r\n', status: 400, reaches: 0 },
  { name: 'the absolute form names another host', bytes: 'GET http://internal.example/admin HTTP/1.1\r\nHost: portal.example\r\n\r\n', status: 400, reaches: 0 },
  { name: 'OPTIONS * is answered by the gateway', bytes: 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', status: 204, reaches: 0 },
  { name: 'GET * is refused', bytes: 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', status: 400, reaches: 0 },
  { name: 'CONNECT is not proxied', bytes: 'CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n', status: 'close', reaches: 0 },
  { name: 'a NUL in a header value', bytes: get('/public/a', 'X-A: a\0b\r\n'), status: 400, reaches: 0 },
  { name: 'a space in a header name', bytes: get('/public/a', 'X A: b\r\n'), status: 400, reaches: 0 },
  { name: 'a bare CR in a header value', bytes: get('/public/a', 'X-A: a\rb\r\n'), status: 400, reaches: 0 },
  // Host
  { name: 'two Host headers', bytes: 'GET /public/a HTTP/1.1\r\nHost: portal.example\r\nHost: internal.example\r\n\r\n', status: 400, reaches: 0, closes: true },
  { name: 'a Host with userinfo', bytes: 'GET /public/a HTTP/1.1\r\nHost: evil@portal.example\r\n\r\n', status: 400, reaches: 0, closes: true },
  { name: 'a Host with a space', bytes: 'GET /public/a HTTP/1.1\r\nHost: portal.example evil.example\r\n\r\n', status: 400, reaches: 0, closes: true },
  { name: 'a Host with a path', bytes: 'GET /public/a HTTP/1.1\r\nHost: portal.example/admin\r\n\r\n', status: 400, reaches: 0, closes: true },
  { name: 'HTTP/1.1 without Host', bytes: 'GET /public/a HTTP/1.1\r\n\r\n', status: 400, reaches: 0 },
  { name: 'HTTP/1.0 without Host is fine', bytes: 'GET /public/ten HTTP/1.0\r\n\r\n', status: 200, reaches: 1 },
  { name: 'an IPv6 Host with a port is fine', bytes: 'GET /public/v6 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n', status: 200, reaches: 1 },
  // Paths
  { name: '.. into a protected route', bytes: get('/public/../admin'), status: 401, reaches: 0 },
  { name: 'encoded .. into a protected route', bytes: get('/public/%2e%2e/admin'), status: 401, reaches: 0 },
  { name: 'upper-case encoded ..', bytes: get('/public/%2E%2E/admin'), status: 401, reaches: 0 },
  { name: 'an encoded slash', bytes: get('/public/..%2Fadmin'), status: 400, reaches: 0 },
  { name: '..; (read as .. by Java servers)', bytes: get('/public/..;/admin'), status: 400, reaches: 0 },
  { name: 'a backslash', bytes: get('/public\\..\\admin'), status: 400, reaches: 0 },
  { name: 'an encoded backslash', bytes: get('/public/%5c..%5cadmin'), status: 400, reaches: 0 },
  { name: 'an encoded NUL', bytes: get('/public/a%00b'), status: 400, reaches: 0 },
  { name: 'a malformed escape', bytes: get('/public/%zz'), status: 400, reaches: 0 },
  { name: 'above the root', bytes: get('/public/../../etc/passwd'), status: 400, reaches: 0 },
  { name: 'a double slash into a protected route', bytes: get('//admin'), status: 401, reaches: 0 },
  { name: 'a ;parameter on a protected route', bytes: get('/admin;x=1'), status: 401, reaches: 0 },
  { name: 'an escaped letter of a protected route', bytes: get('/%61dmin'), status: 401, reaches: 0 },
  { name: 'another case of a protected route is another path', bytes: get('/ADMIN'), status: 404, reaches: 0 },
  // Identity and forwarding headers
  { name: 'X-User-Id on a public route', bytes: get('/public/id', 'X-User-Id: admin\r\nX-User-Roles: admin\r\n'), status: 200, reaches: 1 },
  { name: 'X-User_Id (underscore) on a public route', bytes: get('/public/id2', 'X-User_Id: admin\r\nx-user_roles: admin\r\n'), status: 200, reaches: 1 },
  { name: 'X-Strangler-Identity forged', bytes: get('/public/id3', 'X-Strangler-Identity: forged.token.value\r\n'), status: 200, reaches: 1 },
  { name: 'identity headers on a protected route without a token', bytes: get('/admin', 'X-User-Id: root\r\nX-User-Roles: admin\r\n'), status: 401, reaches: 0 },
  { name: 'a forged bearer token', bytes: get('/admin', 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyb290Iiwicm9sZXMiOlsiYWRtaW4iXX0.c2lnbmF0dXJl\r\n'), status: 401, reaches: 0 },
  { name: 'an unsigned token (alg none)', bytes: get('/admin', 'Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290Iiwicm9sZXMiOlsiYWRtaW4iXSwiZXhwIjo0MTAyNDQ0ODAwfQ.\r\n'), status: 401, reaches: 0 },
  { name: 'spoofed forwarding headers', bytes: get('/public/fwd', 'X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Host: internal.example\r\nX-Real-IP: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nX-Forwarded_For: 10.9.9.8\r\n'), status: 200, reaches: 1 },
  { name: 'Connection naming an identity header and framing', bytes: get('/public/conn', 'Connection: keep-alive, X-Request-Id, Host\r\n'), status: 200, reaches: 1 },
  { name: 'Proxy-Authorization and TE: trailers', bytes: get('/public/hop', 'Proxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\n'), status: 200, reaches: 1 },
  { name: 'a request id with spaces is replaced', bytes: get('/public/rid', 'X-Request-Id: a b c\r\n'), status: 200, reaches: 1 },
  { name: 'a malformed traceparent is replaced', bytes: get('/public/tp', 'traceparent: 00-zz-zz-01\r\n'), status: 200, reaches: 1 },
  { name: 'Expect: 100-continue', bytes: post('/public/expect', 'Expect: 100-continue\r\nContent-Length: 3\r\n', 'abc'), status: 100, reaches: 1 },
];

/** Sends a case's bytes on a fresh connection; the statuses of the responses seen, and whether the gateway closed it. */
function run(port: number, bytes: string): Promise<{ statuses: number[]; closed: boolean; text: string }> {
  return new Promise((resolve) => {
    let text = '';
    const sock = connect(port, '127.0.0.1', () => sock.write(Buffer.from(bytes, 'latin1')));
    sock.on('data', (c) => (text += c.toString('latin1')));
    sock.on('error', () => undefined);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, closed, text });
    };
    const timer = setTimeout(() => done(false), 1500);
    sock.on('close', () => done(true));
  });
}

describe('hostile-input battery', () => {
  let pub: Upstream;
  let admin: Upstream;
  let gw: TestGateway;
  const results = new Map<string, Awaited<ReturnType<typeof run>>>();

  beforeAll(async () => {
    pub = await startUpstream();
    admin = await startUpstream();
    gw = await startGateway(
      `
auth:
  jwt: { secret: "\${JWT_SECRET}" }
admin: { port: 0 }
server: { maxHeaderBytes: 16384 }
upstreams: { app: { url: ${pub.url} }, internal: { url: ${admin.url} } }
routes:
  - { name: public, path: /public, upstream: app }
  - { name: admin, path: /admin, upstream: internal, roles: [admin] }
  - { name: api, path: /api, upstream: app, auth: required }
`,
      { JWT_SECRET: 'battery-secret-0123456789abcdef' },
    );
    // Every case on its own connection, all at once: the invariants hold over the whole battery.
    await Promise.all(CASES.map(async (c) => results.set(c.name, await run(gw.port, c.bytes))));
  }, 30_000);
  afterAll(async () => {
    await gw?.stop();
    await Promise.all([pub?.close(), admin?.close()]);
  });

  test('the battery has at least 60 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  test.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r = results.get(c.name)!;
    if (c.status === 'close') {
      expect(r.statuses.filter((s) => s === 200)).toEqual([]);
      expect(r.closed).toBe(true);
    } else {
      expect(r.statuses[0]).toBe(c.status);
    }
    if (c.all !== undefined) expect(r.statuses).toEqual(c.status === 100 ? [100, ...c.all] : c.all);
    if (c.closes) expect(r.closed).toBe(true);
  });

  test('the public upstream received exactly the requests the cases delivered, all under /public', () => {
    const expected = CASES.reduce((n, c) => n + c.reaches, 0);
    expect(pub.received.map((r) => r.url).filter((u) => !u.startsWith('/public'))).toEqual([]);
    expect(pub.received).toHaveLength(expected);
  });

  test('nothing reached the upstream behind the role', () => {
    expect(admin.received).toEqual([]);
  });

  test('no spoofed identity or forwarding header arrived', () => {
    for (const r of pub.received) {
      const names = r.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, '-'));
      expect(names.filter((n) => n.startsWith('x-user-') || n === 'x-strangler-identity' || n === 'x-real-ip' || n === 'forwarded' || n === 'proxy-authorization')).toEqual([]);
      // TE is hop-by-hop: only the gateway's own `trailers` (it relays trailer fields) may arrive.
      expect([undefined, 'trailers']).toContain(r.headers.te);
      expect(r.headers['x-forwarded-for']).toBe('127.0.0.1');
      // The client's own Host (none for the HTTP/1.0 case), never a spoofed X-Forwarded-Host.
      expect([undefined, 'portal.example', '[::1]:8080']).toContain(r.headers['x-forwarded-host']);
      expect(String(r.headers['x-request-id'])).toMatch(/^[\x21-\x7e]{1,128}$/);
      expect(String(r.headers.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      expect(r.headers.host).toBeDefined();
    }
  });

  test('the gateway still answers, and every in-flight count is back to 0', async () => {
    expect((await send(gw.port, '/public/after', { headers: { host: 'portal.example' } })).status).toBe(200);
    await until(() => gw.gw.inFlightRequests === 0 && gw.gw.table.upstreams.get('app')!.inFlight === 0, 3000);
  });
});

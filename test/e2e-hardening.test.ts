import { connect } from 'node:net';
import { json, send, startGateway, startUpstream, until } from './helpers/servers';

/** Sends exact bytes on one connection; resolves with everything the gateway answered before closing or the timeout. */
function raw(port: number, bytes: string, waitMs = 400): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(bytes));
    let out = '';
    sock.on('data', (c) => (out += c.toString()));
    sock.on('error', reject);
    setTimeout(() => {
      sock.destroy();
      resolve(out);
    }, waitMs);
  });
}

describe('request smuggling through Connection-named framing headers', () => {
  test.each([
    ['transfer-encoding', (inner: string) => `Transfer-Encoding: chunked\r\n\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`],
    ['content-length', (inner: string) => `Content-Length: ${inner.length}\r\n\r\n${inner}`],
  ])('Connection: %s cannot strip the body framing: the upstream sees one request', async (name, body) => {
    const up = await startUpstream();
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const inner = 'GET /admin HTTP/1.1\r\nHost: x\r\nX-User-Id: admin\r\nX-User-Roles: admin\r\n\r\n';
      const reply = await raw(gw.port, `GET /public HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, ${name}\r\n${body(inner)}`);
      expect(reply).toMatch(/^HTTP\/1\.1 200/);
      await new Promise((r) => setTimeout(r, 100));
      expect(up.received.map((r) => r.url)).toEqual(['/public']);
      expect(up.received[0]!.body).toBe(inner);
      expect(up.received[0]!.headers['x-user-id']).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('pipelined requests on a dying connection', () => {
  test('queued pipelined requests are finished when their socket closes: no in-flight count leaks', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 150));
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${slow.url}, maxConcurrent: 20 } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const three = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n';
      await Promise.all(Array.from({ length: 15 }, () => raw(gw.port, three, 5)));
      // The gateway may still be parsing what the clients sent before they left: let every request
      // it took on reach the slow upstream and come back (150 ms) before counting.
      await new Promise((r) => setTimeout(r, 500));
      await until(() => gw.gw.inFlightRequests === 0 && gw.gw.table.upstreams.get('app')!.inFlight === 0, 3000);
      const ups = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams;
      expect(ups[0].inFlight).toBe(0);
      // The bulkhead still lets requests through.
      expect((await send(gw.port, '/after')).status).toBe(200);
    } finally {
      await gw.stop();
      await slow.close();
    }
  });
});

describe('path parameters', () => {
  test('`;params` cannot move a request off its route (Java servers ignore them)', async () => {
    const pub = await startUpstream();
    const admin = await startUpstream();
    const gw = await startGateway(`
auth: { jwt: { secret: "0123456789abcdef0123" } }
upstreams: { pub: { url: ${pub.url} }, admin: { url: ${admin.url} } }
routes:
  - { name: public, path: /, upstream: pub }
  - { name: admin, path: /admin, upstream: admin, auth: required }
  - { name: users, path: /api/users, upstream: pub, stripPrefix: /api }
`);
    try {
      for (const p of ['/admin;x=1', '/admin%3bx', '/admin;jsessionid=1/panel']) {
        const r = await send(gw.port, p);
        expect(r.status).toBe(401);
      }
      expect(pub.received).toHaveLength(0);
      // Without a stripPrefix the parameters are forwarded (legacy ;jsessionid keeps working); with one, the clean path is.
      await send(gw.port, '/shop;jsessionid=abc/cart');
      await send(gw.port, '/api;x=1/users/7');
      expect(pub.received.map((r) => r.url)).toEqual(['/shop;jsessionid=abc/cart', '/users/7']);
    } finally {
      await gw.stop();
      await Promise.all([pub.close(), admin.close()]);
    }
  });
});

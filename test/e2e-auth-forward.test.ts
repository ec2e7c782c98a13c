/**
 * Forward auth: the gateway asks an auth endpoint on loopback whether the
 * request's cookie/Authorization is good. Allow copies the answer's identity
 * headers upstream, deny passes the endpoint's own 401 to the client, answers
 * are cached per credential, and an unreachable endpoint is 503, not 401.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

/** An auth endpoint: `sid=good...` is user u-7; anything else is 401 with a challenge. Counts calls. */
class AuthServer {
  calls = 0;
  seen: Array<{ url: string; method: string; headers: IncomingHttpHeaders }> = [];
  mode: 'normal' | '500' | '302' = 'normal';
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.calls++;
      this.seen.push({ url: req.url!, method: req.method!, headers: req.headers });
      if (this.mode === '500') {
        res.writeHead(500, { 'content-type': 'text/plain' });
        return void res.end('boom');
      }
      if (this.mode === '302') {
        res.writeHead(302, { location: '/elsewhere' });
        return void res.end();
      }
      const cookie = req.headers.cookie ?? '';
      if (/(^|;\s*)sid=good/.test(cookie) && String(req.headers['x-forwarded-uri']).startsWith('/forbidden')) {
        // A good session, but not for this resource.
        res.writeHead(403, { 'content-type': 'application/json' });
        return void res.end('{"reason":"not yours"}');
      }
      if (/(^|;\s*)sid=good/.test(cookie)) {
        res.writeHead(200, {
          'X-User-Id': 'u-7',
          'X-User-Email': 'seven@example.test',
          'X-User-Roles': 'admin editor',
          'X-Not-Copied': 'internal-detail',
        });
        return void res.end();
      }
      if (/(^|;\s*)sid=latin/.test(cookie)) {
        // Header values are bytes: this one is Latin-1 0xE9, and must reach the upstream as sent.
        res.writeHead(200, { 'X-User-Id': 'u-8', 'X-User-Email': 'jos\u00e9@example.test' });
        return void res.end();
      }
      if (/(^|;\s*)sid=readonly/.test(cookie)) {
        res.writeHead(403, { 'content-type': 'application/json', 'X-Internal': 'no' });
        return void res.end('{"reason":"suspended"}');
      }
      res.writeHead(401, { 'WWW-Authenticate': 'Cookie realm="portal", form="/login"', 'content-type': 'application/json', 'X-Internal': 'no' });
      res.end('{"login":"required"}');
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/auth/check`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }
}

const uniq = () => randomBytes(6).toString('hex');

function table(authUrl: string, upUrl: string, forward = ''): string {
  return `
auth:
  forward:
    url: ${authUrl}
    cacheMs: 60000
${forward}
reload: { watch: false }
log: { level: debug }
upstreams: { app: { url: ${upUrl} } }
routes:
  - { name: public, path: /public, upstream: app, auth: none }
  - { name: opt, path: /opt, upstream: app, auth: optional }
  - { name: admins, path: /admin, upstream: app, roles: [admin] }
  - { name: owners, path: /owners, upstream: app, roles: [owner] }
  - { name: api, path: /, upstream: app, auth: required }
`;
}

describe('forward auth', () => {
  let up: Upstream;
  let auth: AuthServer;
  let gw: TestGateway;
  const used: string[] = [];
  beforeAll(async () => {
    up = await startUpstream();
    auth = new AuthServer();
    await auth.start();
    gw = await startGateway(table(auth.url, up.url));
  });
  afterAll(async () => {
    await gw?.stop();
    await auth?.stop();
    await up?.close();
  });
  beforeEach(() => {
    up.received.length = 0;
    auth.seen.length = 0;
  });

  test('allow: the request is proxied and the upstream gets the copied identity headers', async () => {
    const sid = `good-${uniq()}`;
    used.push(sid);
    const r = await send(gw.port, '/orders/1', { headers: { cookie: `sid=${sid}` } });
    expect(r.status).toBe(200);
    expect(auth.seen).toHaveLength(1);
    const h = up.received[0]!.headers;
    expect(h['x-user-id']).toBe('u-7');
    expect(h['x-user-email']).toBe('seven@example.test');
    // Roles are normalised to the gateway's comma-joined form, whatever the endpoint's separator.
    expect(h['x-user-roles']).toBe('admin,editor');
    // Only the listed headers are copied.
    expect(h['x-not-copied']).toBeUndefined();
    // The user's cookie still goes upstream (forwardCredentials defaults to true).
    expect(h.cookie).toBe(`sid=${sid}`);
  });

  test('deny: the client gets the auth endpoint\'s 401, challenge and body; nothing is proxied', async () => {
    const sid = `bad-${uniq()}`;
    used.push(sid);
    const r = await send(gw.port, '/orders/1', { headers: { cookie: `sid=${sid}`, 'x-request-id': 'deny-1' } });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Cookie realm="portal", form="/login"');
    expect(r.body).toBe('{"login":"required"}');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-request-id']).toBe('deny-1');
    // Headers that are not part of a refusal stay behind.
    expect(r.headers['x-internal']).toBeUndefined();
    expect(up.received).toHaveLength(0);
  });

  test('copied values go upstream byte for byte (no re-encoding of the endpoint\'s answer)', async () => {
    const r = await send(gw.port, '/x', { headers: { cookie: `sid=latin-${uniq()}` } });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-email']).toBe('jos\u00e9@example.test');
    expect(up.received[0]!.headers['x-user-roles']).toBeUndefined();
  });

  test('a 403 from the auth endpoint reaches the client as 403', async () => {
    const r = await send(gw.port, '/orders/1', { headers: { cookie: `sid=readonly-${uniq()}` } });
    expect(r.status).toBe(403);
    expect(r.body).toBe('{"reason":"suspended"}');
    expect(up.received).toHaveLength(0);
  });

  test('repeated requests with the same credentials within cacheMs ask the endpoint once', async () => {
    const sid = `good-${uniq()}`;
    used.push(sid);
    const before = auth.calls;
    for (let i = 0; i < 4; i++) {
      const r = await send(gw.port, `/orders/${i}`, { headers: { cookie: `sid=${sid}` } });
      expect(r.status).toBe(200);
    }
    expect(auth.calls - before).toBe(1);
    expect(up.received.map((x) => x.headers['x-user-id'])).toEqual(['u-7', 'u-7', 'u-7', 'u-7']);
    // Other credentials are a different cache entry.
    await send(gw.port, '/orders/x', { headers: { cookie: `sid=good-${uniq()}` } });
    expect(auth.calls - before).toBe(2);
  });

  test('a cached denial is also answered without asking again', async () => {
    const sid = `bad-${uniq()}`;
    const before = auth.calls;
    const a = await send(gw.port, '/x', { headers: { cookie: `sid=${sid}` } });
    const b = await send(gw.port, '/x', { headers: { cookie: `sid=${sid}` } });
    expect([a.status, b.status]).toEqual([401, 401]);
    expect(b.headers['www-authenticate']).toBe('Cookie realm="portal", form="/login"');
    expect(auth.calls - before).toBe(1);
  });

  test('a 403 (about this request, not the session) is not cached: other URIs still get their own answer', async () => {
    const sid = `good-${uniq()}`;
    const before = auth.calls;
    const a = await send(gw.port, '/forbidden/x', { headers: { cookie: `sid=${sid}` } });
    expect(a.status).toBe(403);
    expect(a.body).toBe('{"reason":"not yours"}');
    const b = await send(gw.port, '/orders/1', { headers: { cookie: `sid=${sid}` } });
    expect(b.status).toBe(200);
    expect(auth.calls - before).toBe(2);
    // A repeated 403 is asked again too.
    expect((await send(gw.port, '/forbidden/y', { headers: { cookie: `sid=readonly-${sid}` } })).status).toBe(403);
    expect((await send(gw.port, '/forbidden/y', { headers: { cookie: `sid=readonly-${sid}` } })).status).toBe(403);
    expect(auth.calls - before).toBe(4);
  });

  test('the endpoint receives cookie, Authorization, x-forwarded-method, x-forwarded-uri and x-request-id', async () => {
    const sid = `good-${uniq()}`;
    const authz = `Bearer opaque-${uniq()}`;
    used.push(sid, authz);
    const r = await send(gw.port, '/api/things/9?expand=owner&x=%20y', {
      method: 'POST',
      headers: { cookie: `theme=dark; sid=${sid}`, authorization: authz, 'x-request-id': 'fa-req-1', 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(r.status).toBe(200);
    expect(auth.seen).toHaveLength(1);
    const seen = auth.seen[0]!;
    expect(seen.headers.cookie).toBe(`theme=dark; sid=${sid}`);
    expect(seen.headers.authorization).toBe(authz);
    expect(seen.headers['x-forwarded-method']).toBe('POST');
    expect(seen.headers['x-forwarded-uri']).toBe('/api/things/9?expand=owner&x=%20y');
    expect(seen.headers['x-request-id']).toBe('fa-req-1');
    // The request body is for the upstream, not for the auth endpoint.
    expect(seen.method).toBe('GET');
    expect(up.received[0]!.body).toBe('{"a":1}');
    expect(up.received[0]!.method).toBe('POST');
  });

  test('no cookie and no Authorization: 401 without asking the endpoint', async () => {
    const before = auth.calls;
    const r = await send(gw.port, '/x');
    expect(r.status).toBe(401);
    expect(json(r).error.code).toBe('UNAUTHORIZED');
    expect(auth.calls).toBe(before);
  });

  test('roles come from the copied roles header', async () => {
    const sid = `good-${uniq()}`;
    expect((await send(gw.port, '/admin', { headers: { cookie: `sid=${sid}` } })).status).toBe(200);
    const r = await send(gw.port, '/owners', { headers: { cookie: `sid=${sid}` } });
    expect(r.status).toBe(403);
    expect(json(r).error.code).toBe('FORBIDDEN');
  });

  test('client-sent identity headers are replaced by the endpoint\'s answer', async () => {
    const r = await send(gw.port, '/x', { headers: { cookie: `sid=good-${uniq()}`, 'x-user-id': 'attacker', 'X-User-Roles': 'root' } });
    expect(r.status).toBe(200);
    const raw = up.received[0]!.rawHeaders;
    expect(raw).not.toContain('attacker');
    expect(raw).not.toContain('root');
    expect(up.received[0]!.headers['x-user-id']).toBe('u-7');
  });

  test('a public route never asks the endpoint', async () => {
    const before = auth.calls;
    expect((await send(gw.port, '/public', { headers: { cookie: `sid=good-${uniq()}` } })).status).toBe(200);
    expect(auth.calls).toBe(before);
    expect(up.received[0]!.headers['x-user-id']).toBeUndefined();
  });

  test('an optional route with a denied session is proxied anonymously', async () => {
    const r = await send(gw.port, '/opt', { headers: { cookie: `sid=bad-${uniq()}`, 'x-user-id': 'attacker' } });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-id']).toBeUndefined();
  });

  test('the endpoint answering 500 (or anything but 2xx/401/403) is 503 AUTH_UNAVAILABLE', async () => {
    auth.mode = '500';
    try {
      const r = await send(gw.port, '/x', { headers: { cookie: `sid=good-${uniq()}` } });
      expect(r.status).toBe(503);
      expect(json(r).error.code).toBe('AUTH_UNAVAILABLE');
      auth.mode = '302';
      const s = await send(gw.port, '/x', { headers: { cookie: `sid=good-${uniq()}` } });
      expect(s.status).toBe(503);
      expect(s.headers.location).toBeUndefined();
    } finally {
      auth.mode = 'normal';
    }
    expect(up.received).toHaveLength(0);
  });

  test('cookies and Authorization values never reach the logs', async () => {
    await until(() => gw.logs.lines.filter((l) => l.msg === 'request').length >= 10);
    const text = gw.logs.text();
    expect(used.length).toBeGreaterThan(3);
    for (const v of used) expect(text).not.toContain(v);
  });
});

describe('forward auth endpoint unreachable', () => {
  test('a closed port is 503 AUTH_UNAVAILABLE, for API clients and browsers alike', async () => {
    const up = await startUpstream();
    const gw = await startGateway(table(`http://127.0.0.1:${await closedPort()}/auth`, up.url, '    timeoutMs: 1000'));
    try {
      const r = await send(gw.port, '/x', { headers: { cookie: 'sid=good' } });
      expect(r.status).toBe(503);
      expect(r.headers['content-type']).toMatch(/application\/json/);
      expect(json(r).error.code).toBe('AUTH_UNAVAILABLE');
      const b = await send(gw.port, '/x', { headers: { cookie: 'sid=good', accept: 'text/html' } });
      expect(b.status).toBe(503);
      expect(up.received).toHaveLength(0);
      // An optional route still serves, anonymously.
      const o = await send(gw.port, '/opt', { headers: { cookie: 'sid=good' } });
      expect(o.status).toBe(200);
      expect(up.received[0]!.headers['x-user-id']).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('an endpoint that does not answer in timeoutMs is 503', async () => {
    const up = await startUpstream();
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const gw = await startGateway(table(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/auth`, up.url, '    timeoutMs: 200'));
    try {
      const started = Date.now();
      const r = await send(gw.port, '/x', { headers: { cookie: 'sid=good' } });
      expect(r.status).toBe(503);
      expect(json(r).error.code).toBe('AUTH_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await gw.stop();
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
      await up.close();
    }
  });

  test('the endpoint has its own breaker: failure statuses open it, then requests are 503 without asking', async () => {
    const up = await startUpstream();
    const auth = new AuthServer();
    await auth.start();
    auth.mode = '500';
    const breaker = '    breaker: { minRequests: 2, errorPercent: 50, openMs: 60000 }';
    const gw = await startGateway(table(auth.url, up.url, breaker).replace('cacheMs: 60000', 'cacheMs: 0'));
    try {
      for (let i = 0; i < 4; i++) {
        const r = await send(gw.port, '/x', { headers: { cookie: `sid=good-${i}` } });
        expect(r.status).toBe(503);
        expect(json(r).error.code).toBe('AUTH_UNAVAILABLE');
      }
      expect(auth.calls).toBe(2);
      expect(gw.logs.lines.some((l) => l.msg === 'circuit open for the forward-auth endpoint')).toBe(true);
    } finally {
      await gw.stop();
      await auth.stop();
      await up.close();
    }
  });

  test('a 5xx outside breaker.failureStatuses is 503 but never opens the endpoint\'s circuit', async () => {
    const up = await startUpstream();
    const auth = new AuthServer();
    await auth.start();
    auth.mode = '500';
    const breaker = '    breaker: { minRequests: 2, errorPercent: 50, openMs: 60000, failureStatuses: [503] }';
    const gw = await startGateway(table(auth.url, up.url, breaker).replace('cacheMs: 60000', 'cacheMs: 0'));
    try {
      for (let i = 0; i < 4; i++) expect((await send(gw.port, '/x', { headers: { cookie: `sid=good-${i}` } })).status).toBe(503);
      expect(auth.calls).toBe(4);
      auth.mode = 'normal';
      expect((await send(gw.port, '/x', { headers: { cookie: 'sid=good-after' } })).status).toBe(200);
    } finally {
      await gw.stop();
      await auth.stop();
      await up.close();
    }
  });

  test('cacheMs: 0 asks the endpoint on every request', async () => {
    const up = await startUpstream();
    const auth = new AuthServer();
    await auth.start();
    const gw = await startGateway(table(auth.url, up.url).replace('cacheMs: 60000', 'cacheMs: 0'));
    try {
      for (let i = 0; i < 3; i++) expect((await send(gw.port, '/x', { headers: { cookie: 'sid=good-same' } })).status).toBe(200);
      expect(auth.calls).toBe(3);
    } finally {
      await gw.stop();
      await auth.stop();
      await up.close();
    }
  });
});

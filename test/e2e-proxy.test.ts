import { request } from 'node:http';
import { connect } from 'node:net';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

describe('request ids and tracing', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('a sane client id is kept, sent upstream, returned and logged', async () => {
    const r = await send(gw.port, '/a', { headers: { 'x-request-id': 'portal-42.abc' } });
    expect(r.headers['x-request-id']).toBe('portal-42.abc');
    expect(up.received[0]!.headers['x-request-id']).toBe('portal-42.abc');
    await until(() => gw.logs.lines.some((l) => l.reqId === 'portal-42.abc' && l.msg === 'request'));
    const line = gw.logs.lines.find((l) => l.reqId === 'portal-42.abc')!;
    expect(line).toMatchObject({ method: 'GET', path: '/a', route: 'all', upstream: 'app', status: 200, aborted: false });
    expect(typeof line.durationMs).toBe('number');
    expect(line.bytes).toBeGreaterThan(0);
  });

  test.each([['has space'], ['x'.repeat(129)], ['tab\tin']])('an insane client id (%s) is replaced by a UUID', async (bad) => {
    const r = await send(gw.port, '/b', { headers: { 'x-request-id': bad } });
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(up.received[0]!.headers['x-request-id']).toBe(r.headers['x-request-id']);
  });

  test('a missing id is generated, on errors too', async () => {
    const ok = await send(gw.port, '/c');
    expect(ok.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    const bad = await send(gw.port, '/..');
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(json(bad).error.requestId).toBe(bad.headers['x-request-id']);
  });

  test('traceparent is passed through when valid and created when absent', async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await send(gw.port, '/t1', { headers: { traceparent: tp } });
    const r = await send(gw.port, '/t2');
    await send(gw.port, '/t3', { headers: { traceparent: 'garbage' } });
    expect(up.received[0]!.headers.traceparent).toBe(tp);
    const made = up.received[1]!.headers.traceparent as string;
    expect(made).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // The trace id is the request id's hex digits, so logs and traces line up.
    expect(made.slice(3, 35)).toBe((r.headers['x-request-id'] as string).replace(/-/g, ''));
    expect(up.received[2]!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  test.each([['nginx-style 32 hex', 'a3f1c2d4e5b6978812345678abcdef01'], ['short', 'portal-7'], ['UUID-length, not hex', 'x'.repeat(36)]])(
    'a client id that is not a UUID (%s), with no traceparent: a valid new trace id is made',
    async (_kind, id) => {
      await send(gw.port, '/t4', { headers: { 'x-request-id': id } });
      const made = up.received[0]!.headers.traceparent as string;
      expect(made).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(made.slice(3, 35)).not.toBe('0'.repeat(32));
    },
  );
});

describe('headers across the hop', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream((_req, res) => {
      res.setHeader('Connection', 'keep-alive, X-Upstream-Secret');
      res.setHeader('X-Upstream-Secret', 'internal');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.setHeader('Proxy-Authenticate', 'Basic');
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('X-Request-Id', 'upstream-made-this');
      res.end('ok');
    });
    gw = await startGateway(`
server: { trustProxy: [10.9.0.0/16] }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('hop-by-hop request headers, and those named in Connection, do not reach the upstream', async () => {
    await send(gw.port, '/h', {
      headers: { connection: 'keep-alive, X-Secret-Hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=9', te: 'gzip, deflate', 'proxy-authorization': 'Basic eA==', 'x-kept': 'yes' },
    });
    const h = up.received[0]!.headers;
    // TE is hop-by-hop (only `trailers`, which the gateway relays, is passed on: see e2e-http-correctness).
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization']) expect(h[name]).toBeUndefined();
    expect(h.connection).not.toMatch(/secret/i);
    expect(h['x-kept']).toBe('yes');
  });

  test('hop-by-hop response headers do not reach the client; repeated Set-Cookie survives', async () => {
    const r = await send(gw.port, '/h');
    expect(r.headers['x-upstream-secret']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=5');
    expect(r.headers['proxy-authenticate']).toBeUndefined();
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-request-id']).not.toBe('upstream-made-this');
    expect(r.body).toBe('ok');
  });

  test('spoofed forwarding headers from an untrusted client are replaced, whatever their spelling', async () => {
    await send(gw.port, '/f', {
      headers: { 'x-forwarded-for': '6.6.6.6', x_forwarded_for: '6.6.6.6', 'X-Forwarded_Host': 'evil', 'x-forwarded-host': 'evil', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-forwarded-proto': 'https', host: 'portal.example' },
    });
    const h = up.received[0]!.headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe('portal.example');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x_forwarded_for']).toBeUndefined();
    expect(h['x-forwarded_host']).toBeUndefined();
    expect(h['x-real-ip']).toBeUndefined();
    expect(h.forwarded).toBeUndefined();
    expect(JSON.stringify(up.received[0]!.rawHeaders)).not.toContain('6.6.6.6');
  });

  test('the client Host is preserved by default', async () => {
    await send(gw.port, '/host', { headers: { host: 'portal.example:8443' } });
    expect(up.received[0]!.headers.host).toBe('portal.example:8443');
  });

  test('a trusted proxy in front may pass the client address on', async () => {
    const trusting = await startGateway(`
server: { trustProxy: [127.0.0.1] }
upstreams: { app: { url: ${up.url}, preserveHost: false } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      await send(trusting.port, '/t', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', host: 'portal.example' } });
      const h = up.received[0]!.headers;
      expect(h['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
      expect(h['x-forwarded-proto']).toBe('https');
      expect(h.host).toBe(`127.0.0.1:${up.port}`);
    } finally {
      await trusting.stop();
    }
  });

  test('huge request headers are refused with 431 and never reach the upstream', async () => {
    const r = await send(gw.port, '/big', { headers: { 'x-big': 'a'.repeat(20_000) } });
    expect(r.status).toBe(431);
    expect(up.received).toHaveLength(0);
  });
});

describe('upstream failures', () => {
  test('a refused connection is a 502 JSON error with the request id, and the gateway keeps serving', async () => {
    const port = await closedPort();
    const gw = await startGateway(`
upstreams: { dead: { url: http://127.0.0.1:${port} } }
routes: [ { name: all, path: /, upstream: dead } ]
`);
    try {
      const r = await send(gw.port, '/x', { headers: { 'x-request-id': 'r-502' } });
      expect(r.status).toBe(502);
      expect(json(r)).toEqual({ error: { code: 'UPSTREAM_CONNECT_FAILED', message: expect.any(String), requestId: 'r-502' } });
      const again = await send(gw.port, '/x');
      expect(again.status).toBe(502);
      await until(() => gw.logs.lines.some((l) => l.reqId === 'r-502' && l.msg === 'upstream request failed'));
    } finally {
      await gw.stop();
    }
  });

  test('an upstream that sends no headers within timeoutMs gets a 504', async () => {
    const hang = await startUpstream(() => {
      /* never answers */
    });
    const gw = await startGateway(`
upstreams: { slow: { url: ${hang.url}, timeoutMs: 300 } }
routes: [ { name: all, path: /, upstream: slow } ]
`);
    try {
      const t0 = Date.now();
      const r = await send(gw.port, '/x');
      expect(r.status).toBe(504);
      expect(json(r).error.code).toBe('UPSTREAM_TIMEOUT');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      await gw.stop();
      await hang.close();
    }
  });

  test('an upstream that dies mid-body truncates the response instead of hanging it', async () => {
    const cut = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('partial');
      setTimeout(() => res.socket!.destroy(), 50);
    });
    const gw = await startGateway(`
upstreams: { cut: { url: ${cut.url} } }
routes: [ { name: all, path: /, upstream: cut } ]
`);
    try {
      await expect(send(gw.port, '/x')).rejects.toThrow();
      const r = await send(gw.port, '/healthz');
      expect(r.status).toBe(200);
    } finally {
      await gw.stop();
      await cut.close();
    }
  });

  test('a client that goes away closes the upstream request', async () => {
    let upstreamClosed = false;
    const hang = await startUpstream(
      (req, res) => {
        res.on('close', () => (upstreamClosed = true));
        void req;
      },
      { recordBody: false },
    );
    const gw = await startGateway(`
upstreams: { slow: { url: ${hang.url}, timeoutMs: 30000 } }
routes: [ { name: all, path: /, upstream: slow } ]
`);
    try {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/wait', agent: false });
      req.on('error', () => undefined);
      req.end();
      await until(() => hang.received.length === 1);
      req.destroy();
      await until(() => upstreamClosed, 3000);
      await until(() => gw.logs.lines.some((l) => l.msg === 'request' && l.aborted === true));
      expect(gw.gw.inFlightRequests).toBe(0);
    } finally {
      await gw.stop();
      await hang.close();
    }
  });

  test('a client aborting mid-upload closes the upstream request', async () => {
    let upstreamClosed = false;
    const sink = await startUpstream(
      (req, res) => {
        req.on('data', () => undefined);
        req.on('close', () => (upstreamClosed = true));
        void res;
      },
      { recordBody: false },
    );
    const gw = await startGateway(`
upstreams: { sink: { url: ${sink.url} } }
routes: [ { name: all, path: /, upstream: sink } ]
`);
    try {
      const sock = connect(gw.port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n' + 'a'.repeat(1000));
      await until(() => sink.received.length === 1);
      sock.destroy();
      await until(() => upstreamClosed, 3000);
    } finally {
      await gw.stop();
      await sink.close();
    }
  });
});

describe('connections and secrets', () => {
  test('upstream connections are kept alive and reused across requests', async () => {
    const ports: number[] = [];
    const up = await startUpstream((req, res) => {
      ports.push(req.socket.remotePort!);
      res.end('ok');
    });
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      for (let i = 0; i < 5; i++) await send(gw.port, `/k${i}`);
      expect(new Set(ports).size).toBe(1);
      expect(up.received[0]!.headers.connection).toBe('keep-alive');
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('a pooled connection idle for idleTimeoutMs is closed by the gateway; a busy one is kept', async () => {
    const closedAt: number[] = [];
    const ports: number[] = [];
    const up = await startUpstream((req, res) => {
      ports.push(req.socket.remotePort!);
      res.end('ok');
    });
    up.server.on('connection', (s) => s.on('close', () => closedAt.push(Date.now())));
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url}, idleTimeoutMs: 400 } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      // In use every 100 ms for a second: never idle long enough to be closed.
      for (let i = 0; i < 10; i++) {
        await send(gw.port, `/busy${i}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(new Set(ports).size).toBe(1);
      expect(closedAt).toHaveLength(0);
      const lastUse = Date.now();
      await until(() => closedAt.length === 1, 3000);
      const idleMs = closedAt[0]! - lastUse;
      // Closed before the timeout is reached (never after), and not long before it.
      expect(idleMs).toBeLessThan(400);
      expect(idleMs).toBeGreaterThanOrEqual(100);
      // The next request opens a new connection and is served.
      expect((await send(gw.port, '/after')).status).toBe(200);
      expect(new Set(ports).size).toBe(2);
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('a client keep-alive connection idle for keepAliveTimeoutMs is closed, not before; one with a request in progress, or in use, is kept', async () => {
    const up = await startUpstream((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow'), 900);
      else res.end('ok');
    });
    const gw = await startGateway(`
server: { keepAliveTimeoutMs: 400 }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    /** One keep-alive connection; `get` sends a request on it and resolves when the whole response is in. */
    const open = () => {
      const socket = connect(gw.port, '127.0.0.1');
      let buffered = '';
      let waiting: ((r: string) => void) | undefined;
      let closedAt = 0;
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        buffered += d;
        const m = /\r\n\r\n/.exec(buffered);
        const length = Number(/content-length: (\d+)/i.exec(buffered)?.[1] ?? -1);
        if (m && length >= 0 && buffered.length >= m.index + 4 + length) {
          const r = buffered;
          buffered = '';
          waiting?.(r);
        }
      });
      socket.on('close', () => (closedAt = Date.now()));
      return {
        get: (path: string) =>
          new Promise<string>((resolve) => {
            waiting = resolve;
            socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
          }),
        closedAt: () => closedAt,
        socket,
      };
    };
    try {
      const idle = open();
      const used = open();
      const slow = open();
      expect(await idle.get('/a')).toMatch(/^HTTP\/1\.1 200/);
      const idleFrom = Date.now();
      const slowAnswer = slow.get('/slow');
      // In use every 150 ms for 1.2 s: never idle long enough to be closed.
      for (let i = 0; i < 8; i++) {
        expect(await used.get(`/u${i}`)).toMatch(/^HTTP\/1\.1 200/);
        await new Promise((r) => setTimeout(r, 150));
      }
      expect(used.closedAt()).toBe(0);
      // A request in progress for longer than the limit is answered on its connection.
      expect(await slowAnswer).toMatch(/slow$/);
      await until(() => idle.closedAt() !== 0, 4000);
      const idleMs = idle.closedAt() - idleFrom;
      // Never before the limit. Node closes 1 s after it: responses announce `Keep-Alive: timeout=N`,
      // and a client that honours it has let go of the connection by then.
      expect(idleMs).toBeGreaterThanOrEqual(400);
      expect(idleMs).toBeLessThan(1900);
      // The others close once idle too.
      await until(() => used.closedAt() !== 0 && slow.closedAt() !== 0, 4000);
      expect((await send(gw.port, '/after')).status).toBe(200);
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('credentials sent by the client never appear in the logs', async () => {
    const up = await startUpstream((_req, res) => {
      res.setHeader('set-cookie', 'session=upstream-cookie-value');
      res.end('ok');
    });
    const gw = await startGateway(`
log: { level: debug }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      await send(gw.port, '/s?token=query-secret-value', { headers: { authorization: 'Bearer header-secret-value', cookie: 'sid=cookie-secret-value' } });
      await until(() => gw.logs.lines.some((l) => l.msg === 'request'));
      const text = gw.logs.text();
      for (const secret of ['header-secret-value', 'cookie-secret-value', 'upstream-cookie-value', 'query-secret-value']) expect(text).not.toContain(secret);
      // The credentials still went upstream unchanged.
      expect(up.received[0]!.headers.authorization).toBe('Bearer header-secret-value');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('response relay (writes batched per loop iteration)', () => {
  let up: Upstream;
  let gw: TestGateway;
  let sentBytes = 0;
  beforeAll(async () => {
    up = await startUpstream(
      (req, res) => {
        const url = new URL(req.url!, 'http://x');
        if (url.pathname === '/burst') {
          // Many small chunks written at once: they reach the gateway as several reads and data events in one loop iteration.
          res.writeHead(200, { 'content-type': 'text/plain' });
          for (let i = 0; i < 2000; i++) res.write(`${i},`);
          res.end('end');
        } else if (url.pathname === '/status') {
          res.writeHead(Number(url.searchParams.get('s')), { etag: '"v1"' });
          res.end();
        } else if (url.pathname === '/echo') {
          res.end(`echo:${url.searchParams.get('n')}`);
        } else if (url.pathname === '/flood') {
          // 256 MiB, written as fast as the gateway takes it.
          const chunk = Buffer.alloc(1024 * 1024, 0x62);
          res.writeHead(200, { 'content-length': String(256 * chunk.length) });
          let n = 0;
          const pump = () => {
            while (n < 256) {
              n++;
              sentBytes += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', pump);
            }
            res.end();
          };
          res.on('close', () => (n = 256));
          pump();
        } else res.end('?');
      },
      { recordBody: false },
    );
    gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  test('a body arriving in many pieces at once reaches the client whole and in order', async () => {
    const r = await send(gw.port, '/burst');
    const expected = Array.from({ length: 2000 }, (_, i) => `${i},`).join('') + 'end';
    expect(r.status).toBe(200);
    expect(r.body).toBe(expected);
  });

  test.each([
    ['GET', 204],
    ['GET', 304],
    ['HEAD', 200],
  ])('%s answered %i completes without a body', async (method, status) => {
    const r = await send(gw.port, `/status?s=${status}`, { method });
    expect(r.status).toBe(status);
    expect(r.body).toBe('');
    expect(r.headers.etag).toBe('"v1"');
  });

  test('concurrent requests each get their own response', async () => {
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => send(gw.port, `/echo?n=${i}`)));
    replies.forEach((r, i) => expect(r.body).toBe(`echo:${i}`));
  });

  test('a client that stops reading pauses the upstream: the gateway does not buffer the body', async () => {
    sentBytes = 0;
    const sock = connect(gw.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.pause();
    sock.write('GET /flood HTTP/1.1\r\nhost: x\r\n\r\n');
    try {
      // The upstream writes until the socket buffers on the way are full, then waits.
      await until(() => sentBytes > 0);
      let last = -1;
      await until(() => {
        const settled = sentBytes === last;
        last = sentBytes;
        return settled;
      }, 5000, 250);
      expect(sentBytes).toBeLessThan(64 * 1024 * 1024);
      // Reading resumes the flow: the whole body arrives.
      let received = 0;
      sock.on('data', (c: Buffer) => (received += c.length));
      sock.resume();
      await until(() => received > 256 * 1024 * 1024, 10_000);
      expect(sentBytes).toBe(256 * 1024 * 1024);
    } finally {
      sock.destroy();
    }
  });
});

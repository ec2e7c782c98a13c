/**
 * Availability under hostile or slow clients and oversized upstream answers:
 * what a client does must never count as the upstream failing (and open its
 * circuit for everyone), and a slow client is cut close to its own limit.
 */
import { connect, type Socket } from 'node:net';
import { createServer, get, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

/** A client that sends a POST's body one byte every `everyMs`; resolves with what came back and when the connection closed. */
function slowUpload(port: number, path: string, bodyBytes: number, everyMs: number): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock: Socket = connect(port, '127.0.0.1', () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${bodyBytes}\r\n\r\n`);
      let sent = 0;
      const timer = setInterval(() => {
        if (sock.destroyed || sent === bodyBytes) return clearInterval(timer);
        sock.write('x');
        sent++;
      }, everyMs);
      sock.on('close', () => clearInterval(timer));
    });
    let reply = '';
    sock.on('data', (c) => (reply += c.toString()));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ reply, ms: performance.now() - started }));
    // Bounded: a test never waits for ever.
    setTimeout(() => sock.destroy(), 15_000).unref();
  });
}

/** An upstream that reads the whole body, then answers 200 with its length. */
function readsBody(): Promise<Upstream> {
  return startUpstream((_req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`got ${body.length}`);
  });
}

describe('slow uploads are the client\'s problem, not the upstream\'s', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await readsBody();
    gw = await startGateway(`
admin: { port: 0 }
server: { headersTimeoutMs: 2000, requestTimeoutMs: 2500 }
upstreams:
  app:
    url: ${up.url}
    timeoutMs: 1000
    breaker: { minRequests: 3, errorPercent: 50, openMs: 60000 }
  monolith: { url: ${up.url} }
routes:
  - { name: streamed, path: /streamed, upstream: app, replayBodyBytes: 0, retry: { enabled: false } }
  - { name: kept, path: /kept, upstream: app, fallback: monolith }
  - { name: other, path: /, upstream: app }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  test('an upload slower than the upstream timeout still gets the upstream\'s answer (streamed and kept for replay)', async () => {
    const [streamed, kept] = await Promise.all([slowUpload(gw.port, '/streamed', 5, 300), slowUpload(gw.port, '/kept', 5, 300)]);
    expect(streamed.reply).toMatch(/^HTTP\/1\.1 200/);
    expect(streamed.reply).toContain('got 5');
    expect(kept.reply).toMatch(/^HTTP\/1\.1 200/);
    expect(kept.reply).toContain('got 5');
  });

  test('clients that never finish get 408 with their request id at requestTimeoutMs, and the circuit stays closed', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => slowUpload(gw.port, i % 2 ? '/streamed' : '/kept', 100, 300)));
    for (const { reply, ms } of results) {
      expect(reply).toMatch(/^HTTP\/1\.1 408/);
      const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
      expect(body.error.code).toBe('REQUEST_TIMEOUT');
      expect(reply).toContain(`x-request-id: ${body.error.requestId}`);
      // requestTimeoutMs 2500, checked every 500 ms (a quarter of headersTimeoutMs).
      expect(ms).toBeGreaterThan(2400);
      expect(ms).toBeLessThan(4500);
    }
    const state = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams.find((u: { name: string }) => u.name === 'app');
    expect(state.breaker).toMatchObject({ state: 'closed', failures: 0 });
    expect(state.inFlight).toBe(0);
    expect((await send(gw.port, '/anything')).status).toBe(200);
  });
});

describe('slowloris: header and request limits are enforced close to their value', () => {
  test('a client sending its headers a byte at a time is cut within 1 s of headersTimeoutMs', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
server: { headersTimeoutMs: 1000, requestTimeoutMs: 5000 }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const { ms, reply } = await new Promise<{ ms: number; reply: string }>((resolve) => {
        const started = performance.now();
        let reply = '';
        const sock = connect(gw.port, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '));
        const timer = setInterval(() => sock.write('a'), 200);
        sock.on('data', (c) => (reply += c.toString()));
        sock.on('error', () => undefined);
        sock.on('close', () => {
          clearInterval(timer);
          resolve({ ms: performance.now() - started, reply });
        });
        setTimeout(() => sock.destroy(), 10_000).unref();
      });
      expect(reply).toMatch(/^HTTP\/1\.1 408/);
      expect(ms).toBeGreaterThan(900);
      expect(ms).toBeLessThan(2000);
      expect(up.received).toHaveLength(0);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('upstream response heads', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    // /cookies: 30 cookies of 600 bytes (18 KB of headers); /huge: 80 KB of headers.
    server = createServer((req, res) => {
      const n = req.url === '/huge' ? 130 : req.url === '/cookies' ? 30 : 0;
      res.setHeader('Set-Cookie', Array.from({ length: n }, (_, i) => `c${i}=${'v'.repeat(600)}`));
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('18 KB of headers (over Node\'s 16 KiB default) pass: the default limit is 64 KiB', async () => {
    const gw = await startGateway(`
upstreams: { app: { url: ${url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      // The test's own client needs a larger limit than Node's default too.
      const r = await new Promise<IncomingMessage>((resolve, reject) => get({ host: '127.0.0.1', port: gw.port, path: '/cookies', maxHeaderSize: 128 * 1024 }, resolve).on('error', reject));
      r.resume();
      expect(r.statusCode).toBe(200);
      expect(r.headers['set-cookie']).toHaveLength(30);
    } finally {
      await gw.stop();
    }
  });

  test('a head over maxResponseHeaderBytes is 502 UPSTREAM_HEADERS_TOO_LARGE and never opens the circuit', async () => {
    const gw = await startGateway(`
admin: { port: 0 }
upstreams:
  app:
    url: ${url}
    maxResponseHeaderBytes: 8192
    breaker: { minRequests: 3, errorPercent: 50, openMs: 60000 }
    retryBudget: { burst: 0, percent: 0 }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      for (let i = 0; i < 8; i++) {
        const r = await send(gw.port, '/cookies');
        expect(r.status).toBe(502);
        expect(json(r).error.code).toBe('UPSTREAM_HEADERS_TOO_LARGE');
      }
      const up = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams[0];
      expect(up.breaker).toMatchObject({ state: 'closed', failures: 0 });
      expect(up.instances[0].consecutiveFailures).toBe(0);
      expect((await send(gw.port, '/small')).status).toBe(200);
      expect(gw.logs.lines.some((l) => l.msg === 'upstream request failed' && l.code === 'UPSTREAM_HEADERS_TOO_LARGE')).toBe(true);
    } finally {
      await gw.stop();
    }
  });
});

describe('a client that half-closes its connection after its request', () => {
  test('is treated as gone, as nginx does: the upstream request is cancelled and nothing stays in flight', async () => {
    let upstreamClosedEarly = false;
    const up = await startUpstream((_req, res) => {
      const timer = setTimeout(() => res.end('late'), 1500);
      res.on('close', () => {
        if (!res.writableFinished) upstreamClosedEarly = true;
        clearTimeout(timer);
      });
    });
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const sock = connect(gw.port, '127.0.0.1', () => sock.end('GET /half HTTP/1.1\r\nHost: a\r\n\r\n'));
      sock.on('error', () => undefined);
      sock.resume();
      await until(() => up.received.length === 1);
      await until(() => upstreamClosedEarly, 3000);
      await until(() => gw.gw.inFlightRequests === 0 && gw.gw.table.upstreams.get('app')!.inFlight === 0, 3000);
      sock.destroy();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});


describe('review findings', () => {
  test('an upstream that stops reading a streamed body times out (504) even without a client limit', async () => {
    const { createServer: createHttpServer } = await import('node:http');
    const stuck = createHttpServer(() => undefined);
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
    const gw = await startGateway(`
admin: { port: 0 }
server: { requestTimeoutMs: 0 }
upstreams: { app: { url: http://127.0.0.1:${(stuck.address() as AddressInfo).port}, timeoutMs: 800 } }
routes: [ { name: all, path: /, upstream: app, replayBodyBytes: 0 } ]
`);
    try {
      const started = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = request({ host: '127.0.0.1', port: gw.port, path: '/up', method: 'POST', headers: { 'content-length': 64 << 20 }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', () => resolve(0));
        const chunk = Buffer.alloc(1 << 20);
        let sent = 0;
        const pump = () => {
          while (sent < 64 && req.write(chunk)) sent++;
          if (sent < 64) req.once('drain', pump);
        };
        pump();
      });
      expect(status).toBe(504);
      expect(performance.now() - started).toBeLessThan(3000);
      await until(() => gw.gw.inFlightRequests === 0 && gw.gw.table.upstreams.get('app')!.inFlight === 0, 3000);
    } finally {
      await gw.stop();
      stuck.closeAllConnections();
      await new Promise<void>((r) => stuck.close(() => r()));
    }
  });

  test('a half-open trial whose client is too slow to send does not reopen the circuit', async () => {
    let failing = true;
    const up = await startUpstream((_req, res, body) => {
      res.writeHead(failing ? 500 : 200);
      res.end(`got ${body.length}`);
    });
    const gw = await startGateway(`
admin: { port: 0 }
server: { headersTimeoutMs: 1000, requestTimeoutMs: 1200 }
upstreams: { app: { url: ${up.url}, breaker: { minRequests: 1, errorPercent: 50, openMs: 300 } } }
routes: [ { name: all, path: /, upstream: app, replayBodyBytes: 0, retry: { enabled: false } } ]
`);
    try {
      const breaker = gw.gw.table.upstreams.get('app')!.breaker;
      expect((await send(gw.port, '/x')).status).toBe(500);
      expect(breaker.state).toBe('open');
      failing = false;
      await new Promise((r) => setTimeout(r, 400));
      // The trial is an upload that never completes: the client's 408, not the upstream's failure.
      const { reply } = await slowUpload(gw.port, '/slow', 100, 300);
      expect(reply).toMatch(/^HTTP\/1\.1 408/);
      expect(breaker.state).toBe('half-open');
      // The next request is the trial now, and the healthy upstream closes the circuit.
      expect((await send(gw.port, '/y')).status).toBe(200);
      expect(breaker.state).toBe('closed');
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('a headers timeout of a later pipelined request: the earlier request gets its own answer first', async () => {
    const up = await startUpstream((_req, res) => setTimeout(() => res.end('slow answer'), 1200));
    const gw = await startGateway(`
server: { headersTimeoutMs: 500, requestTimeoutMs: 5000 }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const reply = await new Promise<string>((resolve) => {
        let out = '';
        const sock = connect(gw.port, '127.0.0.1', () => sock.write('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nX-Part: '));
        sock.on('data', (c) => (out += c.toString()));
        sock.on('error', () => undefined);
        sock.on('close', () => resolve(out));
        setTimeout(() => sock.destroy(), 6000).unref();
      });
      const statuses = [...reply.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      // A was complete: it gets its own answer, never the 408 of B's stalled head (B is refused or closed after).
      expect(statuses[0]).toBe(200);
      expect(statuses.slice(1).every((st) => st === 408)).toBe(true);
      expect(reply).toContain('slow answer');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});


/**
 * HTTP details a portal notices: a streamed response's head is sent at once,
 * trailers and 103 Early Hints are relayed, and a service mounted under a
 * stripped prefix can redirect and set cookies within that prefix.
 */
import { request, type IncomingMessage } from 'node:http';
import { startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/servers';

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ res: IncomingMessage; body: string; headAtMs: number; infos: Array<{ statusCode: number; headers: Record<string, unknown> }> }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const infos: Array<{ statusCode: number; headers: Record<string, unknown> }> = [];
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const headAtMs = performance.now() - started;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ res, body, headAtMs, infos }));
    });
    req.on('information', (info) => infos.push({ statusCode: info.statusCode, headers: info.headers }));
    req.on('error', reject);
    req.end();
  });
}

describe('streams, trailers and interim answers', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.flushHeaders();
        setTimeout(() => res.end('data: first\n\n'), 800);
      } else if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'X-Checksum' });
        res.write('abc');
        res.addTrailers({ 'X-Checksum': 'sha256=abc' });
        res.end();
      } else if (req.url === '/hints') {
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style', 'x-internal': 'keep-out' });
        setTimeout(() => res.end('page'), 50);
      } else res.end('ok');
    });
    gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  test('an event stream\'s head reaches the client before its first event', async () => {
    const r = await get(gw.port, '/events', { accept: 'text/event-stream' });
    expect(r.res.headers['content-type']).toBe('text/event-stream');
    expect(r.headAtMs).toBeLessThan(500);
    expect(r.body).toBe('data: first\n\n');
  });

  test('trailer fields are relayed to a client that sent TE: trailers, and only to it', async () => {
    const withTe = await get(gw.port, '/trailers', { te: 'trailers' });
    expect(withTe.body).toBe('abc');
    expect(withTe.res.trailers).toEqual({ 'x-checksum': 'sha256=abc' });
    expect(up.received.at(-1)!.headers.te).toBe('trailers');
    const without = await get(gw.port, '/trailers');
    expect(without.body).toBe('abc');
    expect(without.res.trailers).toEqual({});
    expect(up.received.at(-1)!.headers.te).toBeUndefined();
  });

  test('103 Early Hints are relayed before the final answer', async () => {
    const r = await get(gw.port, '/hints');
    expect(r.res.statusCode).toBe(200);
    expect(r.body).toBe('page');
    expect(r.infos).toHaveLength(1);
    expect(r.infos[0]!.statusCode).toBe(103);
    expect(r.infos[0]!.headers.link).toBe('</style.css>; rel=preload; as=style');
    expect(r.infos[0]!.headers['x-request-id']).toBe(r.res.headers['x-request-id']);
  });
});

describe('interim answers and clients that cannot take them', () => {
  test('a Link list Node refuses to relay as a hint: the 200 still arrives', async () => {
    const up = await startUpstream((_req, res) => {
      // Written raw: Node's own writeEarlyHints refuses this legal Link list too.
      res.socket!.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload, </b.js>; rel=preload\r\n\r\n');
      setTimeout(() => res.end('page'), 20);
    });
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const r = await get(gw.port, '/x');
      expect(r.res.statusCode).toBe(200);
      expect(r.body).toBe('page');
      // An HTTP/1.0 client never gets a 1xx (RFC 9110 §15.2).
      const raw = await new Promise<string>((resolve) => {
        const { connect } = require('node:net') as typeof import('node:net');
        let out = '';
        const sock = connect(gw.port, '127.0.0.1', () => sock.write('GET /y HTTP/1.0\r\n\r\n'));
        sock.on('data', (c: Buffer) => (out += c.toString()));
        sock.on('close', () => resolve(out));
      });
      expect(raw).toMatch(/^HTTP\/1\.1 200 /);
      expect(raw).not.toContain(' 103 ');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('a service mounted under a stripped prefix', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      const self = `http://${req.headers.host}`;
      if (req.url === '/login') {
        res.writeHead(302, { location: '/hello?x=1', 'set-cookie': ['sid=1; Path=/; HttpOnly', 'pref=a; path=/settings; SameSite=Lax', 'plain=1'] });
        res.end();
      } else if (req.url === '/absolute') {
        res.writeHead(301, { location: `${self}/moved` });
        res.end();
      } else if (req.url === '/elsewhere') {
        res.writeHead(302, { location: 'https://sso.example/start' });
        res.end();
      } else res.end('ok');
    });
    gw = await startGateway(`
upstreams:
  svc: { url: ${up.url}, preserveHost: false }
routes:
  - { name: svc, path: /svc, upstream: svc, stripPrefix: /svc }
  - { name: raw, path: /raw, upstream: svc, stripPrefix: /raw, rewriteLocation: false, rewriteCookiePath: false }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  test('an absolute-path Location and the cookies\' Path get the prefix back', async () => {
    const r = await get(gw.port, '/svc/login');
    expect(r.res.statusCode).toBe(302);
    expect(r.res.headers.location).toBe('/svc/hello?x=1');
    expect(r.res.headers['set-cookie']).toEqual(['sid=1; Path=/svc; HttpOnly', 'pref=a; path=/svc/settings; SameSite=Lax', 'plain=1']);
  });

  test('a Location on the upstream\'s own origin becomes a path under the prefix; another site\'s is left alone', async () => {
    expect((await get(gw.port, '/svc/absolute')).res.headers.location).toBe('/svc/moved');
    expect((await get(gw.port, '/svc/elsewhere')).res.headers.location).toBe('https://sso.example/start');
  });

  test('rewriteLocation: false and rewriteCookiePath: false leave them as the service sent them', async () => {
    const r = await get(gw.port, '/raw/login');
    expect(r.res.headers.location).toBe('/hello?x=1');
    expect(r.res.headers['set-cookie']).toEqual(['sid=1; Path=/; HttpOnly', 'pref=a; path=/settings; SameSite=Lax', 'plain=1']);
  });
});

/**
 * server.tls with real certificates (made here by openssl): HTTPS on the
 * listening port, the upstream told `X-Forwarded-Proto: https`, HSTS, the
 * minimum version, SNI selection, the plain listener that redirects to
 * https, certificate rotation under traffic without a failed request, and a
 * bad rotated pair kept out.
 */
import { copyFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';
import { makeCert, type TestCert } from './helpers/tls';
import { WebSocket, WebSocketServer } from 'ws';

jest.setTimeout(30_000);

interface TlsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  cert: PeerCertificate;
  protocol: string | null;
}

function get(port: number, path: string, opts: { servername?: string; ca: Buffer[]; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, servername: opts.servername ?? 'portal.test', ca: opts.ca, agent: false, ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}), headers: { host: opts.servername ?? 'portal.test' } }, (res) => {
      const socket = res.socket as import('node:tls').TLSSocket;
      const cert = socket.getPeerCertificate();
      const protocol = socket.getProtocol();
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, cert, protocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS on the listening port', () => {
  let up: Upstream;
  let gw: TestGateway;
  let dir: string;
  let main: TestCert;
  let api: TestCert;
  const certFile = () => join(dir, 'tls.crt');
  const keyFile = () => join(dir, 'tls.key');

  beforeAll(async () => {
    up = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'strangler-tls-live-'));
    main = makeCert(['portal.test', 'localhost']);
    api = makeCert(['api.test', '*.api.test']);
    copyFileSync(main.certFile, certFile());
    copyFileSync(main.keyFile, keyFile());
    gw = await startGateway(`
server:
  tls:
    certFile: ${certFile()}
    keyFile: ${keyFile()}
    certificates:
      - { hosts: ["*.api.test", api.test], certFile: ${api.certFile}, keyFile: ${api.keyFile} }
  redirectHttp: { port: 0 }
  hsts: { maxAgeSec: 31536000, includeSubDomains: true }
admin: { port: 0 }
reload: { debounceMs: 20, pollIntervalMs: 200 }
upstreams: { app: { url: ${up.url} } }
routes:
  - { name: app, path: /, upstream: app }
`);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  test('requests are served over TLS; the upstream is told https; every answer carries HSTS', async () => {
    const r = await get(gw.port, '/hello?x=1', { ca: [main.cert] });
    expect(r.status).toBe(200);
    expect(r.cert.subject.CN).toBe('portal.test');
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(up.received.at(-1)!.headers['x-forwarded-proto']).toBe('https');
    // The gateway's own answers too (a 404 for a path nothing serves is still an answer over HTTPS).
    const health = await get(gw.port, '/healthz', { ca: [main.cert] });
    expect(health.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    // A plain-HTTP request to the TLS port is not served.
    await expect(send(gw.port, '/hello')).rejects.toThrow();
    // A request Node cannot parse is answered raw on the socket: with HSTS too.
    const raw = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: gw.port, servername: 'portal.test', ca: [main.cert] }, () => s.write('GET / HTTP/1.1\r\nHost: portal.test\r\nBad Header\r\n\r\n'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toContain('strict-transport-security: max-age=31536000; includeSubDomains\r\n');
  });

  test('the certificate is chosen by SNI name: exact and *.domain names get theirs, others the default', async () => {
    expect((await get(gw.port, '/', { servername: 'x.api.test', ca: [api.cert] })).cert.subject.CN).toBe('api.test');
    expect((await get(gw.port, '/', { servername: 'api.test', ca: [api.cert] })).cert.subject.CN).toBe('api.test');
    expect((await get(gw.port, '/', { servername: 'localhost', ca: [main.cert] })).cert.subject.CN).toBe('portal.test');
    // Two labels deep is not *.api.test: the default certificate (which does not name it: the client refuses it).
    await expect(get(gw.port, '/', { servername: 'a.b.api.test', ca: [api.cert] })).rejects.toThrow();
  });

  test('the plain listener answers 308 to https with the same host, path and query, except the health path; no HSTS over plain HTTP', async () => {
    const r = await send(gw.gw.redirectPort!, '/orders/7?view=full', { headers: { host: 'portal.test:8080' } });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe(`https://portal.test:${gw.port}/orders/7?view=full`);
    expect(r.headers['strict-transport-security']).toBeUndefined();
    expect(up.received.some((x) => x.url === '/orders/7?view=full')).toBe(false);
    const health = await send(gw.gw.redirectPort!, '/healthz', { headers: { host: 'portal.test' } });
    expect(health.status).toBe(200);
    expect((await send(gw.gw.redirectPort!, '/x', { headers: { host: 'evil.test/@x' } })).status).toBe(400);
  });

  test('rotated certificate files are swapped in under traffic without a failed request; a bad pair is kept out', async () => {
    const next = makeCert(['portal.test', 'localhost']);
    let failed = 0;
    let served = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          // Either certificate is fine during the swap; nothing may fail.
          const r = await get(gw.port, '/', { ca: [main.cert, next.cert] });
          if (r.status === 200) served++;
          else failed++;
        } catch {
          failed++;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    // As cert-manager does: new files beside, renamed into place.
    copyFileSync(next.keyFile, `${keyFile()}.new`);
    copyFileSync(next.certFile, `${certFile()}.new`);
    renameSync(`${keyFile()}.new`, keyFile());
    renameSync(`${certFile()}.new`, certFile());
    await until(() => gw.gw.reloads().some((x) => x.trigger === 'tls' && x.outcome === 'applied'), 5000);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await loop;
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(5);
    expect((await get(gw.port, '/', { ca: [next.cert] })).cert.fingerprint256).toBe(new (require('node:crypto').X509Certificate)(next.cert).fingerprint256);
    // A key that does not match the certificate: refused, the served certificate stays.
    writeFileSync(keyFile(), makeCert(['other.test']).key);
    await until(() => gw.gw.reloads().some((x) => x.trigger === 'tls' && x.outcome === 'failed'), 5000);
    expect(gw.gw.lastReloadError!.problems[0]!.message).toMatch(/does not match the certificate/);
    expect((await get(gw.port, '/', { ca: [next.cert] })).status).toBe(200);
    const reloads = json(await send(gw.gw.adminPort!, '/reloads')).reloads as Array<{ trigger: string; outcome: string; changes?: string[] }>;
    expect(reloads.find((x) => x.trigger === 'tls' && x.outcome === 'applied')!.changes![0]).toMatch(/^TLS certificates reloaded: CN=portal\.test until /);
    // Put the pair back together: served again.
    writeFileSync(keyFile(), next.key);
    await until(() => gw.gw.lastReloadError === undefined, 5000);
  });
});

describe('WebSockets over TLS', () => {
  test('wss:// is upgraded on the TLS port and echoes through to a plain ws upstream, told it came over https', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    let proto: unknown;
    wss.on('connection', (ws, req) => {
      proto = req.headers['x-forwarded-proto'];
      ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
    });
    const c = makeCert(['portal.test']);
    const gw = await startGateway(`
server: { tls: { certFile: ${c.certFile}, keyFile: ${c.keyFile} } }
upstreams: { live: { url: "http://127.0.0.1:${(wss.address() as import('node:net').AddressInfo).port}" } }
routes: [{ name: live, path: /live, upstream: live }]
`);
    try {
      // (servername is passed on to tls.connect; ws's types do not list it.)
      const client = new WebSocket(`wss://127.0.0.1:${gw.port}/live`, { ca: c.cert, servername: 'portal.test' } as import('ws').ClientOptions);
      const reply = await new Promise<string>((resolve, reject) => {
        client.on('open', () => client.send('over tls'));
        client.on('message', (m) => resolve(m.toString()));
        client.on('error', reject);
      });
      expect(reply).toBe('echo:over tls');
      expect(proto).toBe('https');
      client.close();
    } finally {
      await gw.stop();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    }
  });
});

describe('TLS settings checked with the table', () => {
  test('strangler validate warns about a certificate expiring within 14 days (and still says OK); /metrics shows each certificate\'s expiry', async () => {
    const soon = makeCert(['soon.test'], { days: 5 });
    const later = makeCert(['later.test'], { days: 90 });
    const dir = mkdtempSync(join(tmpdir(), 'strangler-validate-'));
    const file = join(dir, 'routes.yaml');
    const up = await startUpstream();
    writeFileSync(file, `server: { tls: { certFile: ${later.certFile}, keyFile: ${later.keyFile}, certificates: [{ hosts: [soon.test], certFile: ${soon.certFile}, keyFile: ${soon.keyFile} }] } }\nadmin: { port: 0 }\nupstreams: { app: { url: ${up.url} } }\nroutes: [{ name: app, path: /, upstream: app }]\n`);
    const r = require('node:child_process').spawnSync(process.execPath, [require('./helpers/process').CLI, 'validate', file], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('OK\n');
    expect(r.stderr).toMatch(/^warning: server\.tls\.certificates\[0\]: the certificate CN=soon\.test expires on \S+ \(in [45] days\)\n$/);
    const gw = await startGateway(require('node:fs').readFileSync(file, 'utf8'));
    try {
      const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
      const seconds = (name: string) => Number(new RegExp(`strangler_tls_cert_expiry_seconds\\{name="${name.replace(/[[\]]/g, '\\$&')}"\\} (-?\\d+)`).exec(metrics)?.[1]);
      expect(seconds('server.tls') / 86_400).toBeCloseTo(90, 0);
      expect(seconds('server.tls.certificates[0]') / 86_400).toBeCloseTo(5, 0);
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
    const up = await startUpstream();
    const c = makeCert(['portal.test']);
    const gw = await startGateway(`
server: { tls: { certFile: ${c.certFile}, keyFile: ${c.keyFile}, minVersion: TLSv1.3 } }
upstreams: { app: { url: ${up.url} } }
routes: [{ name: app, path: /, upstream: app }]
`);
    try {
      expect((await get(gw.port, '/', { ca: [c.cert] })).protocol).toBe('TLSv1.3');
      await expect(get(gw.port, '/', { ca: [c.cert], maxVersion: 'TLSv1.2' })).rejects.toThrow();
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('a missing file, a key that does not match, HSTS or a redirect without TLS: the table is refused, each at its place', async () => {
    const { loadTableText } = await import('../src/config/load');
    const a = makeCert(['a.test']);
    const b = makeCert(['b.test']);
    const base = (server: string) => `server: ${server}\nupstreams: { app: { url: "http://127.0.0.1:9" } }\nroutes: [{ name: app, path: /, upstream: app }]\n`;
    const problems = (server: string) => {
      const r = loadTableText(base(server), 't.yaml', {});
      return r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.message}`);
    };
    expect(problems(`{ tls: { certFile: ${a.certFile}, keyFile: ${a.keyFile} } }`)).toEqual([]);
    expect(problems(`{ tls: { certFile: /nonexistent.crt, keyFile: ${a.keyFile} } }`)).toEqual([expect.stringMatching(/^1:\d+ server\.tls: cannot read the certificate \/nonexistent\.crt: ENOENT$/)]);
    expect(problems(`{ tls: { certFile: ${a.certFile}, keyFile: ${b.keyFile} } }`)).toEqual([expect.stringMatching(/server\.tls: the key in .* does not match the certificate/)]);
    expect(problems(`{ tls: { certFile: ${a.keyFile}, keyFile: ${a.keyFile} } }`)).toEqual([expect.stringMatching(/is not a PEM certificate/)]);
    expect(problems('{ hsts: { maxAgeSec: 60 }, redirectHttp: { port: 8080 } }')).toEqual([expect.stringMatching(/server\.hsts: .* needs server\.tls/), expect.stringMatching(/server\.redirectHttp: .* need server\.tls/)]);
  });
});

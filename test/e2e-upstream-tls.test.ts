/**
 * upstreams.<name>.tls with real certificates (made here by openssl): a
 * service that requires a client certificate (mTLS) accepts the gateway and
 * refuses a bare client; the CA and SNI name are the upstream's own; a
 * renewed client certificate is used by new connections; insecureSkipVerify
 * works and is warned about at every load; expiry in /upstreams and /metrics.
 */
import { copyFileSync, mkdtempSync, renameSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { json, send, startGateway, until } from './helpers/servers';
import { makeCert, type TestCert } from './helpers/tls';

jest.setTimeout(30_000);

describe('TLS to upstreams', () => {
  let service: Server;
  let port: number;
  let serviceCert: TestCert;
  let gatewayCert: TestCert;
  let renewed: TestCert;
  let dir: string;
  /** The client certificate's CN of each request the service answered. */
  const seen: string[] = [];

  beforeAll(async () => {
    serviceCert = makeCert(['svc.internal']);
    gatewayCert = makeCert(['gateway']);
    renewed = makeCert(['gateway-renewed']);
    dir = mkdtempSync(join(tmpdir(), 'strangler-mtls-'));
    copyFileSync(gatewayCert.certFile, join(dir, 'client.crt'));
    copyFileSync(gatewayCert.keyFile, join(dir, 'client.key'));
    // The service trusts the gateway's certificates (both), and requires one.
    service = createServer({ cert: serviceCert.cert, key: serviceCert.key, requestCert: true, rejectUnauthorized: true, ca: [gatewayCert.cert, renewed.cert] }, (req, res) => {
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '';
      seen.push(String(cn));
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${cn}`);
    });
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
    port = (service.address() as AddressInfo).port;
  });
  afterAll(async () => {
    service.closeAllConnections();
    await new Promise((r) => service.close(r));
  });

  test('mTLS: the service accepts the gateway (its CA, its SNI name, its client certificate) and refuses a bare client; renewed files are used by new connections', async () => {
    const gw = await startGateway(`
admin: { port: 0 }
reload: { debounceMs: 20, pollIntervalMs: 200 }
upstreams:
  svc:
    url: https://127.0.0.1:${port}
    tls: { caFile: ${serviceCert.certFile}, certFile: ${join(dir, 'client.crt')}, keyFile: ${join(dir, 'client.key')}, servername: svc.internal }
  nocert:
    url: https://127.0.0.1:${port}
    tls: { caFile: ${serviceCert.certFile}, servername: svc.internal }
routes:
  - { name: svc, path: /svc, upstream: svc }
  - { name: nocert, path: /nocert, upstream: nocert }
`);
    try {
      const r = await send(gw.port, '/svc/x');
      expect(r.status).toBe(200);
      expect(r.body).toBe('hello gateway');
      // Without a client certificate the service refuses the handshake: a 502 from the gateway.
      expect((await send(gw.port, '/nocert/x')).status).toBe(502);
      // A bare client straight to the service is refused too.
      await expect(
        new Promise((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/', ca: serviceCert.cert, servername: 'svc.internal', agent: false }, resolve);
          req.on('error', reject);
          req.end();
        }),
      ).rejects.toThrow();
      const ups = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams as Array<{ name: string; tls?: { clientCertificate: { subject: string; notAfter: string } | null } }>;
      expect(ups.find((u) => u.name === 'svc')!.tls!.clientCertificate).toMatchObject({ subject: 'CN=gateway' });
      expect((await send(gw.gw.adminPort!, '/metrics')).body).toMatch(/strangler_tls_cert_expiry_seconds\{name="upstreams\.svc\.tls"\} \d+/);
      // The client certificate is renewed (files renamed into place): the upstream is rebuilt, new connections use it.
      copyFileSync(renewed.keyFile, join(dir, 'client.key.new'));
      copyFileSync(renewed.certFile, join(dir, 'client.crt.new'));
      renameSync(join(dir, 'client.key.new'), join(dir, 'client.key'));
      renameSync(join(dir, 'client.crt.new'), join(dir, 'client.crt'));
      await until(() => gw.gw.reloads().some((x) => x.trigger === 'tls' && x.outcome === 'applied'), 5000);
      expect((await send(gw.port, '/svc/y')).body).toBe('hello gateway-renewed');
      expect(gw.gw.reloads()[0]).toMatchObject({ trigger: 'tls', changes: ['upstream TLS files reloaded: svc'] });
    } finally {
      await gw.stop();
    }
  });

  test('a self-signed service is refused without its CA; insecureSkipVerify accepts it, warns at every load, and shows in /routes', async () => {
    const gw = await startGateway(`
admin: { port: 0 }
upstreams:
  strict: { url: https://127.0.0.1:${port}, tls: { certFile: ${gatewayCert.certFile}, keyFile: ${gatewayCert.keyFile} } }
  lax: { url: https://127.0.0.1:${port}, tls: { certFile: ${gatewayCert.certFile}, keyFile: ${gatewayCert.keyFile}, insecureSkipVerify: true } }
routes:
  - { name: strict, path: /strict, upstream: strict }
  - { name: lax, path: /lax, upstream: lax }
`);
    try {
      expect((await send(gw.port, '/strict')).status).toBe(502);
      expect((await send(gw.port, '/lax')).status).toBe(200);
      expect(gw.logs.lines.filter((l) => l.msg === 'upstream lax: insecureSkipVerify is on: its certificate is not verified, anyone on the path can pose as it')).toHaveLength(1);
      expect(json(await send(gw.gw.adminPort!, '/routes')).upstreams.lax.tls.insecureSkipVerify).toBe(true);
    } finally {
      await gw.stop();
    }
  });

  test('the table is refused when a file is missing, a client key does not match, or TLS settings name a plain-HTTP upstream', async () => {
    const { loadTableText } = await import('../src/config/load');
    const problems = (tls: string, url = `https://127.0.0.1:${port}`) => {
      const r = loadTableText(`upstreams: { s: { url: "${url}", tls: ${tls} } }\nroutes: [{ name: s, path: /, upstream: s }]\n`, 't.yaml', {});
      return r.ok ? [] : r.problems.map((p) => p.message);
    };
    expect(problems(`{ caFile: ${serviceCert.certFile} }`)).toEqual([]);
    expect(problems('{ caFile: /nonexistent.pem }')).toEqual(['upstreams.s.tls: cannot read the CA file /nonexistent.pem: ENOENT']);
    expect(problems(`{ certFile: ${gatewayCert.certFile}, keyFile: ${renewed.keyFile} }`)).toEqual([expect.stringMatching(/^upstreams\.s\.tls: the key in .* does not match the certificate/)]);
    expect(problems(`{ certFile: ${gatewayCert.certFile} }`)).toEqual([expect.stringMatching(/certFile and keyFile go together/)]);
    expect(problems(`{ caFile: ${serviceCert.certFile} }`, 'http://127.0.0.1:9')).toEqual(['upstreams.s.tls: TLS settings need https:// URLs']);
  });
});

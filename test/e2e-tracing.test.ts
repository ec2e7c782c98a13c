/**
 * OpenTelemetry tracing (`tracing`): a local OTLP/HTTP receiver decodes what
 * the gateway exports. The span tree and attributes of a proxied request, a
 * retry, a fallback, an auth refusal, a forward-auth call and a shadowed
 * request; parent-based sampling with an incoming sampled or unsampled
 * traceparent; the traceparent sent upstream carries the attempt's span; the
 * trace id in the access log; no credential in any attribute; a collector
 * that is down or slow changes nothing for clients, its dropped spans are
 * counted; without `tracing` the SDK is not even loaded.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { decodeTraces, type DecodedSpan } from './helpers/otlp';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

jest.setTimeout(30_000);

type Span = DecodedSpan;

/** An OTLP/HTTP receiver (protobuf, OTLP's default): every span it is sent, flattened, with its attributes as a plain object. */
class Receiver {
  readonly spans: Span[] = [];
  readonly headers: IncomingMessage['headers'][] = [];
  readonly bodies: string[] = [];
  server!: Server;
  port = 0;
  /** 'ok', or 'hang' (never answers: a slow collector). */
  mode: 'ok' | 'hang' = 'ok';

  async start(): Promise<this> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.mode === 'hang') return;
        const body = Buffer.concat(chunks);
        this.headers.push(req.headers);
        // Searched for secrets as bytes: protobuf strings are their UTF-8 bytes.
        this.bodies.push(body.toString('latin1'));
        if (req.url === '/v1/traces' && req.headers['content-type'] === 'application/x-protobuf') this.spans.push(...decodeTraces(body));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  inTrace(traceId: string): Span[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const SERVER = 2;
const CLIENT = 3;
const TOKEN = 'collector-api-key-5f3a';

describe('tracing with a collector', () => {
  let receiver: Receiver;
  let app: Upstream;
  let shadow: Upstream;
  let auth: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    receiver = await new Receiver().start();
    app = await startUpstream();
    shadow = await startUpstream();
    // A forward-auth endpoint: the user "ada" with the right cookie.
    auth = await startUpstream((req, res) => {
      if (req.headers.cookie === 'sid=good-session') res.writeHead(200, { 'x-user-id': 'ada' }).end();
      else res.writeHead(401).end();
    });
    const dead = await closedPort();
    gw = await startGateway(
      `
admin: { port: 0 }
auth:
  forward: { url: "${auth.url}/check", cacheMs: 0 }
tracing:
  otlp: { endpoint: "http://127.0.0.1:${receiver.port}", headers: { authorization: "\${OTLP_TOKEN}" } }
  sampleRatio: 1
  serviceName: portal-gateway
  scheduledDelayMs: 20
upstreams:
  app: { url: ${app.url} }
  pair: { urls: ["http://127.0.0.1:${dead}", "${app.url}"] }
  dead: { url: "http://127.0.0.1:${dead}", breaker: { minRequests: 1000 } }
  next: { url: ${shadow.url} }
routes:
  - { name: orders, path: "/api/orders/{id}", upstream: app }
  - { name: retried, path: /retried, upstream: pair }
  - { name: users, path: /users, upstream: dead, fallback: app }
  - { name: private, path: /private, upstream: app, auth: required }
  - { name: invoices, path: /invoices, upstream: app, shadow: { upstream: next } }
`,
      { OTLP_TOKEN: TOKEN },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await Promise.all([receiver?.close(), app?.close(), shadow?.close(), auth?.close()]);
  });

  /** The spans of the request whose server span carries this request id, once they have all arrived. */
  async function traceOf(requestId: string, count: number): Promise<Span[]> {
    await until(() => {
      const server = receiver.spans.find((s) => s.attributes['strangler.request_id'] === requestId);
      return server !== undefined && receiver.inTrace(server.traceId).length >= count;
    }, 5000);
    const server = receiver.spans.find((s) => s.attributes['strangler.request_id'] === requestId)!;
    return receiver.inTrace(server.traceId);
  }

  test('a proxied request: a server span named by the route template, an attempt span under it whose id the upstream gets', async () => {
    app.received.length = 0;
    const r = await send(gw.port, '/api/orders/42?secret=abc', { headers: { 'x-request-id': 'tr-1' } });
    expect(r.status).toBe(200);
    const spans = await traceOf('tr-1', 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const attempt = spans.find((s) => s.kind === CLIENT)!;
    expect(server.name).toBe('GET /api/orders/{id}');
    expect(server.service).toBe('portal-gateway');
    expect(server.parentSpanId).toBeUndefined();
    expect(server.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.route': '/api/orders/{id}', 'http.response.status_code': 200, 'strangler.route': 'orders', 'strangler.upstream': 'app' });
    // Never the raw path or the query.
    expect(JSON.stringify(server.attributes)).not.toContain('42');
    expect(JSON.stringify(server.attributes)).not.toContain('secret=abc');
    expect(attempt).toMatchObject({ name: 'attempt app', parentSpanId: server.spanId });
    expect(attempt.attributes).toMatchObject({ 'strangler.upstream': 'app', 'http.response.status_code': 200 });
    // The traceparent the upstream got names the attempt span.
    expect(app.received[0]!.headers.traceparent).toBe(`00-${server.traceId}-${attempt.spanId}-01`);
    // The access log line carries the trace id; the collector got the configured header.
    expect(gw.logs.lines.find((l) => l.reqId === 'tr-1' && l.kind === 'access')).toMatchObject({ trace: server.traceId });
    expect(receiver.headers.at(-1)!.authorization).toBe(TOKEN);
  });

  test('a retry: two attempt spans, the second a resend', async () => {
    for (const id of ['tr-retry-a', 'tr-retry-b']) expect((await send(gw.port, '/retried', { headers: { 'x-request-id': id } })).status).toBe(200);
    await until(() => receiver.spans.filter((s) => s.name === 'attempt pair').length >= 3, 5000);
    const a = await traceOf('tr-retry-a', 2);
    const b = await traceOf('tr-retry-b', 2);
    const retried = [a, b].find((t) => t.filter((s) => s.kind === CLIENT).length === 2)!;
    expect(retried).toBeDefined();
    const attempts = retried.filter((s) => s.kind === CLIENT);
    expect(attempts.find((s) => s.attributes['strangler.error.code'] === 'UPSTREAM_CONNECT_FAILED')).toMatchObject({ status: { code: 2 } });
    expect(attempts.find((s) => s.attributes['http.request.resend_count'] === 1)).toMatchObject({ attributes: { 'http.response.status_code': 200 } });
  });

  test('a fallback: the failed attempt, then a fallback span; the server span says it fell back', async () => {
    expect((await send(gw.port, '/users', { headers: { 'x-request-id': 'tr-fb' } })).status).toBe(200);
    const spans = await traceOf('tr-fb', 3);
    const server = spans.find((s) => s.kind === SERVER)!;
    expect(server.attributes).toMatchObject({ 'strangler.fallback': true, 'strangler.upstream': 'app' });
    expect(spans.find((s) => s.name === 'attempt dead')!.attributes['strangler.error.code']).toBe('UPSTREAM_CONNECT_FAILED');
    expect(spans.find((s) => s.name === 'fallback app')).toMatchObject({ parentSpanId: server.spanId, attributes: { 'strangler.fallback': true, 'http.response.status_code': 200 } });
  });

  test('an auth refusal and an accepted session: the forward-auth call has its span; no credential in any attribute', async () => {
    expect((await send(gw.port, '/private', { headers: { 'x-request-id': 'tr-deny', cookie: 'sid=stolen-session-value' } })).status).toBe(401);
    expect((await send(gw.port, '/private', { headers: { 'x-request-id': 'tr-ok', cookie: 'sid=good-session' } })).status).toBe(200);
    const denied = await traceOf('tr-deny', 2);
    const server = denied.find((s) => s.kind === SERVER)!;
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 401, 'strangler.auth': 'denied' });
    expect(denied.find((s) => s.name === 'forward auth')).toMatchObject({ parentSpanId: server.spanId, attributes: { 'strangler.auth': 'denied', 'http.response.status_code': 401 } });
    const ok = await traceOf('tr-ok', 3);
    expect(ok.find((s) => s.kind === SERVER)!.attributes['strangler.auth']).toBe('ok');
    // The auth endpoint got the forward-auth span's id.
    const check = ok.find((s) => s.name === 'forward auth')!;
    expect(auth.received.at(-1)!.headers.traceparent).toBe(`00-${check.traceId}-${check.spanId}-01`);
    const everything = receiver.bodies.join('\n');
    for (const secret of ['stolen-session-value', 'good-session', TOKEN]) expect(everything).not.toContain(secret);
  });

  test('a shadowed request: the copy is a span of its own trace, linked to the request and marked as shadow', async () => {
    shadow.received.length = 0;
    expect((await send(gw.port, '/invoices', { headers: { 'x-request-id': 'tr-sh' } })).status).toBe(200);
    const spans = await traceOf('tr-sh', 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    await until(() => receiver.spans.some((s) => s.attributes['strangler.shadow'] === true && s.links[0]?.spanId === server.spanId), 5000);
    const copy = receiver.spans.find((s) => s.attributes['strangler.shadow'] === true && s.links[0]?.spanId === server.spanId)!;
    expect(copy.traceId).not.toBe(server.traceId);
    expect(copy.links[0]!.traceId).toBe(server.traceId);
    expect(copy).toMatchObject({ name: 'shadow next', attributes: { 'strangler.route': 'invoices', 'strangler.shadow.outcome': 'match' } });
    expect(shadow.received[0]!.headers.traceparent).toBe(`00-${copy.traceId}-${copy.spanId}-01`);
  });

  test('parent-based: an incoming sampled traceparent is continued, an unsampled one is passed on and not recorded', async () => {
    const trace = 'aaaabbbbccccddddeeeeffff00001111';
    app.received.length = 0;
    await send(gw.port, '/api/orders/1', { headers: { 'x-request-id': 'tr-parent', traceparent: `00-${trace}-1234567890abcdef-01` } });
    const spans = await traceOf('tr-parent', 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    expect(server).toMatchObject({ traceId: trace, parentSpanId: '1234567890abcdef' });
    expect(app.received[0]!.headers.traceparent).toBe(`00-${trace}-${spans.find((s) => s.kind === CLIENT)!.spanId}-01`);
    const unsampled = `00-${'12'.repeat(16)}-${'34'.repeat(8)}-00`;
    await send(gw.port, '/api/orders/2', { headers: { 'x-request-id': 'tr-unsampled', traceparent: unsampled } });
    expect(app.received[1]!.headers.traceparent).toBe(unsampled);
    // Health checks are not traced.
    expect((await send(gw.port, '/healthz', { headers: { 'x-request-id': 'tr-health' } })).status).toBe(200);
    // Exported spans arrive within the batch delay: a later request's are there, these never are.
    await send(gw.port, '/api/orders/3', { headers: { 'x-request-id': 'tr-after' } });
    await traceOf('tr-after', 2);
    expect(receiver.spans.some((s) => s.attributes['strangler.request_id'] === 'tr-unsampled' || s.traceId === '12'.repeat(16))).toBe(false);
    expect(receiver.spans.some((s) => s.attributes['strangler.request_id'] === 'tr-health')).toBe(false);
    expect(gw.logs.lines.find((l) => l.reqId === 'tr-unsampled' && l.kind === 'access')).toMatchObject({ trace: '12'.repeat(16) });
  });

  test('the collector\'s header is a secret: never shown by the admin API, and the exported spans are counted', async () => {
    const routes = json(await send(gw.gw.adminPort!, '/routes'));
    expect(JSON.stringify(routes)).not.toContain(TOKEN);
    expect(routes.tracing.otlp.headers.authorization).toBe('***');
    const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
    expect(metrics).toMatch(/strangler_tracing_spans_exported_total [1-9]/);
    expect(metrics).toMatch(/strangler_tracing_spans_dropped_total\{reason="queue_full"\} 0/);
  });
});

describe('a JWKS fetch a request starts', () => {
  test('is a span under the request (a token signed with a key not seen yet); the key server gets its id', async () => {
    const { exportJWK, generateKeyPair, SignJWT } = await import('jose');
    const makeKey = async (kid: string) => {
      const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
      return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
    };
    const k1 = await makeKey('k1');
    const k2 = await makeKey('k2');
    let served = [k1.jwk];
    const seen: Array<string | undefined> = [];
    const keyServer = createServer((req, res) => {
      seen.push(req.headers.traceparent as string | undefined);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((r) => keyServer.listen(0, '127.0.0.1', r));
    const receiver = await new Receiver().start();
    const app = await startUpstream();
    const gw = await startGateway(`
auth: { jwt: { jwksUrl: "http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/keys", jwksMinRefetchMs: 0 } }
tracing: { otlp: { endpoint: "http://127.0.0.1:${receiver.port}" }, scheduledDelayMs: 10 }
upstreams: { app: { url: ${app.url} } }
routes: [ { name: api, path: /, upstream: app, auth: required } ]
`);
    try {
      await until(() => seen.length >= 1);
      // The fetch at start belongs to no request: no span, no traceparent.
      expect(seen[0]).toBeUndefined();
      served = [k1.jwk, k2.jwk];
      const token = await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'RS256', kid: 'k2' }).setExpirationTime('5m').sign(k2.privateKey);
      expect((await send(gw.port, '/orders', { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'tr-jwks' } })).status).toBe(200);
      await until(() => receiver.spans.some((s) => s.name === 'jwks fetch') && receiver.spans.some((s) => s.attributes['strangler.request_id'] === 'tr-jwks'), 5000);
      const server = receiver.spans.find((s) => s.attributes['strangler.request_id'] === 'tr-jwks')!;
      const fetch = receiver.spans.find((s) => s.name === 'jwks fetch')!;
      expect(fetch).toMatchObject({ traceId: server.traceId, parentSpanId: server.spanId, attributes: { 'http.response.status_code': 200 } });
      expect(seen.at(-1)).toBe(`00-${fetch.traceId}-${fetch.spanId}-01`);
      expect(receiver.bodies.join('\n')).not.toContain(token);
    } finally {
      await gw.stop();
      await Promise.all([receiver.close(), app.close(), new Promise((r) => keyServer.close(r))]);
    }
  });
});

describe('a reload that changes tracing', () => {
  test('applies to new requests; a request in flight still ends its spans into the tracer it started with', async () => {
    const receiver = await new Receiver().start();
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('slow'), 400));
    const table = (service: string) => `
tracing: { otlp: { endpoint: "http://127.0.0.1:${receiver.port}" }, serviceName: ${service}, scheduledDelayMs: 10 }
reload: { watch: false }
upstreams: { app: { url: ${slow.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`;
    const gw = await startGateway(table('before'));
    try {
      const inFlight = send(gw.port, '/x', { headers: { 'x-request-id': 'tr-inflight' } });
      await until(() => slow.received.length === 1);
      writeFileSync(gw.configPath, table('after'));
      expect((await gw.gw.reload('api')).outcome).toBe('applied');
      expect((await send(gw.port, '/y', { headers: { 'x-request-id': 'tr-new' } })).status).toBe(200);
      expect((await inFlight).status).toBe(200);
      await until(() => receiver.spans.filter((x) => x.attributes['strangler.request_id'] !== undefined).length >= 2, 5000);
      const server = (id: string) => receiver.spans.find((x) => x.attributes['strangler.request_id'] === id)!;
      expect(server('tr-inflight').service).toBe('before');
      expect(server('tr-new').service).toBe('after');
      // The in-flight request's attempt span made it too, under its server span.
      await until(() => receiver.inTrace(server('tr-inflight').traceId).length === 2, 5000);
    } finally {
      await gw.stop();
      await Promise.all([receiver.close(), slow.close()]);
    }
  });
});

describe('a collector that is down or slow', () => {
  test('down: clients are served as usual; the failed exports are counted', async () => {
    const app = await startUpstream();
    const dead = await closedPort();
    const gw = await startGateway(`
admin: { port: 0 }
tracing: { otlp: { endpoint: "http://127.0.0.1:${dead}", timeoutMs: 500 }, scheduledDelayMs: 10 }
upstreams: { app: { url: ${app.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      for (let i = 0; i < 20; i++) expect((await send(gw.port, `/x${i}`)).status).toBe(200);
      let gwMetrics = '';
      for (let i = 0; i < 50 && !/reason="export_failed"\} [1-9]/.test(gwMetrics); i++) {
        await new Promise((r) => setTimeout(r, 100));
        gwMetrics = (await send(gw.gw.adminPort!, '/metrics')).body;
      }
      expect(gwMetrics).toMatch(/strangler_tracing_spans_dropped_total\{reason="export_failed"\} [1-9]/);
    } finally {
      await gw.stop();
      await app.close();
    }
  });

  test('slow (never answers): requests are not delayed; past the queue, spans are dropped and counted; stop is not held', async () => {
    const receiver = await new Receiver().start();
    receiver.mode = 'hang';
    const app = await startUpstream();
    const gw = await startGateway(`
admin: { port: 0 }
tracing: { otlp: { endpoint: "http://127.0.0.1:${receiver.port}", timeoutMs: 300 }, maxQueueSize: 5, maxExportBatchSize: 2, scheduledDelayMs: 10 }
upstreams: { app: { url: ${app.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const started = performance.now();
      for (let i = 0; i < 40; i++) expect((await send(gw.port, `/y${i}`)).status).toBe(200);
      // 40 requests on loopback: far below what a request waiting on the collector (300 ms) would take.
      expect(performance.now() - started).toBeLessThan(40 * 300);
      const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
      expect(metrics).toMatch(/strangler_tracing_spans_dropped_total\{reason="queue_full"\} [1-9]/);
    } finally {
      const stopping = performance.now();
      await gw.stop();
      expect(performance.now() - stopping).toBeLessThan(6000);
      await Promise.all([app.close(), receiver.close()]);
    }
  });
});

/**
 * What the request thread loads, in a process of its own: one request through a gateway whose table has
 * `tracing` or not, then the gateway stopped (which sends what is queued). Returns the OpenTelemetry
 * modules the request thread loaded, and how many OTLP requests a collector got.
 */
function loadedAfterOneRequest(tracing: boolean): { loaded: string[]; posts: number } {
  const script = `
const { Gateway } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'src', 'server.js'))});
const { writeFileSync, mkdtempSync } = require('node:fs');
const { join } = require('node:path');
const http = require('node:http');
let posts = 0;
const collector = http.createServer((q, s) => { q.resume(); q.on('end', () => { if (q.url === '/v1/traces') posts++; s.end(); }); }).listen(0, '127.0.0.1');
const up = http.createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', async () => {
  const dir = mkdtempSync(join(require('node:os').tmpdir(), 'strangler-'));
  const file = join(dir, 'routes.yaml');
  const tracing = ${tracing} ? 'tracing: { otlp: { endpoint: "http://127.0.0.1:' + collector.address().port + '" }, sampleRatio: 1 }\\n' : '';
  writeFileSync(file, tracing + 'log: { access: off, level: silent }\\nadmin: { port: 0 }\\nupstreams: { app: { url: "http://127.0.0.1:' + up.address().port + '" } }\\nroutes: [ { name: all, path: /, upstream: app } ]\\n');
  const gw = await Gateway.start({ configPath: file, port: 0, host: '127.0.0.1' });
  await new Promise((r) => http.get({ host: '127.0.0.1', port: gw.port, path: '/' }, (res) => { res.resume(); res.on('end', r); }));
  await gw.stop();
  // (prom-client loads the small @opentelemetry/api package for exemplars when it is installed: not the SDK.)
  const loaded = Object.keys(require.cache).filter((k) => /@opentelemetry[\\/](sdk-|exporter-|otlp-|resources|core)/.test(k) || k.endsWith('otel.js'));
  process.stdout.write(JSON.stringify({ loaded, posts }));
  up.close();
  collector.close();
});`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { loaded: string[]; posts: number };
}

describe('which thread loads the SDK', () => {
  test('with tracing, the spans are made and sent by the span thread: the request thread loads no OpenTelemetry SDK', () => {
    const { loaded, posts } = loadedAfterOneRequest(true);
    expect(posts).toBeGreaterThanOrEqual(1);
    expect(loaded).toEqual([]);
  });

  test('without tracing, nothing of it is loaded, and nothing is sent', () => {
    expect(loadedAfterOneRequest(false)).toEqual({ loaded: [], posts: 0 });
  });
});

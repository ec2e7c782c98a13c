/**
 * The parallel run through a real gateway: the client always gets the
 * primary's answer, the shadow gets a copy, and the comparison is counted.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

/** `until` for checks that ask the admin API. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const primaryAnswer = (req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 7, name: 'Grace', tags: ['a', 'b'], generatedAt: Date.now(), path: req.url }));
};

describe('parallel run', () => {
  let primary: Upstream;
  let shadow: Upstream;
  let gw: TestGateway;
  let mode: 'same' | 'changed' | 'hang' | '500' | 'slow' = 'same';
  beforeAll(async () => {
    primary = await startUpstream(primaryAnswer);
    shadow = await startUpstream((req, res) => {
      if (mode === 'hang') return;
      if (mode === '500') return void res.writeHead(500).end('down');
      if (mode === 'slow') {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`{"path":"/api${req.url}","generatedAt":1,"tags":["a","b"],"name":"Grace","id":7}`);
        }, 150);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      // Same content, other key order and number format; or a changed and a missing field.
      const path = `/api${req.url}`;
      res.end(mode === 'same' ? `{"path":"${path}","generatedAt":1,"tags":["a","b"],"name":"Grace","id":7.0}` : JSON.stringify({ id: 7, name: 'Ada', path, generatedAt: 2 }));
    });
    gw = await startGateway(`
admin: { port: 0 }
upstreams:
  monolith: { url: ${primary.url} }
  orders: { url: ${shadow.url} }
routes:
  - name: orders
    path: /api/orders
    upstream: monolith
    shadow:
      upstream: orders
      stripPrefix: /api
      timeoutMs: 500
      compare: { ignore: ["$.generatedAt"], redact: ["$.name"] }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([primary.close(), shadow.close()]);
  });
  beforeEach(async () => {
    mode = 'same';
    primary.received.length = 0;
    shadow.received.length = 0;
    await send(gw.gw.adminPort!, '/shadows/orders/reset', { method: 'POST' });
  });
  const report = async () => json(await send(gw.gw.adminPort!, '/shadows')).shadows[0];

  test('the client gets the primary\'s answer; the shadow gets a marked copy without credentials', async () => {
    const r = await send(gw.port, '/api/orders/7?x=1', { headers: { authorization: 'Bearer secret-token', cookie: 'sid=secret', 'x-request-id': 'shadow-trace-1' } });
    expect(r.status).toBe(200);
    expect(json(r)).toMatchObject({ id: 7, name: 'Grace', path: '/api/orders/7?x=1' });
    await until(() => shadow.received.length === 1);
    const copy = shadow.received[0]!;
    expect(copy.url).toBe('/orders/7?x=1');
    expect(copy.headers['x-strangler-shadow']).toBe('1');
    expect(copy.headers['x-request-id']).toBe('shadow-trace-1');
    expect(copy.headers.authorization).toBeUndefined();
    expect(copy.headers.cookie).toBeUndefined();
    expect(primary.received[0]!.headers.authorization).toBe('Bearer secret-token');
    // strangler explain names the same copy.
    const { explain } = await import('../src/routing/explain');
    expect(explain(gw.gw.table.config, 'GET', '/api/orders/7?x=1', {}).shadow).toMatchObject({ copied: true, upstream: 'orders', upstreamPath: copy.url });
    expect(explain(gw.gw.table.config, 'POST', '/api/orders', {}).shadow).toMatchObject({ copied: false, reason: 'method' });
    await until(() => gw.gw.table.shadows.get('orders')!.inFlight === 0);
  });

  test('equal answers (key order, number format, an ignored field) match; a changed and a missing field mismatch with their paths', async () => {
    await send(gw.port, '/api/orders/1');
    await eventually(async () => (await report()).compared === 1);
    expect(await report()).toMatchObject({ copied: 1, compared: 1, match: 1, mismatch: 0 });
    mode = 'changed';
    await send(gw.port, '/api/orders/2');
    await eventually(async () => (await report()).compared === 2);
    const rep = await report();
    expect(rep).toMatchObject({ match: 1, mismatch: 1, mismatchPercent: 50, statusPairs: { '200→200': 2 } });
    expect(rep.fields.map((f: { field: string }) => f.field).sort()).toEqual(['$.name', '$.tags']);
    expect(rep.window).toMatchObject({ compared: 2, mismatch: 1, mismatchPercent: 50 });
    const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
    expect(metrics).toMatch(/strangler_shadow_field_mismatch_total\{route="orders",field="\$\.name"\} [1-9]/);
    expect(metrics).toMatch(/strangler_shadow_duration_seconds_count\{route="orders",side="shadow"\} [1-9]/);
    expect(metrics).toMatch(/strangler_shadow_requests_total\{route="orders",outcome="mismatch"\} [1-9]/);
    const samples = json(await send(gw.gw.adminPort!, '/shadows/orders/samples')).samples;
    expect(samples[0].differences).toEqual(
      expect.arrayContaining([
        // compare.redact: compared, but never shown.
        { path: '$.name', kind: 'changed', primary: '***', shadow: '***' },
        { path: '$.tags', kind: 'missing', primary: '["a","b"]' },
      ]),
    );
  });

  test('a hanging or failing shadow never delays or changes the client\'s answer; it counts as a shadow error', async () => {
    mode = 'hang';
    const started = performance.now();
    const r = await send(gw.port, '/api/orders/3');
    expect(r.status).toBe(200);
    expect(performance.now() - started).toBeLessThan(300);
    await eventually(async () => (await report()).shadowError === 1, 3000);
    mode = '500';
    expect((await send(gw.port, '/api/orders/4')).status).toBe(200);
    await eventually(async () => (await report()).shadowError === 2);
    expect(gw.gw.table.upstreams.get('monolith')!.breaker.counts()).toMatchObject({ failures: 0 });
  });

  test('the access line says the shadow outcome; one decided later gets a line of its own', async () => {
    mode = 'slow';
    await send(gw.port, '/api/orders/9', { headers: { 'x-request-id': 'late-shadow-1' } });
    await until(() => gw.logs.lines.some((l) => l.msg === 'shadow comparison' && l.reqId === 'late-shadow-1'), 3000);
    const access = gw.logs.lines.find((l) => l.msg === 'request' && l.reqId === 'late-shadow-1')!;
    expect(access.shadow).toBe('pending');
    expect(gw.logs.lines.find((l) => l.msg === 'shadow comparison' && l.reqId === 'late-shadow-1')).toMatchObject({ route: 'orders', shadow: 'match' });
    await send(gw.port, '/api/orders', { method: 'POST', body: 'x', headers: { 'x-request-id': 'skipped-shadow-1' } });
    await until(() => gw.logs.lines.some((l) => l.msg === 'request' && l.reqId === 'skipped-shadow-1'));
    expect(gw.logs.lines.find((l) => l.msg === 'request' && l.reqId === 'skipped-shadow-1')!.shadow).toBe('skipped');
  });

  test('methods not listed are not copied; the skip is counted and in the metrics', async () => {
    expect((await send(gw.port, '/api/orders', { method: 'POST', body: 'x' })).status).toBe(200);
    expect((await report()).skipped).toEqual({ method: 1 });
    const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
    // Counters are not reset with the report: at least this test's skip.
    expect(metrics).toMatch(/strangler_shadow_skipped_total\{route="orders",reason="method"\} [1-9]/);
    expect(metrics).toMatch(/strangler_shadow_requests_total\{route="orders",outcome="skipped"\} \d+/);
    expect(shadow.received).toHaveLength(0);
  });
});

describe('parallel run of requests with a body', () => {
  test('a listed POST is copied with its body intact; a chunked one is skipped; samples redact query values', async () => {
    const primary = await startUpstream((_req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ saved: body.length, by: 'monolith' }));
    });
    const shadow = await startUpstream((_req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ saved: body.length, by: 'orders' }));
    });
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { monolith: { url: ${primary.url} }, orders: { url: ${shadow.url} } }
routes:
  - { name: orders, path: /orders, upstream: monolith, shadow: { upstream: orders, methods: [GET, POST] } }
`);
    try {
      const body = JSON.stringify({ item: 'x'.repeat(5000) });
      const r = await send(gw.port, '/orders?token=secret-value&id=7', { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
      expect(r.status).toBe(201);
      expect(json(r).by).toBe('monolith');
      await until(() => shadow.received.length === 1);
      expect(shadow.received[0]!.body).toBe(body);
      expect(shadow.received[0]!.headers['x-strangler-shadow']).toBe('1');
      const state = () => send(gw.gw.adminPort!, '/shadows').then((x) => json(x).shadows[0]);
      await eventually(async () => (await state()).mismatch === 1);
      const samples = json(await send(gw.gw.adminPort!, '/shadows/orders/samples')).samples;
      expect(samples[0]).toMatchObject({ method: 'POST', path: '/orders?token=***&id=***', statuses: [201, 201] });
      expect(JSON.stringify(samples)).not.toContain('secret-value');
      expect(samples[0].differences).toEqual([{ path: '$.by', kind: 'changed', primary: 'monolith', shadow: 'orders' }]);
      // No Content-Length: the body's size is unknown, so it is not copied.
      const chunked = await send(gw.port, '/orders', { method: 'POST', body: 'abc', headers: { 'transfer-encoding': 'chunked' } });
      expect(chunked.status).toBe(201);
      expect((await state()).skipped).toMatchObject({ 'body-unknown-length': 1 });
    } finally {
      await gw.stop();
      await Promise.all([primary.close(), shadow.close()]);
    }
  });
});

describe('parallel run behind forward auth', () => {
  test('a POST whose body has fully arrived while the identity was checked is copied with that body, and the copy carries the identity', async () => {
    // The auth endpoint answers after 50 ms: by then the whole body is in the gateway, read by nobody yet.
    const auth = createServer((_req, res) => void setTimeout(() => res.writeHead(200, { 'X-User-Id': 'u-7' }).end(), 50));
    await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
    const primary = await startUpstream((_req, res, body) => void res.writeHead(201, { 'content-type': 'text/plain' }).end(`got ${body.length}`));
    const shadow = await startUpstream((_req, res, body) => void res.writeHead(201, { 'content-type': 'text/plain' }).end(`got ${body.length}`));
    const gw = await startGateway(`
admin: { port: 0 }
auth: { forward: { url: http://127.0.0.1:${(auth.address() as AddressInfo).port}/check } }
upstreams: { monolith: { url: ${primary.url} }, orders: { url: ${shadow.url} } }
routes:
  - { name: orders, path: /orders, upstream: monolith, auth: required, shadow: { upstream: orders, methods: [POST] } }
`);
    try {
      const body = 'b'.repeat(3000);
      const r = await send(gw.port, '/orders', { method: 'POST', body, headers: { cookie: 'sid=1', 'content-type': 'text/plain', 'content-length': String(body.length) } });
      expect(r.body).toBe('got 3000');
      await until(() => shadow.received.length === 1);
      expect(shadow.received[0]!.body).toBe(body);
      expect(shadow.received[0]!.headers['x-user-id']).toBe('u-7');
      await eventually(async () => json(await send(gw.gw.adminPort!, '/shadows')).shadows[0].match === 1);
    } finally {
      await gw.stop();
      await Promise.all([primary.close(), shadow.close(), new Promise((r) => auth.close(r))]);
    }
  });
});

describe('a client-sent X-Strangler-Shadow', () => {
  test('never reaches an upstream: only the gateway marks a copy', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [{ name: app, path: /, upstream: app }]
`);
    try {
      await send(gw.port, '/x', { headers: { 'x-strangler-shadow': '1', 'X-Strangler_Shadow': 'noise' } });
      expect(up.received[0]!.headers['x-strangler-shadow']).toBeUndefined();
      expect(up.received[0]!.headers['x-strangler_shadow']).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('noise learning', () => {
  test('a field that differs between two primary answers is learnt as noise: no mismatch; a real difference still is one', async () => {
    let calls = 0;
    const primary = await startUpstream((req, res) => {
      calls++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 1, name: 'Grace', generatedAt: `${Date.now()}-${calls}`, noiseMarker: req.headers['x-strangler-shadow'] ?? null }));
    });
    let name = 'Grace';
    const shadow = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 1, name, generatedAt: `shadow-${Date.now()}`, noiseMarker: null }));
    });
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { monolith: { url: ${primary.url} }, orders: { url: ${shadow.url} } }
routes:
  - { name: orders, path: /o, upstream: monolith, shadow: { upstream: orders, noise: { sample: 100, relativePercent: 20, absolutePercent: 0.03 } } }
`);
    const report = async () => json(await send(gw.gw.adminPort!, '/shadows')).shadows[0];
    try {
      for (let i = 0; i < 5; i++) expect(json(await send(gw.port, `/o/${i}`)).noiseMarker).toBeNull();
      await eventually(async () => (await report()).compared === 5);
      // Every request went to the primary twice (sample: 100), the second marked as noise.
      expect(calls).toBe(10);
      let rep = await report();
      expect(rep.noise.samples).toBe(5);
      expect(rep.noise.fields).toEqual(expect.arrayContaining([expect.objectContaining({ field: '$.generatedAt' })]));
      // The first comparison came before any noise was learnt; the others match.
      expect(rep.match).toBeGreaterThanOrEqual(4);
      name = 'Ada';
      await send(gw.port, '/o/9');
      await eventually(async () => (await report()).compared === 6);
      rep = await report();
      expect(rep.mismatch).toBeGreaterThanOrEqual(1);
      const fields = Object.fromEntries(rep.fields.map((f: { field: string; noise?: boolean }) => [f.field, f.noise === true]));
      expect(fields['$.name']).toBe(false);
      expect(fields['$.generatedAt']).toBe(true);
    } finally {
      await gw.stop();
      await Promise.all([primary.close(), shadow.close()]);
    }
  });
});

describe('parallel run limits', () => {
  test('maxConcurrent: a request beyond it is not copied (saturated); a refused shadow is a shadow error', async () => {
    const primary = await startUpstream(primaryAnswer);
    const hang = await startUpstream(() => undefined);
    const gw = await startGateway(`
admin: { port: 0 }
upstreams:
  monolith: { url: ${primary.url} }
  hang: { url: ${hang.url} }
  dead: { url: http://127.0.0.1:${await closedPort()} }
routes:
  - { name: a, path: /a, upstream: monolith, shadow: { upstream: hang, maxConcurrent: 1, timeoutMs: 400 } }
  - { name: b, path: /b, upstream: monolith, shadow: { upstream: dead } }
`);
    try {
      expect((await send(gw.port, '/a/1')).status).toBe(200);
      expect((await send(gw.port, '/a/2')).status).toBe(200);
      const states = () => send(gw.gw.adminPort!, '/shadows').then((r) => json(r).shadows as Array<Record<string, unknown>>);
      expect((await states()).find((s) => s.route === 'a')).toMatchObject({ copied: 1, skipped: { saturated: 1 } });
      expect((await send(gw.port, '/b/1')).status).toBe(200);
      await eventually(async () => (await states()).find((s) => s.route === 'b')!.shadowError === 1);
      // Five failures in a row: the dead shadow gets no copies for a while (skipped: circuit-open).
      for (let i = 2; i <= 5; i++) {
        await send(gw.port, `/b/${i}`);
        await eventually(async () => (await states()).find((s) => s.route === 'b')!.shadowError === i);
      }
      expect((await send(gw.port, '/b/6')).status).toBe(200);
      expect((await states()).find((s) => s.route === 'b')).toMatchObject({ shadowError: 5, skipped: { 'circuit-open': 1 } });
      await eventually(async () => (await states()).find((s) => s.route === 'a')!.shadowError === 1, 3000);
      expect((await send(gw.gw.adminPort!, '/shadows/nope/samples')).status).toBe(404);
    } finally {
      await gw.stop();
      await Promise.all([primary.close(), hang.close()]);
    }
  });
});

describe('parallel run: shadows that break mid-answer, and answers too large to compare', () => {
  test('a shadow that resets mid-answer is a shadow error; an answer over maxBodyBytes is skipped as too-large; the client gets the primary\'s bytes', async () => {
    const big = JSON.stringify({ items: 'x'.repeat(5000) });
    const primary = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url!.startsWith('/big') ? big : JSON.stringify({ ok: true }));
    });
    const shadow = await startUpstream((req, res) => {
      if (req.url!.startsWith('/reset')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"ok":');
        setTimeout(() => res.destroy(), 20);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url!.startsWith('/big') ? big : JSON.stringify({ ok: true }));
    });
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { monolith: { url: ${primary.url} }, orders: { url: ${shadow.url} } }
routes:
  - { name: all, path: /, upstream: monolith, shadow: { upstream: orders, maxBodyBytes: 1024 } }
`);
    const state = () => send(gw.gw.adminPort!, '/shadows').then((x) => json(x).shadows[0]);
    try {
      const r = await send(gw.port, '/reset/1');
      expect(json(r)).toEqual({ ok: true });
      await eventually(async () => (await state()).shadowError === 1);
      const b = await send(gw.port, '/big/1');
      expect(b.body).toBe(big);
      await eventually(async () => (await state()).skipped['too-large'] === 1);
      expect(await state()).toMatchObject({ compared: 0, inFlight: 0 });
    } finally {
      await gw.stop();
      await Promise.all([primary.close(), shadow.close()]);
    }
  });
});


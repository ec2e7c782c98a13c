import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

type Mode = 'ok' | '500' | '404' | 'hang';

/** An upstream that can be told to fail, hang or recover. */
async function controllable(name: string): Promise<Upstream & { mode: Mode }> {
  const ctl = { mode: 'ok' as Mode };
  const up = await startUpstream((_req: IncomingMessage, res: ServerResponse) => {
    if (ctl.mode === 'hang') return;
    const status = ctl.mode === 'ok' ? 200 : Number(ctl.mode);
    res.writeHead(status, { 'content-type': 'text/plain', 'x-served-by': name });
    res.end(`${name}:${status}`);
  });
  return Object.defineProperty(up, 'mode', { get: () => ctl.mode, set: (m: Mode) => (ctl.mode = m) }) as Upstream & { mode: Mode };
}

async function metric(gw: TestGateway, name: string): Promise<string[]> {
  const r = await send(gw.gw.adminPort!, '/metrics');
  return r.body.split('\n').filter((l) => l.startsWith(name));
}

describe('circuit breaker', () => {
  let users: Awaited<ReturnType<typeof controllable>>;
  let gw: TestGateway;
  const table = (timeoutMs: number, extraRoute = '', openMs = 400) => `
admin: { port: 0 }
reload: { watch: false }
upstreams:
  users:
    url: ${users.url}
    timeoutMs: ${timeoutMs}
    breaker: { errorPercent: 50, minRequests: 4, windowMs: 10000, openMs: ${openMs} }
routes:
  - { name: users, path: /api/users, upstream: users }
${extraRoute}`;

  beforeEach(async () => {
    users = await controllable('users');
    gw = await startGateway(table(3000));
  });
  afterEach(async () => {
    await gw.stop();
    await users.close();
  });

  test('opens after the configured share of failures, not before minRequests; then fails fast with 503 and Retry-After', async () => {
    users.mode = '500';
    for (let i = 0; i < 3; i++) expect((await send(gw.port, '/api/users')).status).toBe(500);
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('closed');
    expect((await send(gw.port, '/api/users')).status).toBe(500);
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('open');
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await send(gw.port, '/api/users', { headers: { 'x-request-id': `open-${i}` } });
      times.push(performance.now() - t0);
      expect(r.status).toBe(503);
      expect(json(r).error).toMatchObject({ code: 'CIRCUIT_OPEN', requestId: `open-${i}` });
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(users.received).toHaveLength(4);
    expect(Math.min(...times)).toBeLessThan(50);
  });

  test('half-open: one trial closes it on success, reopens it on failure', async () => {
    users.mode = '500';
    for (let i = 0; i < 4; i++) await send(gw.port, '/api/users');
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('open');
    // Trial fails: open again.
    await until(() => gw.gw.table.upstreams.get('users')!.breaker.state === 'half-open', 3000);
    expect((await send(gw.port, '/api/users')).status).toBe(500);
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('open');
    // Recovered: the next trial closes it.
    users.mode = 'ok';
    await until(() => gw.gw.table.upstreams.get('users')!.breaker.state === 'half-open', 3000);
    expect((await send(gw.port, '/api/users')).status).toBe(200);
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('closed');
    expect((await send(gw.port, '/api/users')).status).toBe(200);
  });

  test('4xx answers do not count as failures', async () => {
    users.mode = '404';
    for (let i = 0; i < 10; i++) expect((await send(gw.port, '/api/users')).status).toBe(404);
    expect(gw.gw.table.upstreams.get('users')!.breaker.state).toBe('closed');
  });

  test('timeouts count as failures', async () => {
    await gw.stop();
    gw = await startGateway(table(100));
    users.mode = 'hang';
    for (let i = 0; i < 4; i++) expect((await send(gw.port, '/api/users')).status).toBe(504);
    expect((await send(gw.port, '/api/users')).status).toBe(503);
  });

  test('state survives an unrelated reload, resets when the upstream settings change; visible in admin and metrics', async () => {
    // A circuit that stays open for the whole test: a reload on a loaded machine can take longer than 400 ms.
    writeFileSync(gw.configPath, table(3000, '', 60_000));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    users.mode = '500';
    for (let i = 0; i < 4; i++) await send(gw.port, '/api/users');
    const before = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams[0];
    expect(before.breaker.state).toBe('open');
    expect(await metric(gw, 'strangler_breaker_state{upstream="users"}')).toEqual(['strangler_breaker_state{upstream="users"} 2']);
    expect((await metric(gw, 'strangler_breaker_transitions_total{upstream="users",to="open"}'))[0]).toMatch(/ 1$/);

    writeFileSync(gw.configPath, table(3000, '  - { name: other, path: /other, upstream: users }', 60_000));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    expect((await send(gw.port, '/api/users')).status).toBe(503);

    writeFileSync(gw.configPath, table(2999, '', 60_000));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    users.mode = 'ok';
    expect((await send(gw.port, '/api/users')).status).toBe(200);
    expect(json(await send(gw.gw.adminPort!, '/upstreams')).upstreams[0].breaker.state).toBe('closed');
  });
});

describe('fallback to the monolith', () => {
  let monolith: Upstream;
  let gw: TestGateway;
  let deadPort: number;
  beforeAll(async () => {
    monolith = await startUpstream((req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ from: 'monolith', url: req.url, body }));
    });
    deadPort = await closedPort();
    gw = await startGateway(`
admin: { port: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  users: { url: http://127.0.0.1:${deadPort}, breaker: { minRequests: 100 } }
routes:
  - { name: users, path: /api/users, upstream: users, stripPrefix: /api, fallback: monolith, replayBodyBytes: 1024 }
  - { name: legacy, path: /, upstream: monolith }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await monolith.close();
  });
  beforeEach(() => (monolith.received.length = 0));

  test('a POST whose upstream cannot be reached is replayed to the monolith with its body and original path', async () => {
    const body = JSON.stringify({ name: 'Ada', tags: ['x'] });
    const r = await send(gw.port, '/api/users/7?x=1', { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-request-id': 'fb-1' } });
    expect(r.status).toBe(201);
    expect(r.headers['x-strangler-fallback']).toBe('monolith');
    expect(r.headers['x-request-id']).toBe('fb-1');
    expect(monolith.received).toHaveLength(1);
    expect(monolith.received[0]).toMatchObject({ method: 'POST', url: '/api/users/7?x=1', body });
    expect(monolith.received[0]!.headers['content-type']).toBe('application/json');
    const fallbacks = await metric(gw, 'strangler_fallbacks_total{route="users",from="users",to="monolith",reason="UPSTREAM_CONNECT_FAILED"}');
    expect(fallbacks[0]).toMatch(/ [1-9]\d*$/);
  });

  test('a body over the replay limit is not replayed: the client gets the error', async () => {
    const r = await send(gw.port, '/api/users', { method: 'POST', body: 'x'.repeat(5000), headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(502);
    expect(json(r).error.code).toBe('UPSTREAM_CONNECT_FAILED');
    expect(monolith.received).toHaveLength(0);
  });

  test('an open circuit falls back before anything is sent, even for a large body; both open -> 503', async () => {
    const users = await controllable('users');
    const fb = await startGateway(`
upstreams:
  monolith: { url: ${monolith.url}, breaker: { minRequests: 2, openMs: 60000 } }
  users: { url: ${users.url}, breaker: { minRequests: 2, openMs: 60000 } }
routes:
  - { name: users, path: /api/users, upstream: users, fallback: monolith, replayBodyBytes: 10 }
`);
    try {
      users.mode = '500';
      await send(fb.port, '/api/users');
      await send(fb.port, '/api/users');
      const r = await send(fb.port, '/api/users', { method: 'POST', body: 'y'.repeat(5000) });
      expect(r.status).toBe(201);
      expect(r.headers['x-strangler-fallback']).toBe('monolith');
      expect(json(r).body).toHaveLength(5000);
      // Now break the monolith's breaker too.
      await monolith.close();
      await send(fb.port, '/api/users');
      await send(fb.port, '/api/users');
      const both = await send(fb.port, '/api/users');
      expect(both.status).toBe(503);
      expect(json(both).error.code).toBe('CIRCUIT_OPEN');
    } finally {
      await fb.stop();
      await users.close();
      monolith = await startUpstream((req, res, body) => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ from: 'monolith', url: req.url, body }));
      });
    }
  });
});

/** An upstream that destroys the socket of the second request on a kept-alive connection, once. */
async function resetsReusedSocketOnce(): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const perSocket = new WeakMap<Socket, number>();
  let armed = true;
  const server = createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    seen.push(`${req.method} ${req.url} #${n}`);
    req.resume();
    req.on('end', () => {
      if (n === 2 && armed) {
        armed = false;
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

describe('retries', () => {
  test('a GET hit by a reset of a reused keep-alive socket is retried and succeeds', async () => {
    const up = await resetsReusedSocketOnce();
    const gw = await startGateway(`
upstreams: { app: { url: http://127.0.0.1:${up.port} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      expect((await send(gw.port, '/a')).status).toBe(200);
      const r = await send(gw.port, '/b');
      expect(r.status).toBe(200);
      expect(up.seen.filter((s) => s.startsWith('GET /b'))).toHaveLength(2);
    } finally {
      await gw.stop();
      up.server.close();
    }
  });

  test('a POST hit by the same reset is not retried', async () => {
    const up = await resetsReusedSocketOnce();
    const gw = await startGateway(`
upstreams: { app: { url: http://127.0.0.1:${up.port} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      expect((await send(gw.port, '/a', { method: 'POST', body: 'one' })).status).toBe(200);
      const r = await send(gw.port, '/b', { method: 'POST', body: 'two' });
      expect(r.status).toBe(502);
      expect(json(r).error.code).toBe('UPSTREAM_RESET');
      expect(up.seen.filter((s) => s.startsWith('POST /b'))).toHaveLength(1);
    } finally {
      await gw.stop();
      up.server.close();
    }
  });

  test('the retry budget caps retries', async () => {
    const dead = await closedPort();
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: http://127.0.0.1:${dead}, breaker: { enabled: false }, retryBudget: { percent: 0, burst: 2 } } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      for (let i = 0; i < 5; i++) expect((await send(gw.port, '/x')).status).toBe(502);
      expect((await metric(gw, 'strangler_retries_total{upstream="app"}'))[0]).toMatch(/ 2$/);
    } finally {
      await gw.stop();
    }
  });
});

describe('several instances', () => {
  test('round-robin across instances', async () => {
    const a = await controllable('a');
    const b = await controllable('b');
    const gw = await startGateway(`
upstreams: { app: { urls: [${a.url}, ${b.url}] } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      const served: string[] = [];
      for (let i = 0; i < 6; i++) served.push((await send(gw.port, '/x')).headers['x-served-by'] as string);
      expect(served.filter((s) => s === 'a')).toHaveLength(3);
      expect(served.filter((s) => s === 'b')).toHaveLength(3);
      expect(served[0]).not.toBe(served[1]);
    } finally {
      await gw.stop();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('an instance that dies is ejected: traffic goes to the other with no client error beyond the first', async () => {
    const a = await controllable('a');
    const b = await controllable('b');
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { urls: [${a.url}, ${b.url}], breaker: { enabled: false } } }
routes: [ { name: all, path: /, upstream: app, retry: { enabled: false } } ]
`);
    try {
      await a.close();
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await send(gw.port, '/x', { method: 'POST', body: 'p' })).status);
      expect(statuses.filter((s) => s !== 200).length).toBeLessThanOrEqual(1);
      const inst = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams[0].instances;
      expect(inst[0]).toMatchObject({ ejected: true });
      expect(inst[1]).toMatchObject({ ejected: false });
      expect(await metric(gw, 'strangler_instance_ejections_total')).toEqual(['strangler_instance_ejections_total{upstream="app"} 1']);
    } finally {
      await gw.stop();
      await b.close();
    }
  });

  test('with retries on, a GET to a dead instance is retried on the live one', async () => {
    const a = await controllable('a');
    const b = await controllable('b');
    const gw = await startGateway(`
upstreams: { app: { urls: [${a.url}, ${b.url}] } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      await a.close();
      for (let i = 0; i < 4; i++) expect((await send(gw.port, '/x')).status).toBe(200);
    } finally {
      await gw.stop();
      await b.close();
    }
  });
});

describe('bulkhead', () => {
  test('over maxConcurrent a request is refused with 503, or falls back', async () => {
    const slow = await controllable('slow');
    const monolith = await controllable('monolith');
    slow.mode = 'hang';
    const gw = await startGateway(`
upstreams:
  slow: { url: ${slow.url}, maxConcurrent: 1, timeoutMs: 1500 }
  monolith: { url: ${monolith.url} }
routes:
  - { name: plain, path: /plain, upstream: slow }
  - { name: saved, path: /saved, upstream: slow, fallback: monolith }
`);
    try {
      const first = send(gw.port, '/plain').catch(() => undefined);
      await until(() => slow.received.length === 1);
      const r = await send(gw.port, '/plain');
      expect(r.status).toBe(503);
      expect(json(r).error.code).toBe('UPSTREAM_SATURATED');
      const f = await send(gw.port, '/saved');
      expect(f.status).toBe(200);
      expect(f.headers['x-strangler-fallback']).toBe('monolith');
      void first;
    } finally {
      await gw.stop();
      await Promise.all([slow.close(), monolith.close()]);
    }
  });
});

describe('bulkhead accounting across a fallback', () => {
  test('an attempt that fell back is released from its upstream, and the fallback is not charged twice', async () => {
    const monolith = await controllable('monolith');
    const dead = await closedPort();
    const gw = await startGateway(`
admin: { port: 0 }
upstreams:
  monolith: { url: ${monolith.url}, maxConcurrent: 2 }
  flaky: { url: http://127.0.0.1:${dead}, maxConcurrent: 2, breaker: { enabled: false } }
routes:
  - { name: users, path: /api/users, upstream: flaky, fallback: monolith, retry: { enabled: false } }
`);
    try {
      for (let i = 0; i < 6; i++) expect((await send(gw.port, '/api/users')).headers['x-strangler-fallback']).toBe('monolith');
      const ups = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams as Array<{ name: string; inFlight: number }>;
      expect(ups.map((u) => [u.name, u.inFlight])).toEqual([
        ['monolith', 0],
        ['flaky', 0],
      ]);
    } finally {
      await gw.stop();
      await monolith.close();
    }
  });
});

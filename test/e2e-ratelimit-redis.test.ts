/**
 * Rate limits and shared state with real processes' worth of gateways and a
 * real redis-server (started here on a free loopback port): a local limit,
 * a limit that holds across two replicas, a canary rolled back through one
 * replica and honoured by the other (and a reset likewise), and Redis going
 * away mid-traffic without a single request failing because of it.
 */
import { json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';
import { TestRedis } from './helpers/redis';

jest.setTimeout(30_000);

describe('rate limits, local', () => {
  test('the allowance is used, then 429 RATE_LIMITED with Retry-After and the IETF RateLimit headers; other keys are apart; a route can opt out', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${up.url} } }
rateLimit: { key: "header:X-Client", limit: 3, windowMs: 60000 }
routes:
  - { name: api, path: /api, upstream: app }
  - { name: free, path: /free, upstream: app, rateLimit: false }
`);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await send(gw.port, '/api/x', { headers: { 'x-client': 'a' } })).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const r = await send(gw.port, '/api/x', { headers: { 'x-client': 'a', 'x-request-id': 'rl-1' } });
      expect(json(r).error).toMatchObject({ code: 'RATE_LIMITED', requestId: 'rl-1' });
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(19);
      expect(r.headers['ratelimit-policy']).toBe('"header-X-Client";q=3;w=60');
      expect(r.headers.ratelimit).toMatch(/^"header-X-Client";r=0;t=\d+$/);
      expect((await send(gw.port, '/api/x', { headers: { 'x-client': 'b' } })).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await send(gw.port, '/free', { headers: { 'x-client': 'a' } })).status).toBe(200);
      expect(up.received.filter((x) => x.url === '/api/x')).toHaveLength(4);
      const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
      expect(metrics).toMatch(/strangler_rate_limited_total\{route="api"\} 3/);
      const { explain } = await import('../src/routing/explain');
      expect(explain(gw.gw.table.config, 'GET', '/api/x', {}).rateLimit).toMatchObject({ limit: 3, key: 'header:X-Client' });
      expect(explain(gw.gw.table.config, 'GET', '/free', {}).rateLimit).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('rate-limit keys are read from what the client sent', () => {
  test('key: header:Authorization still tells clients apart on a route that does not forward credentials; no header falls back to the IP', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes:
  - { name: api, path: /api, upstream: app, forwardCredentials: false, rateLimit: { key: "header:Authorization", limit: 1, windowMs: 60000 } }
`);
    try {
      expect((await send(gw.port, '/api', { headers: { authorization: 'Bearer one' } })).status).toBe(200);
      expect((await send(gw.port, '/api', { headers: { authorization: 'Bearer one' } })).status).toBe(429);
      expect((await send(gw.port, '/api', { headers: { authorization: 'Bearer two' } })).status).toBe(200);
      expect((await send(gw.port, '/api')).status).toBe(200);
      expect(up.received[0]!.headers.authorization).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('two replicas sharing one Redis', () => {
  const redis = new TestRedis();
  let up: Upstream;
  let canary: Upstream;
  let a: TestGateway;
  let b: TestGateway;
  let canaryFails = false;
  beforeAll(async () => {
    await redis.start();
    up = await startUpstream();
    canary = await startUpstream((_req, res) => {
      if (canaryFails) return void res.writeHead(500).end('down');
      res.writeHead(200).end('canary');
    });
    const table = `
admin: { port: 0 }
state: { redis: { url: ${redis.url}, keyPrefix: "test:${process.pid}:" } }
upstreams: { app: { url: ${up.url} }, next: { url: ${canary.url} } }
routes:
  - { name: limited, path: /limited, upstream: app, rateLimit: { key: route, limit: 20, windowMs: 60000 } }
  - { name: big, path: /big, upstream: app, rateLimit: { key: route, limit: 200, windowMs: 600000 } }
  - { name: wide, path: /wide, upstream: app, rateLimit: { key: route, limit: 2000, windowMs: 600000 } }
  - name: judged
    path: /judged
    upstream: app
    canary: { upstream: next, percent: 100, sticky: header:X-User, rollback: { maxErrorPercent: 10, minRequests: 6, windowMs: 60000 } }
  - { name: ramped, path: /ramped, upstream: app, canary: { upstream: next, percent: 100, steps: [1, 10, 50, 100], stepEveryMs: 600000 } }
  - name: orders
    path: /orders
    upstream: app
    canary: { upstream: next, percent: 100, sticky: header:X-User, rollback: { maxErrorPercent: 10, minRequests: 5, windowMs: 60000 } }
`;
    a = await startGateway(table);
    b = await startGateway(table);
    await until(() => a.gw.sharedStatus()?.redis === 'connected' && b.gw.sharedStatus()?.redis === 'connected', 5000);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await Promise.all([up?.close(), canary?.close()]);
    await redis.stop();
  });

  test('a rate limit holds across both replicas (within 10%)', async () => {
    let allowed = 0;
    for (let i = 0; i < 60; i++) if ((await send((i % 2 ? a : b).port, '/limited')).status === 200) allowed++;
    expect(allowed).toBeGreaterThanOrEqual(20);
    expect(allowed).toBeLessThanOrEqual(22);
  });

  test('a large allowance is leased a twentieth at a time: one Redis round trip per lease, and still never more than the limit over both', async () => {
    const before = (await redis.calls('evalsha')) + (await redis.calls('eval'));
    let allowed = 0;
    for (let i = 0; i < 300; i++) if ((await send((i % 2 ? a : b).port, '/big')).status === 200) allowed++;
    const trips = (await redis.calls('evalsha')) + (await redis.calls('eval')) - before;
    expect(allowed).toBeLessThanOrEqual(200);
    expect(allowed).toBeGreaterThanOrEqual(180);
    expect(trips).toBeLessThanOrEqual(40);
  });

  test('concurrent requests of one key share one lease request (they do not each take a lease and burn the allowance)', async () => {
    const before = (await redis.calls('evalsha')) + (await redis.calls('eval'));
    const statuses = await Promise.all(Array.from({ length: 50 }, () => send(a.port, '/wide').then((r) => r.status)));
    const trips = (await redis.calls('evalsha')) + (await redis.calls('eval')) - before;
    expect(statuses.every((x) => x === 200)).toBe(true);
    expect(trips).toBeLessThanOrEqual(2);
  });

  test('a canary failing through one replica is rolled back on both; a reset on one reaches the other', async () => {
    canaryFails = true;
    for (let i = 0; i < 6; i++) await send(a.port, '/orders', { headers: { 'x-user': `u${i}` } });
    expect(a.gw.table.canaries.get('orders')!.rolledBack).toBeDefined();
    await until(() => b.gw.table.canaries.get('orders')!.rolledBack !== undefined, 2000);
    // Replica b now sends everyone to the primary.
    const before = up.received.length;
    expect((await send(b.port, '/orders', { headers: { 'x-user': 'u1' } })).status).toBe(200);
    expect(up.received.length).toBe(before + 1);
    expect(b.logs.lines.some((l) => l.msg === 'canary of route orders rolled back by another gateway process')).toBe(true);
    canaryFails = false;
    const reset = await send(b.gw.adminPort!, '/canaries/orders/reset', { method: 'POST' });
    expect(reset.status).toBe(200);
    await until(() => a.gw.table.canaries.get('orders')!.rolledBack === undefined, 2000);
    // The reset also emptied a's window: one more failure does not roll it straight back.
    canaryFails = true;
    await send(a.port, '/orders', { headers: { 'x-user': 'u9' } });
    expect(a.gw.table.canaries.get('orders')!.rolledBack).toBeUndefined();
    canaryFails = false;
  });

  test('the rollback rule judges the fleet\'s window: failures split over two replicas, neither past minRequests alone, roll the canary back', async () => {
    canaryFails = true;
    for (let i = 0; i < 4; i++) await send(a.port, '/judged', { headers: { 'x-user': `j${i}` } });
    for (let i = 0; i < 4; i++) await send(b.port, '/judged', { headers: { 'x-user': `k${i}` } });
    expect(a.gw.table.canaries.get('judged')!.rolledBack).toBeUndefined();
    expect(b.gw.table.canaries.get('judged')!.rolledBack).toBeUndefined();
    // Once the counts have been exchanged (every second), the next failure on either side sees 9 of 9 failed.
    await new Promise((r) => setTimeout(r, 2200));
    await send(a.port, '/judged', { headers: { 'x-user': 'j9' } });
    canaryFails = false;
    expect(a.gw.table.canaries.get('judged')!.rolledBack).toMatchObject({ requests: 9 });
    await until(() => b.gw.table.canaries.get('judged')!.rolledBack !== undefined, 2000);
  });

  test('the ramp position is shared: a step taken on one replica is taken on the other, and only forward', async () => {
    const ca = a.gw.table.canaries.get('ramped')!;
    const cb = b.gw.table.canaries.get('ramped')!;
    expect(cb.describe().ramp).toMatchObject({ step: 0, current: 1 });
    a.gw.shared!.canaryEvent({ route: 'ramped', kind: 'ramp', at: Date.now(), step: 2, nextStepAt: Date.now() + 600_000 });
    await until(() => (cb.describe().ramp as { step: number }).step === 2, 2000);
    expect(cb.effectivePercent()).toBe(50);
    expect(b.logs.lines.some((l) => l.msg === 'canary of route ramped ramped by another gateway process')).toBe(true);
    // An older, lower step does not take it back.
    a.gw.shared!.canaryEvent({ route: 'ramped', kind: 'ramp', at: Date.now(), step: 1, nextStepAt: Date.now() + 600_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect((cb.describe().ramp as { step: number }).step).toBe(2);
    expect(ca).toBeDefined();
  });

  test('Redis going away fails no request: both keep serving with local decisions, /readyz says so and stays ready; it resynchronises when Redis returns', async () => {
    await redis.stop();
    await until(() => a.gw.sharedStatus()?.redis === 'unavailable' && b.gw.sharedStatus()?.redis === 'unavailable', 5000);
    for (let i = 0; i < 10; i++) {
      expect((await send(a.port, '/orders', { headers: { 'x-user': `v${i}` } })).status).toBe(200);
      // The route limit falls back to each replica's own allowance: answered, never an error.
      expect([200, 429]).toContain((await send(b.port, '/limited')).status);
    }
    const ready = await send(a.gw.adminPort!, '/readyz');
    expect(ready.status).toBe(200);
    expect(json(ready)).toMatchObject({ status: 'ready', state: { redis: 'unavailable' } });
    expect((await send(a.gw.adminPort!, '/metrics')).body).toContain('strangler_redis_up 0');
    expect(a.logs.lines.filter((l) => l.msg === 'shared state: Redis is unreachable; serving with the last shared state and local decisions')).toHaveLength(1);
    // While Redis is away, b rolls the canary back; a learns it once Redis is back.
    canaryFails = true;
    for (let i = 0; i < 6; i++) await send(b.port, '/orders', { headers: { 'x-user': `w${i}` } });
    expect(b.gw.table.canaries.get('orders')!.rolledBack).toBeDefined();
    canaryFails = false;
    await redis.start();
    await until(() => a.gw.sharedStatus()?.redis === 'connected' && b.gw.sharedStatus()?.redis === 'connected', 8000);
    await until(() => a.gw.table.canaries.get('orders')!.rolledBack !== undefined, 3000);
    expect((await send(a.gw.adminPort!, '/metrics')).body).toContain('strangler_redis_up 1');
  });
});

describe('the shadow noise learnt by one replica counts on the others', () => {
  const redis = new TestRedis();
  test('a field learnt as noise through replica a is noise on replica b, which has served nothing', async () => {
    await redis.start();
    let calls = 0;
    const monolith = await startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 1, generatedAt: `${Date.now()}-${++calls}` })));
    const orders = await startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 1, generatedAt: `shadow-${++calls}` })));
    const table = `
state: { redis: { url: ${redis.url}, keyPrefix: "noise:${process.pid}:" } }
upstreams: { monolith: { url: ${monolith.url} }, orders: { url: ${orders.url} } }
routes:
  - { name: orders, path: /o, upstream: monolith, shadow: { upstream: orders, noise: { sample: 100 } } }
`;
    const a = await startGateway(table);
    const b = await startGateway(table);
    try {
      await until(() => a.gw.sharedStatus()?.redis === 'connected' && b.gw.sharedStatus()?.redis === 'connected', 5000);
      for (let i = 0; i < 5; i++) await send(a.port, `/o/${i}`);
      const onA = a.gw.table.shadows.get('orders')!;
      const onB = b.gw.table.shadows.get('orders')!;
      await until(() => (onA.describe().noise as { samples: number }).samples === 5, 3000);
      expect(onA.isNoise('$.generatedAt')).toBe(true);
      expect((onB.describe().noise as { samples: number }).samples).toBe(0);
      // Once a second each replica writes what it learnt and reads the others'.
      await until(() => onB.isNoise('$.generatedAt'), 3000);
      expect(onB.isNoise('$.id')).toBe(false);
    } finally {
      await a.stop();
      await b.stop();
      await Promise.all([monolith.close(), orders.close()]);
      await redis.stop();
    }
  });
});
